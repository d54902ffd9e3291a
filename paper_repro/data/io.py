"""Reading images for the loaders: every file as the picture it is, or one clear refusal.

MVTec AD ships 8-bit RGB and 8-bit grayscale PNGs (grid, screw and zipper are grayscale) and CODEBRIM
8-bit RGB PNG crops and JPEG photographs; a user's own folder may hold anything Pillow opens. Every
reader of the package (the loaders, :class:`~paper_repro.data.NormalPool`, the crops of CODEBRIM's
original photographs, and ``defect_gan.control.read_images``) goes through :func:`read_image`, which

- reads 1-bit, 8-bit grayscale (with or without alpha), palette (with or without transparency), RGB,
  RGBA, CMYK and YCbCr as Pillow converts them (alpha is dropped, as anomalib's ``convert("RGB")``
  drops it);
- scales 16-bit grayscale (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) to 8 bits (``v / 257``), where a
  plain ``convert("RGB")`` clips every value above 255 and turns the picture white; Pillow itself keeps
  the high byte of 16-bit RGB, RGBA and grayscale-with-alpha PNGs;
- reads 32-bit integer (``I``) pixels as 16-bit data when they lie in 0..65535 (how Pillow stored
  16-bit PNGs before the ``I;16`` modes, and how 16-bit TIFFs often arrive), and 32-bit float (``F``)
  pixels in 0..1 as fractions of white or in 0..255 as 8-bit levels; other ranges have no agreed
  meaning and are refused;
- refuses every other mode, and any image over Pillow's decompression-bomb limit
  (``Image.MAX_IMAGE_PIXELS``, about 89 megapixels; CODEBRIM's largest photographs, 6000x4000, are
  24 MP), in one :class:`~paper_repro.errors.UserError` naming the file.

EXIF orientation is not applied: masks (MVTec AD) and boxes (CODEBRIM's annotations) refer to the
stored pixel array, as in anomalib's and the CODEBRIM authors' loaders.

Also the shared transform of every loader: resize to a square ``image_size``, scale to [0, 1],
optionally normalise with a ``(mean, std)`` pair (``"imagenet"`` is a shortcut).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from paper_repro.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's decompression-bomb threshold, ~89.5 MP
# Modes Pillow converts to RGB and L as the picture they are.
EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
SIXTEEN_BIT_GRAY = ("I;16", "I;16B", "I;16L", "I;16N")
WIDE_MODES = SIXTEEN_BIT_GRAY + ("I", "F")
EXPECTED = "an 8- or 16-bit grayscale, palette, RGB(A) or CMYK PNG/JPEG/BMP/TIFF file"
_READ_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError)
_BOMBS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped, and with them the
    ``._name`` AppleDouble companions a macOS zip adds)."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def open_image(path: Path) -> Image.Image:
    """``Image.open(path)`` (header only), refusing decompression bombs and unsupported modes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except _BOMBS as err:
        raise UserError(f"{path}: refused: {_reason(err)}; expected an image of at most "
                        f"{MAX_PIXELS:,} pixels") from None
    except _READ_ERRORS as err:
        raise UserError(f"{path}: cannot read image ({_reason(err)}); expected {EXPECTED}") from None
    if image.mode not in EIGHT_BIT_MODES + WIDE_MODES:
        mode = image.mode
        image.close()
        raise UserError(f"{path}: image mode {mode!r} is not supported; expected {EXPECTED}")
    return image


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header only (cheap); UserError if it is not a readable image."""
    with open_image(path) as im:
        return im.size


def read_image(path: Path, mode: str = "RGB", at_least: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``path`` completely as an 8-bit picture in ``mode`` (``"RGB"`` or ``"L"``); grayscale
    becomes 3-channel for RGB. One UserError naming the file for anything that cannot be read so.

    ``at_least`` ``(width, height)`` lets a JPEG decoder skip detail nobody will see: it decodes at the
    smallest DCT scale (1/2, 1/4 or 1/8) still at least that large (Pillow's ``Image.draft``), so the
    picture may be smaller than the stored one; other formats ignore it.
    """
    with open_image(path) as im:
        try:
            if at_least is not None:
                im.draft(None, at_least)
            im.load()
            picture = _eight_bit(im, path)
            if picture.mode == "PA" or (picture.mode == "P" and "transparency" in picture.info):
                picture = picture.convert("RGBA")  # the palette's transparency, then dropped like alpha
            return picture.convert(mode)
        except _READ_ERRORS as err:
            raise UserError(f"{path}: cannot read image ({_reason(err)}); expected {EXPECTED}") from None


def _eight_bit(im: Image.Image, path: Path) -> Image.Image:
    """The 8-bit picture stored in ``im``: 16-bit and 32-bit pixels scaled to 0..255, as the module says."""
    if im.mode in EIGHT_BIT_MODES:
        return im
    pixels = np.asarray(im)
    if im.mode in SIXTEEN_BIT_GRAY:
        return _gray(pixels / 257.0)
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if im.mode == "I" and 0 <= low and high <= 65535:
        return _gray(pixels / 257.0)
    if im.mode == "F" and np.isfinite(pixels).all() and 0 <= low and high <= 1:
        return _gray(pixels * 255.0)
    if im.mode == "F" and np.isfinite(pixels).all() and 0 <= low and high <= 255:
        return _gray(pixels)
    kind = "32-bit integer" if im.mode == "I" else "32-bit float"
    expected = "0..65535" if im.mode == "I" else "0..1 or 0..255"
    raise UserError(f"{path}: {kind} pixels range over {low:g}..{high:g}, which has no agreed meaning as "
                    f"a picture; expected {expected}, or {EXPECTED}")


def _gray(levels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), mode="L")


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


__all__ = ["IMAGE_SUFFIXES", "IMAGENET_STATS", "MAX_PIXELS", "EIGHT_BIT_MODES", "WIDE_MODES", "list_images",
           "open_image", "image_size", "read_image", "resolve_normalize", "image_tensor", "mask_tensor"]
