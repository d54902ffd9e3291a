"""CODEBRIM classification (Mundt et al., CVPR 2019): the data set of Defect-GAN's Tables 1-3.

Published layout (``classification_dataset`` of the Zenodo archive, doi 10.5281/zenodo.2620293)::

    <root>/train|val|test/defects/<name>.png       crops showing one or more defects
    <root>/train|val|test/background/<name>.png    defect-free crops
    <root>/metadata/defects.xml                    <Defect name="<name>.png"> records, one per crop,
    <root>/metadata/background.xml                 children Background, Crack, Spallation,
                                                   Efflorescence, ExposedBars, CorrosionStain = 0/1

Labels are read by **tag name**, never by child position (the authors' loader reads them by
position, ``defect[i].text``: MrtnMndt/meta-learning-CODEBRIM, ``MetaQNN/lib/Datasets/datasets.py``;
reading by name survives a reordered file). The *balanced* variant (``classification_dataset_balanced``)
repeats crops under suffixed names ``<stem>_-_<k>.png``; these map back to the record of
``<stem>.png``, as the authors' ``__getitem__`` strips ``_-_`` (same file). The same class reads the
bundled synthetic set.

What the published archive is known to hold, and how each is met (the README's "Data sets" section
lists the sources):

- metadata records whose crop is not in the archive (reported in issue 16: 7,735 records for 7,729
  crops; third-party audits of the archive compute ``metadata_rows_without_image``; bikit's
  ``codebrim-classif.csv`` lists 7,729 crops, split 6,481/616/632): skipped, and listed in
  :attr:`CODEBRIM.absent`; ``python -m paper_repro data check`` prints their count;
- an image without a record: an error (its labels are unknown);
- the same crop recorded twice with different labels: a warning naming it (the last record is used);
- macOS ``__MACOSX/`` trees and ``._<name>`` AppleDouble files: never read.
"""
from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from paper_repro.data.io import image_size as header_size, image_tensor, list_images, read_image, resolve_normalize
from paper_repro.errors import UserError

CODEBRIM_CLASSES = ("Background", "Crack", "Spallation", "Efflorescence", "ExposedBars", "CorrosionStain")
SPLITS = ("train", "val", "test")
KINDS = ("defects", "background")
_BALANCED_SUFFIX = re.compile(r"_-_\d+$")


def record_name(path: Path) -> str:
    """The metadata name of an image file: ``x_-_3.png`` (balanced variant) -> ``x.png``."""
    return _BALANCED_SUFFIX.sub("", path.stem) + path.suffix


def find_root(root: Path) -> Path:
    """``root`` itself if it holds ``metadata/``; else its ``classification_dataset*`` child (the
    original ``classification_dataset`` before the balanced one). Deeper searches are
    :func:`paper_repro.data.roots.find_dataset_root`'s job."""
    if (root / "metadata").is_dir():
        return root
    children = sorted(p for p in root.glob("classification_dataset*") if (p / "metadata").is_dir())
    original = [p for p in children if p.name == "classification_dataset"]
    return (original or children or [root])[0]


def _classes_of(vector: list[float]) -> str:
    return "+".join(c for c, v in zip(CODEBRIM_CLASSES, vector) if v) or "none"


def read_metadata(xml_path: Path) -> dict[str, list[float]]:
    """``{crop name: [0/1 over CODEBRIM_CLASSES]}`` from one metadata XML, read by tag name."""
    if not xml_path.is_file():
        raise UserError(f"{xml_path}: metadata file not found; expected CODEBRIM's metadata/defects.xml "
                        f"and metadata/background.xml")
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as err:
        raise UserError(f"{xml_path}: not well-formed XML ({err}); expected <Defect name=\"...\"> records") from None
    labels: dict[str, list[float]] = {}
    for i, rec in enumerate(tree.getroot().iter("Defect")):
        name = rec.get("name")
        if not name:
            raise UserError(f"{xml_path}: <Defect> record #{i + 1} has no name attribute; expected "
                            f"<Defect name=\"crop.png\">")
        vector = []
        for tag in CODEBRIM_CLASSES:
            child = rec.find(tag)
            text = (child.text or "").strip() if child is not None else None
            if text not in ("0", "1"):
                got = "missing" if child is None else repr(text)
                raise UserError(f"{xml_path}: record {name!r} has <{tag}> {got}; expected <{tag}>0</{tag}> "
                                f"or <{tag}>1</{tag}>")
            vector.append(float(text))
        if name in labels and labels[name] != vector:
            warnings.warn(f"{xml_path}: record {name!r} appears more than once with different labels "
                          f"({_classes_of(labels[name])}, then {_classes_of(vector)}); the last one is used",
                          stacklevel=2)
        labels[name] = vector
    if not labels:
        raise UserError(f"{xml_path}: no <Defect name=\"...\"> records; expected one per crop")
    return labels


class CODEBRIM(Dataset):
    """One CODEBRIM classification split as a multi-label torch ``Dataset``.

    Items are dicts: ``image`` float (3, S, S) in [0, 1] (or normalised), ``labels`` float[6] over
    :data:`CODEBRIM_CLASSES`, ``path``. Construction parses both metadata files, checks that every
    image of every split has a record, and reads each image header of this split; any problem is one
    :class:`UserError` naming the path. Records naming a crop that is in no split are skipped and
    listed in :attr:`absent` (``"<kind>/<name>"``, sorted).
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int | None = 128,
                 normalize: str | tuple[Sequence[float], Sequence[float]] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
        given = Path(root).expanduser()
        if not given.is_dir():
            raise UserError(f"{given}: data root not found; expected a CODEBRIM classification folder "
                            f"holding train/, val/, test/ and metadata/")
        self.root = find_root(given)
        self.split, self.image_size = split, image_size
        self.stats = resolve_normalize(normalize)
        meta = {kind: read_metadata(self.root / "metadata" / f"{kind}.xml") for kind in KINDS}
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise UserError(f"{split_dir}: split folder not found; expected {split}/defects and {split}/background")
        on_disk: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self.samples: list[tuple[Path, list[float]]] = []
        for sp in SPLITS:
            for kind in KINDS:
                folder = self.root / sp / kind
                for path in list_images(folder) if folder.is_dir() else []:
                    name = record_name(path)
                    if name not in meta[kind]:
                        raise UserError(f"{path}: no <Defect name=\"{name}\"> record in "
                                        f"{self.root / 'metadata' / f'{kind}.xml'}; expected one per crop")
                    on_disk[kind].add(name)
                    if sp == split:
                        self.samples.append((path, meta[kind][name]))
        self.absent = sorted(f"{kind}/{name}" for kind in KINDS for name in set(meta[kind]) - on_disk[kind])
        if not self.samples:
            raise UserError(f"{split_dir}: no images; expected {split}/defects/*.png and {split}/background/*.png")
        for path, _ in self.samples:
            header_size(path)

    def absent_summary(self) -> str:
        """One line on the records skipped because their crop is not in the archive ("" if none)."""
        if not self.absent:
            return ""
        examples = ", ".join(self.absent[:3]) + (", ..." if len(self.absent) > 3 else "")
        return (f"{len(self.absent)} metadata records name files absent from the archive (e.g. {examples}); "
                f"skipped")

    @property
    def labels(self) -> torch.Tensor:
        """(N, 6) label matrix, without reading images (for class weights and samplers)."""
        return torch.tensor([lab for _, lab in self.samples], dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        path, labels = self.samples[index]
        image = image_tensor(read_image(path, "RGB"), self.image_size, self.stats)
        return {"image": image, "labels": torch.tensor(labels, dtype=torch.float32), "path": str(path)}

    def __repr__(self) -> str:
        counts = self.labels.sum(0).int().tolist() if self.samples else []
        per_class = ", ".join(f"{c}={n}" for c, n in zip(CODEBRIM_CLASSES, counts))
        skipped = f", {len(self.absent)} records of absent files skipped" if self.absent else ""
        return f"CODEBRIM(split={self.split!r}, n={len(self)}, image_size={self.image_size}, {per_class}{skipped})"


__all__ = ["CODEBRIM_CLASSES", "SPLITS", "record_name", "find_root", "read_metadata", "CODEBRIM"]
