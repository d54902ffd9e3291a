"""The ``PAPER_REPRO_*`` environment variables, read in this one module.

A run's settings come from its command's flags or its chapter's parameters first
(:class:`paper_repro.context.RunContext`); whatever those leave open comes from these variables, which
the book build and ``reproduce`` set for the notebooks they start. No other module reads them (a test
scans the package), so a process's configuration is never changed behind a reader's back.

=================================  ==========================================================================
``PAPER_REPRO_SCALE``              a chapter's scale when no parameter names one (the book build sets it)
``PAPER_REPRO_CACHE``              the cache folder (generated data, trained runs); ``~/.cache/paper_repro``
``PAPER_REPRO_DRY_RUN``            ``1``: ``full`` profiles capped to a few steps (``reproduce --dry-run``)
``PAPER_REPRO_PRECISION``          every training run's precision (``reproduce --precision``)
``PAPER_REPRO_SD_MODEL``           SDGM's checkpoint (``reproduce --sd-model``)
``PAPER_REPRO_SD_DOWNLOAD``        ``1``: SDGM may download a Hub checkpoint (default: local files only)
``PAPER_REPRO_INCEPTION_WEIGHTS``  the Inception-v3 FID weights file
``PAPER_REPRO_BACKBONE_WEIGHTS``   a folder holding torchvision's ImageNet weight files
``PAPER_REPRO_REPOSITORY_URL``     the repository the rendered book links to
=================================  ==========================================================================
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from paper_repro.config import check_scale
from paper_repro.errors import UserError

SCALE_ENV = "PAPER_REPRO_SCALE"
CACHE_ENV = "PAPER_REPRO_CACHE"
DRY_RUN_ENV = "PAPER_REPRO_DRY_RUN"
PRECISION_ENV = "PAPER_REPRO_PRECISION"
SD_MODEL_ENV = "PAPER_REPRO_SD_MODEL"
SD_DOWNLOAD_ENV = "PAPER_REPRO_SD_DOWNLOAD"
INCEPTION_WEIGHTS_ENV = "PAPER_REPRO_INCEPTION_WEIGHTS"
BACKBONE_WEIGHTS_ENV = "PAPER_REPRO_BACKBONE_WEIGHTS"
REPOSITORY_ENV = "PAPER_REPRO_REPOSITORY_URL"
VARIABLES = (SCALE_ENV, CACHE_ENV, DRY_RUN_ENV, PRECISION_ENV, SD_MODEL_ENV, SD_DOWNLOAD_ENV,
             INCEPTION_WEIGHTS_ENV, BACKBONE_WEIGHTS_ENV, REPOSITORY_ENV)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Environment:
    """What the ``PAPER_REPRO_*`` variables of a process say (``None`` or ``False`` where unset)."""

    scale: str | None = None
    cache: str | None = None
    dry_run: bool = False
    precision: str | None = None
    sd_model: str | None = None
    sd_download: bool = False
    inception_weights: str | None = None
    backbone_weights: str | None = None
    repository_url: str | None = None

    @classmethod
    def read(cls, env: Mapping[str, str] | None = None) -> "Environment":
        env = os.environ if env is None else env
        text = {name: (env.get(name) or "").strip() or None for name in VARIABLES}
        return cls(scale=text[SCALE_ENV], cache=text[CACHE_ENV], dry_run=_flag(text[DRY_RUN_ENV]),
                   precision=text[PRECISION_ENV], sd_model=text[SD_MODEL_ENV], sd_download=_flag(text[SD_DOWNLOAD_ENV]),
                   inception_weights=text[INCEPTION_WEIGHTS_ENV], backbone_weights=text[BACKBONE_WEIGHTS_ENV],
                   repository_url=text[REPOSITORY_ENV])


def environment() -> Environment:
    """This process's ``PAPER_REPRO_*`` variables, read now."""
    return Environment.read()


def default_scale(env: Environment | None = None) -> str:
    """The scale a chapter runs at when nobody injects one: ``$PAPER_REPRO_SCALE`` or ``smoke`` (of ``env``,
    default this process's variables).

    The book command sets ``PAPER_REPRO_SCALE=demo``; nbval and a plain ``jupyter`` session get
    ``smoke``; papermill (``python -m paper_repro reproduce``) injects the scale as a parameter.
    """
    return check_scale((environment() if env is None else env).scale or "smoke")


def cache_dir() -> Path:
    """Where expensive artefacts (generated data sets, shared trained runs) are cached.

    ``$PAPER_REPRO_CACHE`` if set (the Makefile sets ``<repo>/.cache``), else ``~/.cache/paper_repro``.
    """
    root = environment().cache or Path.home() / ".cache" / "paper_repro"
    path = Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        what = "names a file, not a folder" if path.exists() and not path.is_dir() else err.strerror
        raise UserError(f"{CACHE_ENV}={root}: {what}; point it at a folder this user can write, or unset "
                        "it for ~/.cache/paper_repro") from None
    return path


def exported(dry_run: bool = False, sd_model: str | None = None, precision: str | None = None):
    """Set the variables every chapter kernel started meanwhile inherits (a batch's dry run, SDGM
    checkpoint, precision), then put the old values back: how ``reproduce`` hands its flags to
    notebooks, whose kernels read them back through
    :meth:`paper_repro.context.RunContext.create`."""
    return exported_variables({DRY_RUN_ENV: "1" if dry_run else None, SD_MODEL_ENV: sd_model,
                               PRECISION_ENV: precision})


@contextlib.contextmanager
def exported_variables(wanted: dict[str, str | None]) -> Iterator[None]:
    """Set each variable of ``wanted`` that has a value (``None``: leave it as it is) for the duration."""
    old = {name: os.environ.get(name) for name in wanted}
    try:
        for name, value in wanted.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


__all__ = ["SCALE_ENV", "CACHE_ENV", "DRY_RUN_ENV", "PRECISION_ENV", "SD_MODEL_ENV", "SD_DOWNLOAD_ENV",
           "INCEPTION_WEIGHTS_ENV", "BACKBONE_WEIGHTS_ENV", "REPOSITORY_ENV", "VARIABLES", "Environment",
           "environment", "default_scale", "cache_dir", "exported", "exported_variables"]
