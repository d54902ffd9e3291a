"""Where a data set is: one resolver for every ``--data``, ``--data-root`` and chapter ``data_root``.

A user's folder may be the data set itself, a folder the archive was unpacked into (which adds one
level), or a folder holding several data sets side by side; :func:`find_dataset_root` looks at the
folder, its sub-folders and theirs (skipping ``__MACOSX/`` and hidden folders), and takes the
shallowest match. How the real archives unpack:

- MVTec AD: ``mvtec_anomaly_detection.tar.xz`` has no top folder, the category folders
  (``bottle/``, ``carpet/``, ...) sit at the top of the archive; a data set root is a folder with
  ``<category>/train/good/``.
- CODEBRIM: the classification zip unpacks to ``classification_dataset/`` (the balanced one to
  ``classification_dataset_balanced/``, beside a ``__MACOSX/`` tree); a data set root is a folder
  with ``metadata/defects.xml``. When both variants are found, the original one is taken (Defect-GAN
  trains on "all the images of the classification data set"); point at the other one explicitly.

:func:`resolve_data` turns a user's folder (or ``None``, the bundled synthetic set) into a
:class:`DataSource`: the root *and* the key under which cached runs remember it, so two spellings
of one folder share their trained runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from paper_repro.data.synthetic import bundled_root
from paper_repro.errors import UserError

LAYOUTS = {"mvtec": "MVTec AD category folders with train/good/",
           "codebrim": "a CODEBRIM classification root with metadata/defects.xml"}
SKIPPED_FOLDERS = ("__MACOSX",)
SEARCH_DEPTH = 2  # the folder itself, its sub-folders and theirs
# Among several CODEBRIM roots at one depth, the first name here wins.
PREFERRED_NAMES = {"codebrim": ("classification_dataset", "CODEBRIM_classification_dataset")}


def is_dataset_root(folder: Path, layout: str) -> bool:
    """Whether ``folder`` itself is a data set in ``layout`` (``mvtec`` or ``codebrim``)."""
    if layout == "codebrim":
        return (folder / "metadata" / "defects.xml").is_file()
    if layout == "mvtec":
        return any((child / "train" / "good").is_dir() for child in _subfolders(folder))
    raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(c for c in folder.iterdir()
                      if c.is_dir() and not c.name.startswith(".") and c.name not in SKIPPED_FOLDERS)
    except OSError:
        return []


def find_dataset_root(data_root: str | Path, layout: str) -> Path:
    """The data set in ``layout`` at or below ``data_root`` (the shallowest match); else a UserError."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    data_root = Path(data_root).expanduser()
    if not data_root.is_dir():
        raise UserError(f"{data_root}: no such data folder")
    level = [data_root]
    for _ in range(SEARCH_DEPTH + 1):
        found = [folder for folder in level if is_dataset_root(folder, layout)]
        if found:
            return _pick(found, layout, data_root)
        level = [child for folder in level for child in _subfolders(folder)]
    raise UserError(f"{data_root}: neither it nor a folder up to {SEARCH_DEPTH} levels below holds "
                    f"{LAYOUTS[layout]}")


def _pick(found: list[Path], layout: str, data_root: Path) -> Path:
    if len(found) == 1:
        return found[0]
    for name in PREFERRED_NAMES.get(layout, ()):
        named = [f for f in found if f.name == name]
        if len(named) == 1:
            return named[0]
    listing = ", ".join(str(f) for f in found)
    raise UserError(f"{data_root}: holds {len(found)} data sets of the {layout} layout ({listing}); "
                    "pass the one to use")


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A resolved data set: its ``root`` folder and the ``key`` cached runs remember it by."""

    root: Path
    key: str
    layout: str
    bundled: bool

    @property
    def label(self) -> str:
        """How captions name it."""
        return "bundled synthetic surfaces" if self.bundled else str(self.root)


def resolve_data(data_root: str | Path | None, layout: str, scale: str, seed: int = 42) -> DataSource:
    """The data set a command or chapter reads: under ``data_root`` (see :func:`find_dataset_root`),
    or, when it is ``None``, the bundled synthetic set in ``layout`` at ``scale`` (generated once)."""
    if data_root is None:
        return DataSource(bundled_root(layout, scale, seed=seed), f"bundled-{layout}-{scale}-seed{seed}",
                          layout, bundled=True)
    root = find_dataset_root(data_root, layout).resolve()
    return DataSource(root, str(root), layout, bundled=False)


__all__ = ["LAYOUTS", "is_dataset_root", "find_dataset_root", "DataSource", "resolve_data"]
