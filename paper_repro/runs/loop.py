"""The one training loop both papers' trainers run: :func:`fit`.

A trainer builds its networks and optimisers, bundles them as a :class:`TrainState`, and hands
:func:`fit` a ``step(i)`` function that performs training unit ``i`` (one Defect-GAN iteration, one
DADNet epoch) and returns the values to log. Everything around the step is written once here:

- the run folder is locked while training (a second process gets one line, or waits for a cached run);
- resume from the run folder's last checkpoint (weights, optimisers, schedulers, scalers, every RNG),
  so an interrupted run continues exactly as if it had not stopped - and only with the configuration it
  was started with (another one is refused, naming the fields that differ);
- ``run.json`` with the configuration, ``log.csv`` with one row per logged unit, and the same values in
  TensorBoard when it is installed (``pip install '.[tensorboard]'``; ``tensorboard --logdir RUN``);
- atomic checkpoints every ``checkpoint_every`` units and at the end, of which the last ``keep_last`` and
  every ``milestone_every``-th are kept; the disk a run will need is said before it starts, and a run
  whose checkpoints will not fit on its disk does not start (one line); a disk that fills up, or a
  file-size limit, while it writes is one line too, the last checkpoint intact;
- a progress bar with the remaining time, and sample pictures on request;
- several processes under ``torchrun`` (only rank 0 writes; all wait for each checkpoint).
"""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torchvision.utils import make_grid, save_image

from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import (DiskFull, checkpoint_path, checkpoints, disk_full, disk_full_errno,
                                         human_bytes, kept_checkpoints, latest_checkpoint, load_checkpoint,
                                         prune_checkpoints, remove_stale_temporaries, save_checkpoint)
from paper_repro.runs.devices import Distributed
from paper_repro.runs.folders import CSVLog, config_differences, read_run_config, run_lock, write_run_config
from paper_repro.runs.progress import bars_off, tqdm

try:  # TensorBoard is the optional `tensorboard` extra
    from torch.utils.tensorboard import SummaryWriter
except ImportError:
    SummaryWriter = None

LOGGED_KEY = "logged"  # the last logged values, kept in each checkpoint's extra
RUN_FILES = ("run.json", "log.csv", "best.safetensors", "metrics.json")
# Configuration fields a resumed run may change: when it logs, samples and checkpoints, and its precision.
BOOKKEEPING = ("log_every", "sample_every", "checkpoint_every", "keep_last", "milestone_every", "precision")


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

    def checkpoint_bytes(self) -> int:
        """About how large one checkpoint of this state is: the modules' tensors and the optimisers'
        per-parameter state (Adam keeps two moments, SGD with momentum one)."""
        tensors = sum(t.numel() * t.element_size() for m in self.modules.values() for t in m.state_dict().values())
        for optimizer in self.optimizers.values():
            moments = 2 if isinstance(optimizer, torch.optim.Adam) else int(
                bool(optimizer.defaults.get("momentum")))
            tensors += moments * sum(p.numel() * p.element_size() for g in optimizer.param_groups for p in g["params"])
        return tensors


def _fused(fused: bool, device: torch.device | str) -> bool | None:
    """``fused=`` for a PyTorch optimizer: its one-kernel update exists on CPU and CUDA only."""
    return (fused and torch.device(device).type in ("cpu", "cuda")) or None


def adam(params, lr: float, device: torch.device | str, betas: tuple[float, float] = (0.9, 0.999),
         fused: bool = True) -> torch.optim.Adam:
    """Adam; ``fused`` (CPU and CUDA) runs PyTorch's one-kernel implementation of the same update."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=_fused(fused, device))


def sgd(params, lr: float, device: torch.device | str, momentum: float = 0.0, fused: bool = True) -> torch.optim.SGD:
    """SGD; ``fused`` (CPU and CUDA) runs PyTorch's one-kernel implementation of the same update
    (~4 % of a demo Table 3 step on one CPU thread: benchmarks/bench_classifier.py)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, fused=_fused(fused, device))


def fast_layout(module: nn.Module) -> nn.Module:
    """The module in channels-last memory order, the layout oneDNN (CPU) and cuDNN (CUDA) convolve
    fastest; activations follow the weights, checkpoints are unaffected (saved contiguous)."""
    return module.to(memory_format=torch.channels_last)


def is_finished(run_dir: str | Path, total: int) -> bool:
    """Whether the run in ``run_dir`` has its final checkpoint (step ``total``)."""
    return latest_checkpoint(run_dir) == checkpoint_path(run_dir, total)


def disk_needs(run_dir: Path, state: TrainState, total: int, checkpoint_every: int, keep_last: int | None,
               milestone_every: int) -> tuple[int, int, int, int]:
    """``(each, kept, needed, free)``: bytes of one checkpoint, how many the run keeps at most, the bytes
    they need beyond what the run folder's checkpoints already hold, and the bytes free on its disk."""
    each = state.checkpoint_bytes()
    kept = kept_checkpoints(total, checkpoint_every, keep_last or 0, milestone_every) if keep_last else \
        len(range(checkpoint_every, total + 1, checkpoint_every)) + (total % checkpoint_every != 0)
    held = sum(path.stat().st_size for _, path in checkpoints(run_dir))
    return each, kept, max(0, kept * each - held), shutil.disk_usage(run_dir).free


def disk_plan(run_dir: Path, state: TrainState, total: int, checkpoint_every: int, keep_last: int | None,
              milestone_every: int) -> str:
    """One line saying how much disk the run's checkpoints will take at most, and how much is free."""
    each, kept, needed, free = disk_needs(run_dir, state, total, checkpoint_every, keep_last, milestone_every)
    rule = f"the last {keep_last}" + (f" and every {milestone_every}th" if milestone_every else "") if keep_last \
        else "all"
    line = (f"disk: checkpoints of ~{human_bytes(each)} each, {rule} kept: at most {kept}, "
            f"~{human_bytes(kept * each)}; {human_bytes(free)} free in {run_dir}")
    return line + (" - NOT ENOUGH" if needed > free else "")


def check_disk(run_dir: Path, state: TrainState, total: int, checkpoint_every: int, keep_last: int | None,
               milestone_every: int) -> None:
    """Refuse to start a run whose checkpoints (as many as it keeps at most) do not fit on its disk."""
    each, kept, needed, free = disk_needs(run_dir, state, total, checkpoint_every, keep_last, milestone_every)
    if needed > free:
        raise DiskFull(f"{run_dir}: not enough disk for this run's checkpoints: it keeps up to {kept} of "
                       f"~{human_bytes(each)}, ~{human_bytes(needed)} needed, {human_bytes(free)} free; free some "
                       "space, keep fewer checkpoints or choose another --out")


@contextlib.contextmanager
def room_to_write(run_dir: Path):
    """Turn a write into the run folder that finds no room (full disk, file-size limit, quota: log.csv, a
    sample grid, TensorBoard) into :class:`DiskFull`'s one line; checkpoints say so themselves."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as err:
        code = disk_full_errno(err)
        if code is None:
            raise
        named = getattr(err, "filename", None)
        raise disk_full(Path(named) if isinstance(named, str) else Path(run_dir) / "its log", code) from None


class RunLogger:
    """``log.csv``, and TensorBoard beside it when the package is installed."""

    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool):
        self.csv = CSVLog(run_dir / "log.csv", resume_step=resume_step)
        self.writer = None
        if tensorboard and SummaryWriter is not None:
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        self.csv.log(step, **values)
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def image(self, step: int, grid: torch.Tensor) -> None:
        if self.writer is not None:
            self.writer.add_image("samples", grid, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def check_same_configuration(run_dir: Path, config: Any, run_info: Mapping[str, Any]) -> None:
    """Refuse to resume ``run_dir`` under a configuration (or run settings) other than its own."""
    saved = read_run_config(run_dir)
    changed = config_differences(saved["config"], config, ignore=BOOKKEEPING)
    changed += [f"{k}: {saved[k]!r} -> {v!r}" for k, v in sorted(run_info.items())
                if k in saved and k != "precision" and saved[k] != _plain(v)]
    if changed:
        raise UserError(f"{run_dir}: was started with another configuration ({'; '.join(changed)}); resume it "
                        "with its own settings or choose another --out")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def fit(run_dir: str | Path, state: TrainState, step: Callable[[int], Mapping[str, float]], *,
        total: int, config: Any, run_info: Mapping[str, Any], seed: int, dist: Distributed,
        resume: bool = False, log_every: int = 1, checkpoint_every: int = 1,
        keep_last: int | None = None, milestone_every: int = 0, extra: dict[str, Any] | None = None,
        sample: Callable[[], torch.Tensor] | None = None, sample_every: int | None = None, sample_nrow: int = 8,
        progress: bool = True, desc: str = "training", postfix: Mapping[str, str] | None = None,
        stop_at: int | None = None, wait: bool = False, tensorboard: bool = True) -> Path:
    """Run ``step(i)`` for the units ``i`` not done yet, up to ``total`` (or ``stop_at``, which
    simulates an interruption); returns ``run_dir``.

    ``step`` returns the values of unit ``i`` to log; values a step does not return this time (a
    generator loss on a critic-only iteration) keep their last value in the log, across a resume too.
    ``run_info`` goes into ``run.json`` beside ``config``. ``extra`` is saved in every checkpoint and
    refilled from the last one on resume (a step may keep state in it, e.g. the best epoch so far).
    ``keep_last`` keeps only that many checkpoints (None: all) plus every ``milestone_every``-th.
    ``sample()`` returns images (N, 3, H, W) in [0, 1], saved as a grid every ``sample_every`` units.
    ``postfix`` maps progress-bar labels to logged names. A run folder that already holds checkpoints is
    continued only with ``resume=True``; ``wait`` waits for another process training in it.
    """
    run_dir = Path(run_dir)
    with run_lock(run_dir, wait=wait):
        if dist.is_main:
            remove_stale_temporaries(run_dir, RUN_FILES)
        last = latest_checkpoint(run_dir)
        if last is not None and not resume:
            raise UserError(f"{run_dir}: already holds a training run ({last.name}); pass --resume to "
                            "continue it or choose another --out folder")
        if last is not None:
            check_same_configuration(run_dir, config, run_info)
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
        end = min(total, stop_at if stop_at is not None else total)
        if dist.is_main and done < end:  # before anything is written: a run that cannot fit does not start
            check_disk(run_dir, state, total, checkpoint_every, keep_last, milestone_every)
        if dist.is_main:
            with room_to_write(run_dir):
                write_run_config(run_dir, config, **run_info)
                logger = RunLogger(run_dir, done if last is not None else None, tensorboard)
            if progress and done < end and not bars_off():
                # a line for the command line, beside the bar; a chapter (bars off) shows no log line
                tqdm.write(disk_plan(run_dir, state, total, checkpoint_every, keep_last, milestone_every))
        bar = tqdm(range(done, end), initial=done, total=end, desc=desc,
                   disable=not (progress and dist.is_main), mininterval=2)
        tic = time.perf_counter()
        units = iter(bar)  # held here, so that on an error the bar is cleared below, not left by its iterator
        try:
            for index in units:
                logged.update(step(index))
                done = index + 1
                if dist.is_main and (done % log_every == 0 or done == end):
                    with room_to_write(run_dir):
                        logger.scalars(done, {"sec": time.perf_counter() - tic, **logged})
                    tic = time.perf_counter()
                    if postfix:
                        bar.set_postfix({label: f"{logged.get(name, float('nan')):.4g}"
                                         for label, name in postfix.items()})
                if sample is not None and dist.is_main and sample_every and (done % sample_every == 0 or done == end):
                    grid = make_grid(sample().detach().float().cpu().clamp(0, 1), nrow=sample_nrow)
                    with room_to_write(run_dir):
                        (run_dir / "samples").mkdir(exist_ok=True)
                        save_image(grid, run_dir / "samples" / f"step_{done:08d}.png")
                        logger.image(done, grid)
                if done % checkpoint_every == 0 or done == end:
                    if dist.is_main:
                        save_checkpoint(checkpoint_path(run_dir, done), step=done,
                                        extra={**extra, LOGGED_KEY: logged}, **state.parts())
                        if keep_last:
                            prune_checkpoints(run_dir, keep_last, milestone_every)
                    dist.barrier()
        except BaseException:
            bar.leave = False  # the error's own line is what stays on the terminal, not a half bar
            bar.close()
            units.close()
            if dist.is_main:
                with contextlib.suppress(Exception):
                    logger.close()
            raise
        bar.close()
        if dist.is_main:
            logger.close()
    return run_dir


__all__ = ["TrainState", "adam", "sgd", "fast_layout", "is_finished", "disk_needs", "disk_plan",
           "check_disk", "room_to_write", "RunLogger",
           "check_same_configuration", "fit"]
