"""Where a data set is: one resolver for every ``--data``, ``--data-root`` and chapter ``data_root``.

A user's folder may be the data set itself, a folder the archive was unpacked into, that folder one
level deeper, or a folder holding several data sets side by side; :func:`find_dataset_root` looks at
the folder and up to :data:`SEARCH_DEPTH` levels below it (skipping ``__MACOSX/`` and hidden
folders), and takes the shallowest match. What each layout looks like, and how the real archives
unpack (sources in the README's "Data sets" section):

- ``mvtec``: a folder whose children are category folders with ``train/good/``.
  ``mvtec_anomaly_detection.tar.xz`` has no top folder: the 15 category folders sit at the top of the
  archive (anomalib extracts it straight into its root and then looks for ``root/<category>``:
  open-edge-platform/anomalib, ``src/anomalib/data/datamodules/image/mvtecad.py``), so the folder it was
  unpacked into is the root. A per-category archive (``carpet.tar.xz``) unpacks to ``carpet/``.
- ``codebrim``: a folder with ``metadata/defects.xml``. ``CODEBRIM_classification_dataset.zip`` unpacks
  to ``classification_dataset/``, the balanced zip to ``classification_dataset_balanced/`` (beside a
  ``__MACOSX/`` tree). When both are found at one depth the original is taken (Defect-GAN trains on
  "all the images of the classification data set"); point at the other one explicitly.
- ``codebrim-originals``: CODEBRIM's full-resolution photographs, a folder with ``images/`` and
  ``annotations/``; ``CODEBRIM_original_images.zip`` unpacks to ``original_dataset/``. Found by
  :func:`find_originals` next to the classification set.

:func:`resolve_data` turns a user's folder (or ``None``, the bundled synthetic set) into a
:class:`DataSource`: the root *and* the key under which cached runs remember it, so two spellings
of one folder share their trained runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from paper_repro.data.synthetic import bundled_root, is_generated_set
from paper_repro.errors import UserError

LAYOUTS = {"mvtec": "MVTec AD category folders with train/good/ (mvtec_anomaly_detection.tar.xz holds them "
                    "at its top)",
           "codebrim": "a CODEBRIM classification folder with metadata/defects.xml (CODEBRIM_classification_"
                       "dataset.zip unpacks to classification_dataset/)",
           "codebrim-originals": "CODEBRIM's original photographs, a folder with images/ and annotations/ "
                                 "(CODEBRIM_original_images.zip unpacks to original_dataset/)"}
SKIPPED_FOLDERS = ("__MACOSX",)  # macOS zips' resource-fork tree: AppleDouble ._ files only
# The folder itself, its sub-folders and two levels more: "/data" finds /data/CODEBRIM/<zip's folder>/
# classification_dataset, the archive unpacked into the README's folder one level deeper.
SEARCH_DEPTH = 3
MAX_FOLDERS = 20_000  # a search that visits more folders than this was pointed at the wrong place
# Among several roots found at one depth, the first name here wins.
PREFERRED_NAMES = {"codebrim": ("classification_dataset", "CODEBRIM_classification_dataset"),
                   "codebrim-originals": ("original_dataset",)}
ORIGINALS_URL = "https://zenodo.org/record/2620293/files/CODEBRIM_original_images.zip?download=1"


def is_dataset_root(folder: Path, layout: str) -> bool:
    """Whether ``folder`` itself is a data set in ``layout`` (one of :data:`LAYOUTS`)."""
    if layout == "codebrim":
        return (folder / "metadata" / "defects.xml").is_file()
    if layout == "mvtec":
        return any((child / "train" / "good").is_dir() for child in _subfolders(folder))
    if layout == "codebrim-originals":
        return (folder / "images").is_dir() and (folder / "annotations").is_dir()
    raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(c for c in folder.iterdir()
                      if c.is_dir() and not c.name.startswith(".") and c.name not in SKIPPED_FOLDERS)
    except OSError:
        return []


def find_dataset_root(data_root: str | Path, layout: str, depth: int = SEARCH_DEPTH) -> Path:
    """The data set in ``layout`` at or below ``data_root`` (the shallowest match, at most ``depth``
    levels down); else one UserError saying what was looked for, and where."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    data_root = Path(data_root).expanduser()
    if not data_root.is_dir():
        what = "a file" if data_root.exists() else "no such folder"
        raise UserError(f"{data_root}: {what}; expected a data folder holding {LAYOUTS[layout]}")
    level, visited = [data_root], 0
    for _ in range(depth + 1):
        found = [folder for folder in level if is_dataset_root(folder, layout)]
        if found:
            return _pick(found, layout, data_root)
        visited += len(level)
        if visited > MAX_FOLDERS:
            break
        level = [child for folder in level for child in _subfolders(folder)]
    hint = _hint(data_root, layout)
    raise UserError(f"{data_root}: neither it nor a folder up to {depth} levels below holds "
                    f"{LAYOUTS[layout]}{hint}")


def _hint(data_root: Path, layout: str) -> str:
    if layout == "mvtec" and (data_root / "train" / "good").is_dir():
        return f"; it looks like one category folder: pass its parent, {data_root.parent}"
    if layout == "codebrim" and (data_root / "train" / "defects").is_dir():
        return "; it has train/defects/ but no metadata/defects.xml beside it"
    return ""


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
    """A resolved data set: its ``root`` folder and the ``key`` cached runs remember it by.

    ``data_root`` is the folder the user named (``None`` for the bundled set): related archives, such
    as CODEBRIM's original photographs, are looked for under it too.
    """

    root: Path
    key: str
    layout: str
    bundled: bool
    data_root: Path | None = None

    @property
    def label(self) -> str:
        """How captions name it."""
        return "bundled synthetic surfaces" if self.bundled else str(self.root)


def resolve_data(data_root: str | Path | None, layout: str, scale: str, seed: int = 42, sizes=None) -> DataSource:
    """The data set a command or chapter reads: under ``data_root`` (see :func:`find_dataset_root`),
    or, when it is ``None``, the bundled synthetic set in ``layout`` at ``scale`` (generated once;
    ``sizes``, a ``bundled_data`` configuration, replaces the scale's, as a dry run's does)."""
    if data_root is None:
        return DataSource(bundled_root(layout, scale, seed=seed, sizes=sizes), f"bundled-{layout}-{scale}-seed{seed}",
                          layout, bundled=True)
    root = find_dataset_root(data_root, layout).resolve()
    return DataSource(root, str(root), layout, bundled=False, data_root=Path(data_root).expanduser().resolve())


def originals_search_folders(source: DataSource, normals_dir: str | Path | None = None) -> list[Path]:
    """Where :func:`find_originals` looks, in order: ``normals_dir`` alone when given; for the bundled
    set its own root (never a sibling: another bundled set's photographs are not this one's); else the
    folder the user named and the classification set's parent (the originals zip unpacked beside it)."""
    if normals_dir is not None:
        return [Path(normals_dir).expanduser()]
    if source.bundled:
        return [source.root]
    folders = [source.data_root] if source.data_root is not None else []
    folders.append(source.root.parent)
    return list(dict.fromkeys(folders))


def is_generated_data(source: DataSource) -> bool:
    """Whether ``source`` was written by this project (the bundled set, or a ``data synth`` folder: its
    ``SYNTHETIC.json`` at the resolved root or at a folder between it and the one the user named)."""
    if source.bundled:
        return True
    stop = source.data_root
    for folder in (source.root, *source.root.parents):
        if is_generated_set(folder):
            return True
        if stop is None or folder == stop or folder == folder.parent:
            break
    return False


def find_originals(source: DataSource, normals_dir: str | Path | None = None) -> Path:
    """The ``original_dataset`` folder of CODEBRIM's photographs that belongs with ``source``; else one
    UserError naming what is missing, where it looked, the command that fetches it and the fallback."""
    folders = originals_search_folders(source, normals_dir)
    for folder in folders:
        try:
            return find_dataset_root(folder, "codebrim-originals")
        except UserError:
            continue
    where = ", ".join(str(f) for f in folders)
    target = folders[-1]
    raise UserError(
        f"CODEBRIM's original photographs (original_dataset/ with images/ and annotations/) not found at or up "
        f"to {SEARCH_DEPTH} levels below {where}; the 50,000 extra normals of Defect-GAN §4.1 are cropped "
        f"from them. Fetch them with: wget -O CODEBRIM_original_images.zip '{ORIGINALS_URL}' && 7z x "
        f"CODEBRIM_original_images.zip -o{target} (about 7.8 GB), or choose the fallback "
        f"extra_normals_source='background-recrop' (re-crops of train/background)")


__all__ = ["LAYOUTS", "SEARCH_DEPTH", "is_dataset_root", "find_dataset_root", "DataSource", "resolve_data",
           "originals_search_folders", "is_generated_data", "find_originals"]
