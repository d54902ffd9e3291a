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

import csv
import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torchvision.utils import save_image

from paper_repro.config import cache_dir, get_config
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


def cached_tensors(kind: str, key: Any, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``compute()``'s tensors, computed once per ``key`` and kept as one safetensors file.

    The file is ``cache_dir()/<kind>/<hash of key>.safetensors``, written atomically, so two
    processes asking at once at worst compute twice and never read half a file.
    """
    path = cache_dir() / kind / f"{config_hash(key)}.safetensors"
    if path.is_file():
        return load_file(str(path))
    tensors = {name: value.contiguous() for name, value in compute().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))
    return tensors


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
    "write_run_config", "read_run_config", "config_from_run", "config_hash", "cached_run_dir",
    "cached_tensors", "CSVLog", "save_image_grid",
]
