"""Which data a chapter reads: the bundled set, or a real copy of MVTec AD / CODEBRIM.

Every chapter has a ``data_root`` parameter (None: the bundled synthetic set). Chapters call
``data_root_for(ctx.data_root, layout, ctx.scale, ctx.seed)`` and get a folder the loaders read.
"""
from __future__ import annotations

from pathlib import Path

from paper_repro.data.synthetic import LAYOUTS, bundled_root
from paper_repro.errors import UserError


def detect_layout(root: str | Path) -> str:
    """``"codebrim"`` if ``root`` holds CODEBRIM's ``metadata/`` (directly or in a
    ``classification_dataset*`` child), ``"mvtec"`` if it holds ``<category>/train/good``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: data root not found; expected an MVTec AD or CODEBRIM folder")
    if (root / "metadata").is_dir() or any((p / "metadata").is_dir() for p in root.glob("classification_dataset*")):
        return "codebrim"
    if any((p / "train" / "good").is_dir() for p in root.iterdir() if p.is_dir()):
        return "mvtec"
    raise UserError(f"{root}: neither layout found; expected <category>/train/good (MVTec AD) or "
                    f"metadata/defects.xml (CODEBRIM)")


def data_root_for(data_root: str | Path | None, layout: str, scale: str, seed: int = 42) -> Path:
    """``data_root`` checked to hold ``layout``, or the bundled set's root when it is None."""
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if data_root is None:
        return bundled_root(layout, scale, seed)
    found = detect_layout(data_root)
    if found != layout:
        raise UserError(f"{Path(data_root).expanduser()}: holds the {found} layout; this chapter expects the "
                        f"{layout} layout")
    return Path(data_root).expanduser()


__all__ = ["detect_layout", "data_root_for"]
