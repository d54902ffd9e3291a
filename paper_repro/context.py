"""The run context: everything a chapter or command runs with, resolved once, in one place.

A run's numbers depend on more than its configuration profile: the scale, the device, the data set, the
seed, SDGM's checkpoint, the training precision, whether the batch is a dry run, where the cache lives and
which features FID is measured in. :class:`RunContext` holds all of them. It is built

- by a chapter's setup cell from its papermill parameters (:func:`paper_repro.book.notebook.chapter_setup`),
- by a command from its flags (``RunContext.create(scale=args.scale, device=args.device, ...)``),
- and, for whatever neither names, from the environment (:mod:`paper_repro.environment`, the one reader of
  the ``PAPER_REPRO_*`` variables).

Below it, :func:`paper_repro.config.get_config` is a pure function of its arguments; the context adds
what a process was asked for (the dry-run caps, a precision, an SDGM checkpoint, FID features) through
:meth:`RunContext.config`, so two processes given the same context build the same configuration whatever
else their environment holds. Experiments take the context (or, in tests and short scripts, a bare scale
name: :func:`as_context`).
"""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from paper_repro.config import DEFAULT_SEED, DRY_RUN_CAPS, PROFILES, check_scale, get_config
from paper_repro.data.roots import DataSource, resolve_data
from paper_repro.environment import Environment, cache_dir, default_scale, environment
from paper_repro.runs.devices import resolve_device
from paper_repro.runs.precision import resolve_precision


def configured(profile: str, scale: str, *, dry_run: bool = False, precision: str | None = None,
               sd_model: str | None = None, fid_features: str | None = None, **overrides: Any):
    """:func:`paper_repro.config.get_config` with what a run was asked for on top, as pure as it:
    a dry run caps the ``full`` counts (:data:`paper_repro.config.DRY_RUN_CAPS`), ``precision`` sets every
    profile's precision, ``sd_model`` DADNet's SDGM checkpoint, ``fid_features`` the FID features of
    Tables 1-2. Explicit ``overrides`` win over all of them."""
    changes: dict[str, Any] = dict(DRY_RUN_CAPS.get(profile, {})) if dry_run and check_scale(scale) == "full" else {}
    fields = {f.name for f in dataclasses.fields(PROFILES[profile][0])} if profile in PROFILES else set()
    for name, value in (("precision", precision), ("sd_model_id", sd_model), ("fid_features", fid_features)):
        if value and name in fields:
            changes[name] = value
    return get_config(profile, scale, **{**changes, **overrides})


@dataclass(frozen=True)
class RunContext:
    """What a chapter or command runs with (a grown-up form of the chapter's parameters), printed as one
    line by :meth:`banner`. Build it with :meth:`create`; read a profile through :meth:`config`."""

    scale: str
    device: torch.device
    data_root: Path | None = None
    seed: int = DEFAULT_SEED
    results_dir: Path | None = None
    sd_model: str | None = None         # SDGM's checkpoint; None: the profile's (the stand-in below full)
    precision: str | None = None        # every training run's precision; None: the profile's ("auto")
    dry_run: bool = False               # full profiles capped to a few steps
    fid_features: str | None = None     # Tables 1-2's FID features; None: gan_tables.fid_features

    @classmethod
    def create(cls, scale: str | None = None, device: str = "cpu", data_root: str | Path | None = None,
               seed: int = DEFAULT_SEED, results_dir: str | Path | None = None, sd_model: str | None = None,
               precision: str | None = None, dry_run: bool | None = None, fid_features: str | None = None,
               env: Environment | None = None) -> "RunContext":
        """A context from explicit settings (flags, chapter parameters); whatever they leave ``None`` comes
        from ``env`` (default: this process's variables)."""
        env = environment() if env is None else env
        return cls(scale=check_scale(scale) if scale else default_scale(env),
                   device=resolve_device(device),
                   data_root=Path(data_root).expanduser() if data_root else None,
                   seed=int(seed),
                   results_dir=Path(results_dir) if results_dir else None,
                   sd_model=sd_model or env.sd_model,
                   precision=precision or env.precision,
                   dry_run=bool(env.dry_run if dry_run is None else dry_run),
                   fid_features=fid_features)

    def config(self, profile: str, **overrides: Any):
        """The configuration ``profile`` at this context's scale, with its dry run, precision, SDGM
        checkpoint and FID features applied (:func:`configured`); ``overrides`` win."""
        return configured(profile, self.scale, dry_run=self.dry_run, precision=self.precision,
                          sd_model=self.sd_model, fid_features=self.fid_features, **overrides)

    @property
    def cache(self) -> Path:
        """The cache folder every cached artefact of this run lives under (:func:`cache_dir`)."""
        return cache_dir()

    @property
    def data_label(self) -> str:
        return str(self.data_root) if self.data_root else "bundled synthetic surfaces"

    def data(self, layout: str) -> DataSource:
        """The data set a chapter reads, in ``layout`` ``"mvtec"`` or ``"codebrim"``.

        With no ``data_root`` this is the bundled synthetic set at the context's scale (generated once,
        then cached; a dry run's counts capped). Otherwise ``data_root`` may be the data set itself, the
        folder its archive was unpacked into, or a folder holding both real data sets side by side, so one
        ``--data-root`` serves a whole ``reproduce`` batch (:func:`paper_repro.data.roots.find_dataset_root`).
        """
        return resolve_data(self.data_root, layout, self.scale, seed=self.seed, sizes=self.config("bundled_data"))

    @property
    def precision_label(self) -> str:
        """The precision training runs resolve to on this device (``auto``: bf16 on a CUDA device with it)."""
        return resolve_precision(self.precision or "auto", self.device).name

    def banner(self) -> str:
        dry = " · DRY RUN (counts capped)" if self.scale == "full" and self.dry_run else ""
        return (f"scale={self.scale}{dry} · device={self.device} · data={self.data_label} · seed={self.seed}"
                f" · torch {torch.__version__} · {platform.machine()}")

    def replace(self, **changes: Any) -> "RunContext":
        return dataclasses.replace(self, **changes)


def as_context(scale_or_context: "RunContext | str") -> RunContext:
    """``scale_or_context`` itself, or for a bare scale name the context of that scale with nothing else
    asked for (CPU, the bundled data, seed 42, no dry run): what a test or a short script passes."""
    if isinstance(scale_or_context, RunContext):
        return scale_or_context
    return RunContext.create(scale=check_scale(scale_or_context), env=Environment())


__all__ = ["configured", "RunContext", "as_context"]
