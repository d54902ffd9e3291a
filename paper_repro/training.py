"""Machinery every trainer shares: devices, seeds, DDP, AMP, checkpoints, logs, cached runs.

Nothing here is specific to either paper. Defect-GAN's and DADNet's training loops call these
functions so that both resume exactly, run under ``torchrun`` unchanged, and write the same files:

    run/
      run.json                        the configuration the run was started with
      log.csv                         one row per logged step
      checkpoint_<step>.safetensors   weights, optimizer/scheduler/scaler state, RNG states
      samples/                        image grids written during training
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from paper_repro.config import cache_dir
from paper_repro.errors import UserError

# ------------------------------------------------------------------------------------------
# Devices and seeds
# ------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``None``/``"auto"`` (CUDA when present, else CPU)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise UserError(f"unknown device {device!r}: expected cpu, cuda, cuda:N or auto") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} was asked for, but this machine has no CUDA device "
                        "(use --device cpu)")
    return resolved


# ------------------------------------------------------------------------------------------
# Several processes (torchrun) and mixed precision
# ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Distributed:
    """The process group a run belongs to. One process (``enabled=False``) unless launched by torchrun."""

    enabled: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device | str = "cpu") -> "Distributed":
        """Join the group torchrun describes in ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``.

        gloo on the CPU, nccl on CUDA. With ``WORLD_SIZE`` unset or 1, nothing is initialised.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as dist

        device = torch.device(device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        return cls(enabled=True, rank=rank, world_size=world_size, local_rank=local_rank)

    def device(self, device: torch.device | str) -> torch.device:
        """The device this process works on: ``cuda:<local_rank>`` under torchrun with CUDA."""
        device = torch.device(device)
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, module: nn.Module) -> nn.Module:
        """``DistributedDataParallel(module)`` in a group, else ``module`` itself."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device = next(module.parameters()).device
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of ``value`` over the group (the value itself with one process)."""
        if not self.enabled:
            return value
        value = value.detach().clone()
        torch.distributed.all_reduce(value)
        return value / self.world_size

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if hasattr(module, "module") and isinstance(
        module, torch.nn.parallel.DistributedDataParallel) else module


def autocast(device: torch.device | str, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision (float16 autocast) on CUDA; on the CPU a no-op, so results stay float32."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device | str, enabled: bool = True) -> torch.amp.GradScaler:
    """A loss scaler for float16 training on CUDA; disabled (a pass-through) elsewhere."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")


def adam(params, lr: float, device: torch.device | str) -> torch.optim.Adam:
    """Adam; on CPU and CUDA with PyTorch's fused kernel (one kernel for all parameters, the same update)."""
    return torch.optim.Adam(params, lr=lr, fused=torch.device(device).type in ("cpu", "cuda"))


def fast_layout(module: nn.Module) -> nn.Module:
    """The module in channels-last memory order, the layout oneDNN (CPU) and cuDNN (CUDA) convolve
    fastest; activations follow the weights, checkpoints are unaffected (saved contiguous)."""
    return module.to(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------
# Checkpoints: safetensors for every tensor, JSON metadata for the rest, written atomically
# ------------------------------------------------------------------------------------------

CHECKPOINT_PATTERN = re.compile(r"checkpoint_(\d+)\.safetensors$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"checkpoint_{step:08d}.safetensors"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``run_dir``, or ``None``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := CHECKPOINT_PATTERN.search(p.name))]
    return max(found)[1] if found else None


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


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | Path, *, modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    schedulers: Mapping[str, Any] | None = None,
                    scalers: Mapping[str, torch.amp.GradScaler] | None = None,
                    step: int, extra: Mapping[str, Any] | None = None,
                    generators: Mapping[str, torch.Generator] | None = None) -> Path:
    """Write one checkpoint file atomically (temp file + rename): a crash never leaves half a file.

    Tensors go into safetensors; non-tensor state (optimizer hyper-parameters, scheduler counters,
    step, ``extra``) into its JSON metadata. Nothing is pickled, so loading runs no foreign code.
    ``generators`` are extra ``torch.Generator`` objects (for instance a data sampler's).
    """
    path = Path(path)
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
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


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
    for name, module in modules.items():
        prefix = f"model.{name}."
        weights = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        unwrap(module).load_state_dict(weights)  # copies onto the module's own device
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
    return {"step": state["step"], "extra": state["extra"]}


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


# ------------------------------------------------------------------------------------------
# Run folders: configuration, CSV log, sample grids, cached runs shared by chapters
# ------------------------------------------------------------------------------------------


def _jsonable(config: Any) -> Any:
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config, default=str))


def write_run_config(run_dir: str | Path, config: Any, **extra: Any) -> Path:
    """Write ``run.json`` (the dataclass ``config`` plus ``extra``) into ``run_dir``."""
    path = Path(run_dir) / "run.json"
    payload = {"config": _jsonable(config), **_jsonable(extra)}
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True)))
    return path


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; is {Path(run_dir)} a training run folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from err


def config_from_run(run_dir: str | Path, paper: str):
    """The ``paper``'s configuration a run was started with (from its ``run.json``), and ``run.json``.

    Fields the run does not record keep the paper's ``full`` values; JSON lists become tuples again.
    """
    from paper_repro.config import get_config

    saved = read_run_config(run_dir)
    config = get_config(paper, "full")
    names = {f.name for f in dataclasses.fields(config)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved["config"].items() if k in names}
    return dataclasses.replace(config, **values), saved


def config_hash(config: Any, **extra: Any) -> str:
    """A short stable hash of a configuration (and ``extra``), for cache keys."""
    blob = json.dumps({"config": _jsonable(config), **_jsonable(extra)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cached_run_dir(name: str, config: Any, **extra: Any) -> Path:
    """``cache_dir()/runs/<name>-<hash>``: the one run folder for this exact configuration.

    Chapters that need the same trained model call this with the same arguments and share the run.
    """
    return cache_dir() / "runs" / f"{name}-{config_hash(config, **extra)}"


class CSVLog:
    """Append-only CSV of training values, one row per logged step.

    Resuming from ``resume_step`` first drops the rows logged after it, so a resumed run's log reads
    as if it had never stopped. New column names may appear later; the header grows to hold them.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as handle:
                self.rows = [r for r in csv.DictReader(handle) if int(float(r["step"])) <= resume_step]
            self._rewrite()
        elif self.path.exists():
            self.path.unlink()

    def _fields(self) -> list[str]:
        fields = ["step"]
        for row in self.rows:
            fields += [k for k in row if k not in fields]
        return fields

    def _rewrite(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self._fields())
        writer.writeheader()
        writer.writerows(self.rows)
        _atomic_write(self.path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))

    def log(self, step: int, **values: float) -> None:
        row = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        new_field = any(k not in (self.rows[0] if self.rows else {}) for k in row)
        self.rows.append(row)
        if new_field or not self.path.exists():
            self._rewrite()
        else:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self._fields()).writerow(row)

    def read(self):
        """The log as a pandas DataFrame."""
        import pandas as pd

        return pd.read_csv(self.path) if self.path.exists() else pd.DataFrame(columns=["step"])


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 8,
                    value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """Save a batch ``(N, C, H, W)`` as one PNG grid (torchvision's ``make_grid``)."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    low, high = value_range
    save_image(((images.detach().float().cpu() - low) / (high - low)).clamp(0, 1), path, nrow=nrow)
    return path


def iterate_forever(loader: Any) -> Iterator[Any]:
    """Cycle through a DataLoader epoch after epoch (re-shuffling each time)."""
    while True:
        yield from loader


__all__ = [
    "seed_everything", "resolve_device", "Distributed", "unwrap", "autocast", "grad_scaler",
    "adam", "fast_layout",
    "checkpoint_path", "latest_checkpoint", "save_checkpoint", "load_checkpoint", "load_weights",
    "rng_state", "set_rng_state", "write_run_config", "read_run_config", "config_from_run", "config_hash",
    "cached_run_dir", "CSVLog", "save_image_grid", "iterate_forever",
]
