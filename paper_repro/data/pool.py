"""Extra normal (defect-free) images from a folder or from the procedural generator.

Defect-GAN §4.1 adds 50,000 normal crops "by simply cropping the original full-resolution images";
that source, windows of CODEBRIM's photographs that avoid the annotated defects, is
:mod:`paper_repro.data.originals`. :class:`NormalPool` serves the two others
(``DefectGANConfig.extra_normals_source``): ``"background-recrop"``, random square crops of any folder of
defect-free images (by default CODEBRIM's ``train/background``), and ``"procedural"``, bundled surfaces
drawn on the fly (nothing is written to disk, so a pool of 50,000 costs nothing until it is read).
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from paper_repro.data.io import IMAGE_SUFFIXES, image_size as header_size, image_tensor, read_image, resolve_normalize
from paper_repro.data.synthetic import normal_image
from paper_repro.data.textures import FAMILIES
from paper_repro.errors import UserError

SKIPPED_FOLDERS = ("__MACOSX",)  # a macOS zip's tree of AppleDouble files, never images


class NormalPool(Dataset):
    """``n`` defect-free images of ``image_size``; item ``i`` is the same for the same arguments.

    - ``root=None``: procedural ``family`` surfaces (default ``concrete``, CODEBRIM's material),
      generated when read.
    - ``root`` a folder: every image below it (recursively; hidden files, ``._*`` AppleDouble files
      and ``__MACOSX/`` skipped) is a source, its header checked at once; item ``i`` is a random
      square crop (side ``crop_fraction`` of the shorter image side) of source ``i mod #sources``,
      resized to ``image_size``.

    Items are dicts ``image`` float (3, S, S) in [0, 1] (or normalised) and ``path``.
    """

    def __init__(self, root: str | Path | None, n: int, image_size: int = 128, seed: int = 42,
                 family: str = "concrete", crop_fraction: tuple[float, float] = (0.3, 0.6),
                 normalize: str | tuple[Sequence[float], Sequence[float]] | None = None) -> None:
        if n < 1:
            raise ValueError(f"n={n}: expected at least one image")
        self.n, self.image_size, self.seed, self.family = int(n), int(image_size), int(seed), family
        self.crop_fraction = crop_fraction
        self.stats = resolve_normalize(normalize)
        self.sources: list[Path] = []
        self.root = None if root is None else Path(root).expanduser()
        if self.root is None:
            if family not in FAMILIES:
                raise ValueError(f"unknown surface family {family!r}: expected one of {', '.join(FAMILIES)}")
            return
        if not self.root.is_dir():
            raise UserError(f"{self.root}: normal-image folder not found; expected a folder of "
                            f"defect-free images")
        self.sources = sorted(p for p in self.root.rglob("*")
                              if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                              and not any(part.startswith(".") or part in SKIPPED_FOLDERS
                                          for part in p.relative_to(self.root).parts))
        if not self.sources:
            raise UserError(f"{self.root}: no images found; expected defect-free images "
                            f"({', '.join(IMAGE_SUFFIXES)}) in it or below it")
        for path in self.sources:  # headers only: a bomb or a non-image fails here, not mid-training
            header_size(path)

    def __len__(self) -> int:
        return self.n

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(b"pool"), index])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(index)
        if self.root is None:
            img = Image.fromarray(normal_image(self.family, self.image_size, self.seed, index))
            return {"image": image_tensor(img, self.image_size, self.stats),
                    "path": f"synthetic:{self.family}/{index:05d}"}
        path = self.sources[index % len(self.sources)]
        img = read_image(path, "RGB")
        rng = self._rng(index)
        w, h = img.size
        side = max(1, int(min(w, h) * rng.uniform(*self.crop_fraction)))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = img.crop((x, y, x + side, y + side))
        return {"image": image_tensor(crop, self.image_size, self.stats), "path": str(path)}

    def __repr__(self) -> str:
        source = f"{len(self.sources)} images under {self.root}" if self.root else f"procedural {self.family}"
        return f"NormalPool(n={self.n}, image_size={self.image_size}, source={source})"


def stack(dataset: Dataset, indices: Sequence[int] | None = None, key: str = "image") -> torch.Tensor:
    """Stack ``dataset[i][key]`` for ``indices`` (default: all) into one tensor."""
    indices = range(len(dataset)) if indices is None else indices
    return torch.stack([dataset[i][key] for i in indices])


__all__ = ["NormalPool", "stack"]
