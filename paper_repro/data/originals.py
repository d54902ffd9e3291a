"""CODEBRIM's original photographs, and the defect-free windows Defect-GAN §4.1 crops from them.

§4.1: "we additionally collected 50,000 normal image patches by simply cropping the original
full-resolution images". Those images are the Zenodo archive ``CODEBRIM_original_images.zip``
(doi 10.5281/zenodo.2620293), which unpacks to::

    original_dataset/images/image_0000001.jpg          1,590 JPEG photographs, up to 6000x4000
    original_dataset/annotations/image_0000001.xml     Pascal-VOC-like boxes, matched by file stem

Each annotation holds ``<object>`` elements, each with a ``<Defect>`` block (0/1 children Background,
Crack, Spallation, Efflorescence, ExposedBars, CorrosionStain) and a ``<bndbox>`` whose four children
are xmin, ymin, xmax, ymax. Sources: the dataset-ninja converter reads the Defect block and the box
*positionally* (dataset-ninja/codebrim, ``src/convert.py``, lines 41-76); the layout and the file
types are from the same repository and from third-party audits of the archive, which also report
macOS ``__MACOSX/`` and ``._*`` entries in this zip (all collected in the README's "Data sets").
The reader here is tolerant: child tags are matched by name (any case) where they carry the
expected names, and by position otherwise.

How the windows are drawn (:class:`DefectFreeCrops`):

- a box whose Defect block marks a defect (any of the five classes, or no readable block at all) is
  avoided; a box marking Background only (49 such boxes in the whole set, per dataset-ninja's
  statistics) is not;
- window ``i`` comes from its own generator seeded by ``(seed, i)``: a photograph drawn uniformly, a
  square side drawn uniformly from :data:`WINDOW_FRACTION` of the photograph's shorter side, a position
  drawn uniformly; a window that overlaps any defect box is rejected and redrawn, up to
  :data:`MAX_DRAWS` times, then a one-line error;
- EXIF orientation is not applied: the boxes refer to the stored pixel array (dataset-ninja re-saves
  every photograph with ``cv2.IMREAD_IGNORE_ORIENTATION`` before uploading its boxes);
- photographs without an annotation file are skipped (their defects are unknown) and listed.

The window size is not stated in the paper. :data:`WINDOW_FRACTION` is the interquartile range of the
annotated defect boxes, the boxes CODEBRIM's defect crops were cut from: over dataset-ninja's 5,180
distinct defect boxes (``stats/object_sizes.json``), the square root of a box's area divided by its
photograph's shorter side has quartiles 0.10 and 0.26 (median 0.16). Extra normals so cut look at the
concrete from the distance the defect crops do.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from paper_repro.data.codebrim import CODEBRIM_CLASSES
from paper_repro.data.io import image_size, image_tensor, list_images, read_image, resolve_normalize
from paper_repro.errors import UserError

WINDOW_FRACTION = (0.10, 0.26)  # window side / shorter photograph side (see the module's last paragraph)
MAX_DRAWS = 1_000  # windows tried for one crop before giving up
BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Photograph:
    """One original photograph: its file, stored size ``(width, height)`` and defect boxes."""

    path: Path
    size: tuple[int, int]
    boxes: tuple[Box, ...]


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1].lower()  # namespace stripped, any case


def _children(element: ET.Element, names: Sequence[str]) -> list[str | None]:
    """The text of ``element``'s children: by tag name where all ``names`` are present, else by position."""
    children = list(element)
    by_name = {_tag(c): (c.text or "").strip() for c in children}
    if all(n.lower() in by_name for n in names):
        return [by_name[n.lower()] for n in names]
    texts = [(c.text or "").strip() for c in children]
    return texts[:len(names)] + [None] * (len(names) - len(texts))


def _is_defect(obj: ET.Element) -> bool:
    """Whether an annotated object marks a defect. Objects without a readable Defect block count as defects."""
    block = next((e for e in obj.iter() if _tag(e) == "defect"), None)
    if block is None:
        return True
    values = _children(block, CODEBRIM_CLASSES)
    if any(v not in ("0", "1") for v in values):
        return True
    return any(v == "1" for v in values[1:])


def read_boxes(xml_path: Path) -> tuple[Box, ...]:
    """The defect boxes ``(xmin, ymin, xmax, ymax)`` of one annotation file, in stored-pixel coordinates."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as err:
        raise UserError(f"{xml_path}: not well-formed XML ({err}); expected a CODEBRIM annotation with "
                        f"<object> elements") from None
    boxes = []
    for k, obj in enumerate(e for e in root.iter() if _tag(e) == "object"):
        if not _is_defect(obj):
            continue
        bndbox = next((e for e in obj.iter() if _tag(e) == "bndbox"), None)
        values = _children(bndbox, BOX_TAGS) if bndbox is not None else [None] * 4
        try:
            x0, y0, x1, y1 = (float(v) for v in values)
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                raise ValueError("not finite")
        except (TypeError, ValueError):
            raise UserError(f"{xml_path}: <object> #{k + 1} has no readable <bndbox> (got {values}); expected "
                            f"four finite numbers xmin, ymin, xmax, ymax") from None
        boxes.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return tuple(boxes)


class CODEBRIMOriginals:
    """The photographs of an ``original_dataset`` folder with their defect boxes.

    ``photographs`` lists those with an annotation file (sorted by name); ``unannotated`` the images
    without one, which are not used. Construction reads every annotation and every image header.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        images, annotations = self.root / "images", self.root / "annotations"
        if not images.is_dir() or not annotations.is_dir():
            raise UserError(f"{self.root}: expected CODEBRIM's original_dataset/ holding images/ and "
                            f"annotations/ (CODEBRIM_original_images.zip unpacks to it)")
        self.photographs: list[Photograph] = []
        self.unannotated: list[Path] = []
        for path in list_images(images):
            xml = annotations / f"{path.stem}.xml"
            if not xml.is_file():
                self.unannotated.append(path)
                continue
            self.photographs.append(Photograph(path, image_size(path), read_boxes(xml)))
        if not self.photographs:
            raise UserError(f"{images}: no photograph with an annotation in {annotations}; expected "
                            f"image_NNNNNNN.jpg beside annotations/image_NNNNNNN.xml")

    def __len__(self) -> int:
        return len(self.photographs)

    def __repr__(self) -> str:
        boxes = sum(len(p.boxes) for p in self.photographs)
        skipped = f", {len(self.unannotated)} without annotations skipped" if self.unannotated else ""
        return f"CODEBRIMOriginals({self.root}, {len(self)} photographs, {boxes} defect boxes{skipped})"


def overlaps(window: Box, box: Box) -> bool:
    """Whether the window ``[x0, x1) x [y0, y1)`` shares a pixel with the box (its xmax/ymax pixels included)."""
    wx0, wy0, wx1, wy1 = window
    bx0, by0, bx1, by1 = box
    return wx0 <= bx1 and bx0 < wx1 and wy0 <= by1 and by0 < wy1


class DefectFreeCrops(Dataset):
    """``n`` square windows of CODEBRIM's photographs that avoid every defect box, resized to ``image_size``.

    Item ``i`` is the same for the same ``(originals, seed, i)``; items are dicts ``image`` float
    (3, S, S) in [0, 1] (or normalised) and ``path`` (``<photograph>#x,y,side``).
    """

    def __init__(self, originals: CODEBRIMOriginals, n: int, image_size: int = 128, seed: int = 42,
                 window: tuple[float, float] = WINDOW_FRACTION,
                 normalize: str | tuple[Sequence[float], Sequence[float]] | None = None) -> None:
        if n < 1:
            raise ValueError(f"n={n}: expected at least one crop")
        self.originals, self.n, self.image_size, self.seed = originals, int(n), int(image_size), int(seed)
        self.window_fraction = window
        self.stats = resolve_normalize(normalize)

    def __len__(self) -> int:
        return self.n

    def window(self, index: int) -> tuple[Photograph, tuple[int, int, int]]:
        """Crop ``index``: its photograph and ``(x, y, side)`` in stored pixels."""
        rng = np.random.default_rng([self.seed, zlib.crc32(b"original-crops"), index])
        photos = self.originals.photographs
        for _ in range(MAX_DRAWS):
            photo = photos[int(rng.integers(len(photos)))]
            w, h = photo.size
            side = max(1, int(round(min(w, h) * rng.uniform(*self.window_fraction))))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            if not any(overlaps((x, y, x + side, y + side), box) for box in photo.boxes):
                return photo, (x, y, side)
        raise UserError(f"{self.originals.root}: no window free of defect boxes in {MAX_DRAWS} draws for crop "
                        f"{index}; expected photographs with defect-free concrete outside their boxes")

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(index)
        photo, (x, y, side) = self.window(index)
        w, h = photo.size
        # Decode no finer than the output needs: the window must keep at least image_size pixels a side.
        scale = max(1.0, side / self.image_size)
        picture = read_image(photo.path, "RGB", at_least=(int(np.ceil(w / scale)), int(np.ceil(h / scale))))
        r = picture.size[0] / w  # 1, 1/2, 1/4 or 1/8
        crop = picture.resize((self.image_size, self.image_size), Image.BILINEAR,
                              box=(x * r, y * r, (x + side) * r, (y + side) * r))
        return {"image": image_tensor(crop, None, self.stats), "path": f"{photo.path}#{x},{y},{side}"}

    def __repr__(self) -> str:
        return f"DefectFreeCrops(n={self.n}, image_size={self.image_size}, {self.originals!r})"


__all__ = ["WINDOW_FRACTION", "MAX_DRAWS", "Photograph", "read_boxes", "CODEBRIMOriginals", "overlaps",
           "DefectFreeCrops"]
