"""Checkpoints: safetensors for every tensor, JSON metadata for the rest, written atomically.

A checkpoint holds a run's whole state at one step: network weights, optimizer, scheduler and
loss-scaler state, every random generator (so a resumed run draws the same numbers) and a small
``extra`` dict. Nothing is pickled, so loading one runs no foreign code. Every file this package
writes goes through :func:`atomic_write`: a crash never leaves half a file behind a finished name.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from paper_repro.errors import UserError
from paper_repro.runs.devices import unwrap

CHECKPOINT_PATTERN = re.compile(r"checkpoint_(\d+)\.safetensors$")
TMP_SUFFIX = ".tmp"
# What atomic_write leaves behind when a process dies mid-write: ".<name>.<random>.tmp".
STALE_TMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def current_umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def human_bytes(n: float) -> str:
    """``1.2 GB``, ``340.0 kB``, ``12 B`` (powers of 1000, as disks are sold)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


# A write that failed for want of room: the disk is full, a file-size limit (``ulimit -f``) stops the file,
# or the user's quota is spent. Each is one line for the user (:class:`DiskFull`), never a traceback.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_OS_ERROR_CODE = re.compile(r"\(os error (\d+)\)")  # how Rust's io::Error (safetensors) shows an errno


def disk_full_errno(err: BaseException) -> int | None:
    """The errno (ENOSPC, EFBIG, EDQUOT) when ``err``, or an exception that caused it, says there was no room
    to write; else ``None``. An OSError carries it; safetensors' SafetensorError carries it in its text."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        code = err.errno if isinstance(err, OSError) else None
        if code is None and not isinstance(err, OSError):
            match = _OS_ERROR_CODE.search(str(err))
            code = int(match.group(1)) if match else None
        if code in DISK_FULL_ERRNOS:
            return code
        err = err.__cause__ or err.__context__
    return None


class DiskFull(UserError):
    """No room to write a file of a run: one line naming the folder and the space the file needs."""


def disk_full(path: str | Path, code: int, needed: int | None = None, written: int = 0) -> DiskFull:
    """The one line for a write of ``path`` that failed with ``code`` (ENOSPC, EFBIG or EDQUOT): the folder,
    the space the file needs (``needed``; else at least the ``written`` bytes it had), and what is free."""
    folder = Path(path).parent
    try:
        free = f"{human_bytes(shutil.disk_usage(folder).free)} free there"
    except OSError:
        free = "free space unknown"
    if needed:
        need = f"it needs ~{human_bytes(needed)}"
    elif written:
        need = f"it needs more than the {human_bytes(written)} written before the disk refused"
    else:
        need = "it needs more room than the disk gave"
    limit = " (a file-size limit, ulimit -f, stops it)" if code == errno.EFBIG else ""
    return DiskFull(f"{folder}: no room to write {Path(path).name}: {os.strerror(code)}{limit}; {need}, {free}; "
                    "free some space or choose another folder (the files there before are unchanged)")


def atomic_write(path: str | Path, write: Callable[[str], Any], needed: int | None = None) -> Path:
    """Call ``write(temporary_path)``, then rename the temporary file to ``path`` in one step.

    The file gets the permissions any new file of the user gets (``0o666`` less the umask), not the
    private ``0o600`` of a temporary file, so a colleague can read a shared run folder. Whatever fails,
    the temporary file is removed and an earlier ``path`` is left as it was; a write that finds no room
    (:data:`DISK_FULL_ERRNOS`) is :class:`DiskFull`, one line naming the folder and the ``needed`` bytes.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as err:
        written = 0
        if tmp is not None:
            with contextlib.suppress(OSError):
                written = os.path.getsize(tmp)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        code = disk_full_errno(err) if isinstance(err, Exception) and not isinstance(err, UserError) else None
        if code is not None:
            raise disk_full(path, code, needed, written) from None
        raise
    return path


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"checkpoint_{step:08d}.safetensors"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``run_dir``, or ``None``."""
    found = checkpoints(run_dir)
    return found[-1][1] if found else None


def checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in run_dir.iterdir() if (m := CHECKPOINT_PATTERN.search(p.name)))


def prune_checkpoints(run_dir: str | Path, keep_last: int, milestone_every: int = 0) -> None:
    """Delete all but the ``keep_last`` newest checkpoints of ``run_dir`` and the milestones (steps that
    are multiples of ``milestone_every``; 0: none)."""
    found = checkpoints(run_dir)
    for step, path in found[:-keep_last] if keep_last else found:
        if not (milestone_every and step % milestone_every == 0):
            path.unlink(missing_ok=True)


def kept_checkpoints(total: int, checkpoint_every: int, keep_last: int, milestone_every: int) -> int:
    """How many checkpoints a finished run of ``total`` steps keeps (the bound its disk use has)."""
    steps = set(range(checkpoint_every, total + 1, checkpoint_every)) | {total}
    milestones = {s for s in steps if milestone_every and s % milestone_every == 0}
    return len(milestones | set(sorted(steps)[-keep_last:] if keep_last else steps))


def remove_stale_temporaries(run_dir: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete what :func:`atomic_write` left behind when a process died mid-write, for files named
    ``names`` (``"run.json"``) or matching ``checkpoint_*.safetensors``; returns what was removed.
    Call it only while holding the run folder's lock."""
    run_dir = Path(run_dir)
    removed = []
    for path in run_dir.iterdir() if run_dir.is_dir() else []:
        match = STALE_TMP_PATTERN.match(path.name)
        if match and path.is_file() and (match["name"] in names or CHECKPOINT_PATTERN.search(match["name"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ------------------------------------------------------------------------------------------
# Nested state (optimizer, scheduler, RNG) <-> flat tensors + JSON
# ------------------------------------------------------------------------------------------
def _flatten_state(prefix: str, state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested state dict into ``tensors``; return the rest as JSON-able data."""
    if isinstance(state, np.ndarray):
        state = torch.from_numpy(state.copy())
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(state, Mapping):
        return {"__dict__": [[_json_key(k), _flatten_state(f"{prefix}.{k}", v, tensors)]
                             for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        kind = "__list__" if isinstance(state, list) else "__tuple__"
        return {kind: [_flatten_state(f"{prefix}.{i}", v, tensors) for i, v in enumerate(state)]}
    if isinstance(state, (np.integer, np.floating)):
        return state.item()
    return state


def _json_key(key: Any) -> Any:
    return {"__int__": key} if isinstance(key, int) else key


def _unflatten_state(data: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(data, dict):
        if "__tensor__" in data:
            return tensors[data["__tensor__"]]
        if "__dict__" in data:
            return {(k["__int__"] if isinstance(k, dict) else k): _unflatten_state(v, tensors)
                    for k, v in data["__dict__"]}
        if "__list__" in data:
            return [_unflatten_state(v, tensors) for v in data["__list__"]]
        if "__tuple__" in data:
            return tuple(_unflatten_state(v, tensors) for v in data["__tuple__"])
    return data


def rng_state() -> dict[str, Any]:
    """Every random generator's state, so a resumed run draws the same numbers."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys.numpy() if isinstance(keys, torch.Tensor) else keys,
                                          dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


# ------------------------------------------------------------------------------------------
# Save and load
# ------------------------------------------------------------------------------------------
DIGEST_KEY = "sha256"  # the checkpoint's metadata: a digest of its tensors, checked on every load


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes (sorted by name): any flipped byte in a
    tensor changes it."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class DamagedCheckpoint(UserError):
    """A checkpoint whose bytes are not what was written (a flipped bit, a truncated copy)."""


def _check_digest(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                  required: bool = False) -> None:
    expected = metadata.get(DIGEST_KEY)
    if expected is None and required:
        raise DamagedCheckpoint(f"{path}: damaged, it carries no digest of its tensors (rewritten by something else)")
    if expected is not None and tensor_digest(tensors) != expected:
        raise DamagedCheckpoint(f"{path}: damaged checkpoint, its tensors do not match the digest written with them")


def read_verified(path: str | Path, digest_required: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``, or :class:`DamagedCheckpoint` (one line naming it) when
    it cannot be read or its tensors are not those its digest was written for (``digest_required``: a file
    without a digest counts as damaged; else it passes when it parses, as checkpoints written before
    digests existed do)."""
    path = Path(path)
    try:
        tensors = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (OSError, ValueError, SafetensorError) as err:
        raise DamagedCheckpoint(f"{path}: damaged, it cannot be read ({err})") from None
    _check_digest(path, tensors, metadata, required=digest_required)
    return tensors


def save_verified(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` to ``path`` atomically, with the digest :func:`read_verified` checks."""
    tensors = {name: value.contiguous() for name, value in tensors.items()}
    metadata = {**(metadata or {}), DIGEST_KEY: tensor_digest(tensors)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata),
                        needed=safetensors_bytes(tensors, metadata))


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> int:
    """About how large a safetensors file of ``tensors`` and ``metadata`` is (the data, and a header that
    names each tensor and holds the metadata)."""
    data = sum(t.numel() * t.element_size() for t in tensors.values())
    header = sum(len(k) + len(v) for k, v in metadata.items()) + sum(len(name) + 80 for name in tensors)
    return data + header


def verify_checkpoint(path: str | Path) -> None:
    """Raise :class:`DamagedCheckpoint` (one line naming the file) unless ``path`` reads back with the
    digest it was written with. Checkpoints written before digests existed pass when they parse."""
    read_verified(path, digest_required=False)


def save_checkpoint(path: str | Path, *, modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    schedulers: Mapping[str, Any] | None = None,
                    scalers: Mapping[str, torch.amp.GradScaler] | None = None,
                    step: int, extra: Mapping[str, Any] | None = None,
                    generators: Mapping[str, torch.Generator] | None = None) -> Path:
    """Write one checkpoint file atomically (temp file + rename): a crash never leaves half a file.

    Tensors go into safetensors; non-tensor state (optimizer hyper-parameters, scheduler counters,
    step, ``extra``) into its JSON metadata. ``generators`` are extra ``torch.Generator`` objects
    (for instance a data sampler's).
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in unwrap(module).state_dict().items():
            tensors[f"model.{name}.{key}"] = value.detach().cpu().contiguous()
    state = {
        "step": int(step),
        "extra": dict(extra or {}),
        "optimizers": {n: o.state_dict() for n, o in (optimizers or {}).items()},
        "schedulers": {n: s.state_dict() for n, s in (schedulers or {}).items()},
        "scalers": {n: s.state_dict() for n, s in (scalers or {}).items()},
        "generators": {n: g.get_state() for n, g in (generators or {}).items()},
        "rng": rng_state(),
    }
    metadata = {"state": json.dumps(_flatten_state("state", state, tensors))}
    metadata[DIGEST_KEY] = tensor_digest(tensors)
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata),
                        needed=safetensors_bytes(tensors, metadata))


def load_checkpoint(path: str | Path, *, modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    schedulers: Mapping[str, Any] | None = None,
                    scalers: Mapping[str, torch.amp.GradScaler] | None = None,
                    generators: Mapping[str, torch.Generator] | None = None,
                    restore_rng: bool = True) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote; returns ``{"step": int, "extra": dict}``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        tensors = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = _unflatten_state(json.loads(metadata["state"]), tensors)
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise UserError(f"{path}: not a readable paper_repro checkpoint ({err})") from err
    _check_digest(path, tensors, metadata)
    for name, module in modules.items():
        prefix = f"model.{name}."
        weights = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            unwrap(module).load_state_dict(weights)  # copies onto the module's own device
        except RuntimeError:  # missing or unexpected tensors, or tensors of other shapes (else: raised as it is)
            misfit = _misfit(name, unwrap(module), weights)
            if not misfit:
                raise
            raise UserError(f"{path}: its tensors do not fit the network run.json describes ({misfit}); the "
                            "checkpoint is another run's or run.json was changed") from None
    try:
        for name, optimizer in (optimizers or {}).items():
            optimizer.load_state_dict(state["optimizers"][name])
            _match_parameter_layout(optimizer)
        for name, scheduler in (schedulers or {}).items():
            scheduler.load_state_dict(state["schedulers"][name])
        for name, scaler in (scalers or {}).items():
            scaler.load_state_dict(state["scalers"][name])
        for name, generator in (generators or {}).items():
            generator.set_state(state["generators"][name].to(torch.uint8))
        if restore_rng:
            set_rng_state(state["rng"])
        step, extra = int(state["step"]), dict(state["extra"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise UserError(f"{path}: its training state does not fit this run's optimisers and schedulers "
                        f"({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else 'malformed'}); "
                        "the checkpoint is another run's or was rewritten by something else") from None
    return {"step": step, "extra": extra}


def _misfit(name: str, module: nn.Module, weights: Mapping[str, torch.Tensor]) -> str:
    """What differs between a network's tensors and a checkpoint's (counts, and the first of each kind);
    empty when nothing does."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    resized = [k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape)]
    parts = []
    if not weights:
        parts.append(f"it holds no tensors of {name}")
    elif missing:
        parts.append(f"{len(missing)} of {name}'s tensors missing, e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
    if resized:
        first = resized[0]
        parts.append(f"{len(resized)} of other shapes, e.g. {name}.{first} {list(weights[first].shape)} in the "
                     f"file, {list(own[first].shape)} in the network")
    return "; ".join(parts)


def _match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each loaded per-parameter state tensor (saved contiguous) its parameter's memory layout:
    fused optimizers pair a parameter with its moments in memory order (channels-last weights)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    optimizer.state[param][key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def load_weights(path: str | Path, modules: Mapping[str, nn.Module]) -> dict[str, Any]:
    """Load only the network weights of a checkpoint (inference), leaving every RNG alone."""
    return load_checkpoint(path, modules=modules, restore_rng=False)


__all__ = [
    "TMP_SUFFIX", "current_umask", "human_bytes", "DISK_FULL_ERRNOS", "disk_full_errno", "DiskFull", "disk_full",
    "atomic_write", "safetensors_bytes", "checkpoint_path", "checkpoints", "latest_checkpoint",
    "prune_checkpoints", "kept_checkpoints", "remove_stale_temporaries", "rng_state", "set_rng_state",
    "DIGEST_KEY", "tensor_digest", "DamagedCheckpoint", "read_verified", "save_verified", "verify_checkpoint", "save_checkpoint", "load_checkpoint",
    "load_weights",
]
