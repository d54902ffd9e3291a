"""The one training loop both papers' trainers run: :func:`fit`.

A trainer builds its networks and optimisers, bundles them as a :class:`TrainState`, and hands
:func:`fit` a ``step(i)`` function that performs training unit ``i`` (one Defect-GAN iteration, one
DADNet epoch) and returns the values to log. Everything around the step is written once here:

- resume from the run folder's last checkpoint (weights, optimisers, schedulers, scalers, every RNG),
  so an interrupted run continues exactly as if it had not stopped;
- ``run.json`` with the configuration, and ``log.csv`` with one row per logged unit;
- atomic checkpoints every ``checkpoint_every`` units and at the end;
- a progress bar with the remaining time, and sample pictures on request;
- several processes under ``torchrun`` (only rank 0 writes; all wait for each checkpoint).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import (checkpoint_path, latest_checkpoint, load_checkpoint, prune_checkpoints,
                                         save_checkpoint)
from paper_repro.runs.devices import Distributed
from paper_repro.runs.folders import CSVLog, write_run_config


LOGGED_KEY = "logged"  # the last logged values, kept in each checkpoint's extra


@dataclasses.dataclass
class TrainState:
    """Everything a checkpoint saves besides the step: networks, optimisers, schedulers, loss scalers."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer] = dataclasses.field(default_factory=dict)
    schedulers: dict[str, Any] = dataclasses.field(default_factory=dict)
    scalers: dict[str, torch.amp.GradScaler] = dataclasses.field(default_factory=dict)

    def parts(self) -> dict[str, dict]:
        """Keyword arguments of :func:`~paper_repro.runs.checkpoints.save_checkpoint` and ``load_checkpoint``."""
        return dict(modules=self.modules, optimizers=self.optimizers, schedulers=self.schedulers,
                    scalers=self.scalers)


def adam(params, lr: float, device: torch.device | str, betas: tuple[float, float] = (0.9, 0.999),
         fused: bool = True) -> torch.optim.Adam:
    """Adam; ``fused`` (CPU and CUDA) runs PyTorch's one-kernel implementation of the same update."""
    fused = fused and torch.device(device).type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=fused or None)


def fast_layout(module: nn.Module) -> nn.Module:
    """The module in channels-last memory order, the layout oneDNN (CPU) and cuDNN (CUDA) convolve
    fastest; activations follow the weights, checkpoints are unaffected (saved contiguous)."""
    return module.to(memory_format=torch.channels_last)


def is_finished(run_dir: str | Path, total: int) -> bool:
    """Whether the run in ``run_dir`` has its final checkpoint (step ``total``)."""
    return latest_checkpoint(run_dir) == checkpoint_path(run_dir, total)


def fit(run_dir: str | Path, state: TrainState, step: Callable[[int], Mapping[str, float]], *,
        total: int, config: Any, run_info: Mapping[str, Any], seed: int, dist: Distributed,
        resume: bool = False, log_every: int = 1, checkpoint_every: int = 1,
        keep_last: int | None = None, extra: dict[str, Any] | None = None,
        sample: Callable[[int], None] | None = None, sample_every: int | None = None,
        progress: bool = True, desc: str = "training", postfix: Mapping[str, str] | None = None,
        stop_at: int | None = None) -> Path:
    """Run ``step(i)`` for the units ``i`` not done yet, up to ``total`` (or ``stop_at``, which
    simulates an interruption); returns ``run_dir``.

    ``step`` returns the values of unit ``i`` to log; values a step does not return this time (a
    generator loss on a critic-only iteration) keep their last value in the log, across a resume too.
    ``run_info`` goes into ``run.json`` beside ``config``. ``extra`` is saved in every checkpoint and
    refilled from the last one on resume (a step may keep state in it, e.g. the best epoch so far).
    ``keep_last`` keeps only that many checkpoints (None: all). ``postfix`` maps progress-bar labels to
    logged names. A run folder that already holds checkpoints is continued only with ``resume=True``.
    """
    run_dir = Path(run_dir)
    last = latest_checkpoint(run_dir)
    if last is not None and not resume:
        raise UserError(f"{run_dir}: already holds a training run ({last.name}); pass --resume to "
                        "continue it or choose another --out folder")
    extra = {} if extra is None else extra
    logged: dict[str, float] = {}
    done = 0
    if last is not None:
        loaded = load_checkpoint(last, **state.parts())
        done = loaded["step"]
        logged = dict(loaded["extra"].pop(LOGGED_KEY, {}))
        extra.update(loaded["extra"])
        if dist.enabled:  # each process continues its own random stream
            torch.manual_seed(seed + dist.rank + 7919 * done)
    if dist.is_main:
        write_run_config(run_dir, config, **run_info)
        log = CSVLog(run_dir / "log.csv", resume_step=done if last is not None else None)
    end = min(total, stop_at if stop_at is not None else total)
    bar = tqdm(range(done, end), initial=done, total=end, desc=desc,
               disable=not (progress and dist.is_main), mininterval=2)
    tic = time.perf_counter()
    for index in bar:
        logged.update(step(index))
        done = index + 1
        if dist.is_main and (done % log_every == 0 or done == end):
            log.log(done, sec=time.perf_counter() - tic, **logged)
            tic = time.perf_counter()
            if postfix:
                bar.set_postfix({label: f"{logged.get(name, float('nan')):.4g}" for label, name in postfix.items()})
        if sample is not None and dist.is_main and sample_every and (done % sample_every == 0 or done == end):
            sample(done)
        if done % checkpoint_every == 0 or done == end:
            if dist.is_main:
                save_checkpoint(checkpoint_path(run_dir, done), step=done, extra={**extra, LOGGED_KEY: logged},
                                **state.parts())
                if keep_last:
                    prune_checkpoints(run_dir, keep_last)
            dist.barrier()
    bar.close()
    return run_dir


__all__ = ["TrainState", "adam", "fast_layout", "is_finished", "fit"]
