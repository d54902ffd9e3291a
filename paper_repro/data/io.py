"""Reading images for the loaders: one clear :class:`~paper_repro.errors.UserError` per bad file.

Also the shared transform of every loader: resize to a square ``image_size``, scale to [0, 1],
optionally normalise with a ``(mean, std)`` pair (``"imagenet"`` is a shortcut).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from paper_repro.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_READ_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header only (cheap); UserError if it is not an image."""
    try:
        with Image.open(path) as im:
            return im.size
    except _READ_ERRORS as err:
        raise UserError(f"{path}: cannot read image ({_reason(err)}); expected a PNG/JPEG/BMP/TIFF file") from None


def read_image(path: Path, mode: str = "RGB") -> Image.Image:
    """Decode ``path`` completely and convert it to ``mode`` (grayscale becomes 3-channel for RGB)."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode)
    except _READ_ERRORS as err:
        raise UserError(f"{path}: cannot read image ({_reason(err)}); expected a PNG/JPEG/BMP/TIFF file") from None


def _reason(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def resolve_normalize(normalize: str | tuple[Sequence[float], Sequence[float]] | None):
    """``None`` (keep [0, 1]), ``"imagenet"``, or an explicit ``(mean, std)`` -> tensors or None."""
    if normalize is None:
        return None
    if isinstance(normalize, str):
        if normalize.lower() != "imagenet":
            raise ValueError(f"unknown normalisation {normalize!r}: expected 'imagenet', (mean, std) or None")
        normalize = IMAGENET_STATS
    mean, std = normalize
    return (torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1),
            torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))


def image_tensor(img: Image.Image, image_size: int | None, stats=None) -> torch.Tensor:
    """PIL RGB image -> float tensor (3, S, S) in [0, 1] (bilinear, antialiased), then ``stats``."""
    if image_size is not None and img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    if stats is not None:
        x = (x - stats[0]) / stats[1]
    return x


def mask_tensor(img: Image.Image, image_size: int | None) -> torch.Tensor:
    """PIL mask (any mode) -> float tensor (1, S, S) in {0, 1}: resized (nearest), then > 127."""
    img = img.convert("L")
    if image_size is not None and img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.NEAREST)
    return torch.from_numpy((np.asarray(img) > 127).astype(np.float32))[None]


__all__ = ["IMAGE_SUFFIXES", "IMAGENET_STATS", "list_images", "image_size", "read_image",
           "resolve_normalize", "image_tensor", "mask_tensor"]
