"""Run folders: the configuration a run started with, its CSV log, sample grids, and the cache that
lets chapters share trained runs and expensive tensors.

    run/
      run.json                        the configuration the run was started with (+ what it ran on)
      log.csv                         one row per logged step
      checkpoint_<step>.safetensors   see :mod:`paper_repro.runs.checkpoints`
      samples/                        image grids written during training

A cached run lives at ``cache_dir()/runs/<name>-<hash>``, the hash taken over everything that
determines it (configuration, data key, seed, ...): the same arguments give the same folder, so a
second chapter asking for the same model reads it instead of training it again.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import dataclasses
import fcntl
import hashlib
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd
import torch
import torch.distributed
from torchvision.utils import save_image

from paper_repro.config import get_config
from paper_repro.environment import cache_dir
from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import atomic_write


def _jsonable(config: Any) -> Any:
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config, default=str))


def write_run_config(run_dir: str | Path, config: Any, **extra: Any) -> Path:
    """Write ``run.json`` (the dataclass ``config`` plus ``extra``) into ``run_dir``."""
    payload = {"config": _jsonable(config), **_jsonable(extra)}
    return atomic_write(Path(run_dir) / "run.json",
                        lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True)))


PAPER_NAMES = {"defect_gan": "Defect-GAN", "dadnet": "DADNet", "detection": "defect classifier"}
# Configuration fields only one configuration has: how a run.json without a "paper" key is told apart.
SIGNATURE_FIELDS = {"defect_gan": ("conv_dim", "n_critic"), "dadnet": ("recon_width", "disc_width"),
                    "detection": ("grl_coefficient",)}


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a run folder: a JSON object with the ``config`` the run was started with."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; is {Path(run_dir)} a training run folder?")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not readable JSON ({err}); is {Path(run_dir)} a training run folder?") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise UserError(f"{path}: has no \"config\" object (the configuration the run was trained with); is "
                        f"{Path(run_dir)} a training run folder?")
    return saved


def paper_of(saved: Mapping[str, Any]) -> str | None:
    """Which configuration a ``run.json`` holds: its ``paper`` key, else told by its configuration's fields."""
    named = saved.get("paper")
    if isinstance(named, str):
        key = named.strip().lower().replace("-", "_")
        return key if key in PAPER_NAMES else named
    found = [paper for paper, fields in SIGNATURE_FIELDS.items() if all(f in saved["config"] for f in fields)]
    return found[0] if len(found) == 1 else None


def _has_type(value: Any, annotation: str) -> bool:
    """Whether a JSON value fits a dataclass field's annotation (``int``, ``float | None``, ``tuple[...]``)."""
    if value is None:
        return "None" in annotation
    kind = annotation.split("|")[0].split("[")[0].strip()
    checks = {"bool": lambda v: isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
              "str": lambda v: isinstance(v, str), "tuple": lambda v: isinstance(v, list)}
    return checks.get(kind, lambda v: True)(value)


# The words of an int configuration field's name that make it a positive quantity: a size, a width (of a
# network: width, dim, hidden), a count (n_*, runs, steps, ...), a batch, iterations or epochs. No
# configuration has 0 or fewer of these; every other int field (a seed; a limit, patience, keep_last or
# milestone_every, where 0 means "none" or "all"; sample_every, where 0 means never) has a floor of 0. The
# intervals a loop divides by (log_every, checkpoint_every) are positive too.
POSITIVE_WORDS = frozenset({"size", "width", "dim", "hidden", "n", "runs", "steps", "variants", "seeds", "draws",
                            "repeat", "blocks", "critic", "normals", "synthesized", "prompts", "batch",
                            "iterations", "epochs"})
POSITIVE_FIELDS = frozenset({"log_every", "checkpoint_every"})


def least_value(name: str) -> int:
    """The smallest value an int configuration field called ``name`` can have (1 or 0; see POSITIVE_WORDS)."""
    return 1 if name in POSITIVE_FIELDS or POSITIVE_WORDS & set(name.lower().split("_")) else 0


def config_from_run(run_dir: str | Path, paper: str):
    """The ``paper``'s configuration a run was started with (from its ``run.json``), and ``run.json``.

    Fields the run does not record keep the paper's ``full`` values; JSON lists become tuples again. A
    run folder of the other paper, a field of the wrong type, or an int no configuration has (a size,
    width, count, batch, iterations or epochs below 1, any int below 0) is refused in one line.
    """
    saved = read_run_config(run_dir)
    found = paper_of(saved)
    if found != paper:
        what = (f"a {PAPER_NAMES[found]} run folder" if found in PAPER_NAMES else
                f"a run of {found!r}" if found else "not a run folder of either paper")
        raise UserError(f"{Path(run_dir)}: {what} (run.json); expected a {PAPER_NAMES[paper]} run folder")
    config = get_config(paper, "full")
    fields = {f.name: str(f.type) for f in dataclasses.fields(config)}
    for name, value in saved["config"].items():
        if name in fields and not _has_type(value, fields[name]):
            raise UserError(f"{Path(run_dir) / 'run.json'}: config {name} = {json.dumps(value)[:60]} is not of "
                            f"type {fields[name]}")
        if name in fields and fields[name].split("|")[0].strip() == "int" and value is not None \
                and value < least_value(name):
            raise UserError(f"{Path(run_dir) / 'run.json'}: config {name} = {value} is not a value a run can have "
                            f"(expected {least_value(name)} or more); the file was damaged or edited")
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved["config"].items() if k in fields}
    return dataclasses.replace(config, **values), saved


def config_differences(saved: Mapping[str, Any], config: Any, ignore: tuple[str, ...] = ()) -> list[str]:
    """``"name: saved -> new"`` for every configuration field a run was started with that ``config``
    now sets differently (fields in ``ignore``, and fields the run did not record, excepted)."""
    new = _jsonable(config)
    return [f"{name}: {saved[name]!r} -> {new[name]!r}" for name in sorted(new)
            if name in saved and name not in ignore and saved[name] != new[name]]


_HELD_LOCKS: dict[Path, int] = {}  # run folders this process holds, and how many times (re-entrant)


@contextlib.contextmanager
def run_lock(run_dir: str | Path, wait: bool = False, poll: float = 2.0) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` (an advisory ``flock`` on ``run_dir/.lock``) while training in it.

    A second process asking for it gets one line naming the folder and its holder (``wait=False``, a
    user's ``--out``), or waits until the first is done (``wait=True``: a cached run another chapter is
    training). The lock dies with its process, so a killed run never leaves its folder locked; within
    one process it is re-entrant (a cached run locks its folder, then trains in it). Only a process that
    has joined a process group as a non-zero rank skips it (rank 0 writes for the group); no environment
    variable switches it off.
    """
    run_dir = Path(run_dir)
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        yield run_dir  # a non-zero rank of a joined group: rank 0 holds the lock for the group
        return
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{run_dir}: cannot create the run folder ({err.strerror})") from None
    key = run_dir.resolve()
    if _HELD_LOCKS.get(key):
        _HELD_LOCKS[key] += 1
        try:
            yield run_dir
        finally:
            _HELD_LOCKS[key] -= 1
        return
    lock_path = run_dir / ".lock"
    try:
        handle = _open_lock(lock_path)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and not created:
            yield run_dir  # a read-only folder: no process can write into it, so reading it needs no lock
            return
        raise UserError(f"{lock_path}: cannot create the run's lock file ({err.strerror})") from None
    with handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise UserError(f"{run_dir}: in use by {holder}; wait for it to finish or choose "
                                    "another --out") from None
                time.sleep(poll)
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        _HELD_LOCKS[key] = 1
        try:
            yield run_dir
        finally:
            _HELD_LOCKS.pop(key, None)
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
            if created and [p.name for p in run_dir.iterdir()] == [".lock"]:  # nothing was written: leave no trace
                lock_path.unlink(missing_ok=True)
                run_dir.rmdir()


def _open_lock(path: Path):
    return open(path, "a+")


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
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))

    def log(self, step: int, **values: float) -> None:
        row = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        new_field = any(k not in (self.rows[0] if self.rows else {}) for k in row)
        self.rows.append(row)
        if new_field or not self.path.exists():
            self._rewrite()
        else:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self._fields()).writerow(row)

    def read(self) -> pd.DataFrame:
        """The log as a pandas DataFrame."""
        return pd.read_csv(self.path) if self.path.exists() else pd.DataFrame(columns=["step"])


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int = 8,
                    value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """Save a batch ``(N, C, H, W)`` as one PNG grid (torchvision's ``make_grid``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    low, high = value_range
    save_image(((images.detach().float().cpu() - low) / (high - low)).clamp(0, 1), path, nrow=nrow)
    return path


__all__ = [
    "write_run_config", "read_run_config", "paper_of", "POSITIVE_WORDS", "POSITIVE_FIELDS", "least_value", "config_from_run",
    "config_differences", "run_lock",
    "config_hash", "cached_run_dir",
    "CSVLog", "save_image_grid",
]
