"""MVTec AD (Bergmann et al., CVPR 2019): the data set of DADNet's Tables 1-4.

Published layout, per category (15 of them: bottle, cable, capsule, carpet, grid, hazelnut, leather,
metal_nut, pill, screw, tile, toothbrush, transistor, wood, zipper)::

    <root>/<category>/train/good/000.png              defect-free training images
    <root>/<category>/test/good/000.png               defect-free test images (no mask)
    <root>/<category>/test/<defect>/000.png           defective test images
    <root>/<category>/ground_truth/<defect>/000_mask.png   pixel masks, 0 / 255, same size

The same class reads the real data and the bundled synthetic set (which writes this layout).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from paper_repro.data.io import (image_size as header_size, image_tensor, list_images, mask_tensor, read_image,
                                 resolve_normalize)
from paper_repro.errors import UserError

MVTEC_CATEGORIES = ("bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
                    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper")
TEXTURE_CATEGORIES = ("carpet", "grid", "leather", "tile", "wood")
GRAYSCALE_CATEGORIES = ("grid", "screw", "zipper")  # stored as 1-channel PNGs; read as 3-channel
# Every detector trained on a category normalises over a batch (BatchNorm in DADNet's U-Nets and the
# baselines' backbones), which needs more than one image; MVTec AD's smallest train/good holds 60.
MIN_TRAIN_IMAGES = 2


def categories(root: str | Path) -> list[str]:
    """Categories present under ``root``: folders holding ``train/good`` or ``test/good`` (so a CODEBRIM
    folder beside them, with ``train/defects``, is not taken for one)."""
    root = Path(root)
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and ((p / "train" / "good").is_dir() or (p / "test" / "good").is_dir()))


class MVTecAD(Dataset):
    """One MVTec AD category and split as a torch ``Dataset``.

    Items are dicts: ``image`` float (3, S, S) in [0, 1] (or normalised), ``mask`` float (1, S, S) in
    {0, 1} (all zero for good images), ``label`` 0 good / 1 defective, ``defect_type`` (``"good"``
    or the test folder's name) and ``path``. ``image_size`` S resizes (bilinear; masks nearest);
    ``None`` keeps the file's size. ``normalize`` is None, ``"imagenet"`` or ``(mean, std)``.

    Construction checks the layout and the headers of every file (cheap): a missing root or
    category, a ``train/good`` with fewer than :data:`MIN_TRAIN_IMAGES` images, a test image without
    its mask, a mask whose size differs from its image, or a file that is not an image (or too large,
    or of an unsupported mode) each raise one :class:`UserError` naming the path.
    """

    def __init__(self, root: str | Path, category: str, split: str = "train", image_size: int | None = 256,
                 normalize: str | tuple[Sequence[float], Sequence[float]] | None = None,
                 defect_types: Sequence[str] | None = None) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
        self.root = Path(root).expanduser()
        self.category, self.split, self.image_size = category, split, image_size
        self.stats = resolve_normalize(normalize)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: data root not found; expected an MVTec AD folder holding "
                            f"<category>/train/good and <category>/test")
        cat_dir = self.root / category
        if not cat_dir.is_dir():
            present = categories(self.root)
            raise UserError(f"{cat_dir}: category {category!r} not found; expected one of "
                            f"{', '.join(present) if present else '(none found under this root)'}")
        self.samples: list[tuple[Path, Path | None, str]] = []  # (image, mask or None, defect type)
        if split == "train":
            good = cat_dir / "train" / "good"
            files = list_images(good) if good.is_dir() else []
            if not files:
                raise UserError(f"{good}: no training images; expected defect-free images such as "
                                f"{good / '000.png'}")
            if len(files) < MIN_TRAIN_IMAGES:
                raise UserError(f"{good}: {len(files)} training image; expected at least {MIN_TRAIN_IMAGES} "
                                f"(detectors train on batches, and a batch of one cannot be normalised)")
            self.samples = [(p, None, "good") for p in files]
        else:
            self._collect_test(cat_dir, defect_types)
        self._check_headers()

    def _collect_test(self, cat_dir: Path, wanted: Sequence[str] | None) -> None:
        test = cat_dir / "test"
        if not test.is_dir():
            raise UserError(f"{test}: test folder not found; expected test/good and test/<defect> folders")
        kinds = sorted(p.name for p in test.iterdir() if p.is_dir())
        if wanted is not None:
            missing = [k for k in wanted if k not in kinds]
            if missing:
                raise UserError(f"{test / missing[0]}: defect type not found; expected one of {', '.join(kinds)}")
            kinds = [k for k in kinds if k in wanted]
        for kind in kinds:
            for path in list_images(test / kind):
                if kind == "good":
                    self.samples.append((path, None, kind))
                    continue
                mask = cat_dir / "ground_truth" / kind / f"{path.stem}_mask.png"
                if not mask.is_file():
                    raise UserError(f"{path}: test image has no mask; expected {mask}")
                self.samples.append((path, mask, kind))
        if not self.samples:
            raise UserError(f"{test}: no test images; expected test/good/000.png and test/<defect>/000.png")

    def _check_headers(self) -> None:
        for path, mask, _ in self.samples:
            size = header_size(path)
            if mask is not None:
                msize = header_size(mask)
                if msize != size:
                    raise UserError(f"{mask}: mask is {msize[0]}x{msize[1]} but its image {path.name} is "
                                    f"{size[0]}x{size[1]}; expected the same size")

    @property
    def defect_types(self) -> list[str]:
        """Test folder names in this split, ``good`` included (sorted)."""
        return sorted({kind for _, _, kind in self.samples})

    @property
    def labels(self) -> torch.Tensor:
        """0 good / 1 defective for every item, without reading images."""
        return torch.tensor([int(kind != "good") for _, _, kind in self.samples])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        path, mask_path, kind = self.samples[index]
        img = read_image(path, "RGB")
        image = image_tensor(img, self.image_size, self.stats)
        if mask_path is None:
            mask = torch.zeros(1, *image.shape[1:])
        else:
            mimg = read_image(mask_path, "L")
            if mimg.size != img.size:
                raise UserError(f"{mask_path}: mask is {mimg.size[0]}x{mimg.size[1]} but its image "
                                f"{path.name} is {img.size[0]}x{img.size[1]}; expected the same size")
            mask = mask_tensor(mimg, self.image_size)
        return {"image": image, "mask": mask, "label": int(kind != "good"), "defect_type": kind,
                "path": str(path)}

    def __repr__(self) -> str:
        return (f"MVTecAD(category={self.category!r}, split={self.split!r}, n={len(self)}, "
                f"image_size={self.image_size}, defect_types={self.defect_types})")


__all__ = ["MVTEC_CATEGORIES", "TEXTURE_CATEGORIES", "GRAYSCALE_CATEGORIES", "MIN_TRAIN_IMAGES", "categories",
           "MVTecAD"]
