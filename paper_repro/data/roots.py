"""Find a data set under a user's ``--data-root``: the data set itself, or a folder holding several.

One ``--data-root`` serves a whole ``reproduce`` batch when MVTec AD and CODEBRIM sit side by side
under it (``mvtec_anomaly_detection/``, ``CODEBRIM_classification_dataset/``, any names).
"""
from __future__ import annotations

from pathlib import Path

from paper_repro.errors import UserError

def _looks_like(folder: Path, layout: str) -> bool:
    if layout == "codebrim":
        return (folder / "metadata" / "defects.xml").is_file()
    if layout == "mvtec":
        return any((child / "train" / "good").is_dir() for child in folder.iterdir() if child.is_dir())
    raise ValueError(f"unknown layout {layout!r}: expected mvtec or codebrim")


def find_dataset_root(data_root: str | Path, layout: str) -> Path:
    """``data_root`` if it is a data set in ``layout``, else its one sub-folder that is; else a UserError."""
    data_root = Path(data_root).expanduser()
    if not data_root.is_dir():
        raise UserError(f"{data_root}: no such data folder")
    if _looks_like(data_root, layout):
        return data_root
    candidates = sorted(c for c in data_root.iterdir() if c.is_dir() and _looks_like(c, layout))
    if not candidates:
        expected = {"mvtec": "MVTec AD category folders with train/good/",
                    "codebrim": "a CODEBRIM root with metadata/defects.xml"}[layout]
        raise UserError(f"{data_root}: neither it nor a sub-folder holds {expected}")
    return candidates[0]
