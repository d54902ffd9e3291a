"""Photographed surfaces: real texture photographs that ship inside an installed package, cropped into
defect-free samples for the bundled MVTec-layout set (:mod:`paper_repro.data.synthetic`).

A detector trained and measured only on procedural surfaces overstates what it does on photographed
ones, which is what MVTec AD and a camera give. scikit-image ships three 512 x 512 grayscale
photographs of real surfaces inside its wheel (``skimage/data/{brick,grass,gravel}.png``, read by
``skimage.data.brick()`` etc., nothing downloaded). Their sources and licences are stated in
scikit-image's ``skimage/data/_fetchers.py`` (the docstrings of ``brick``, ``grass`` and ``gravel``,
scikit-image 0.26 as installed; the same text in scikit-image/scikit-image on GitHub):

- ``brick``: CC0Textures, "Bricks25" (https://cc0textures.com/view.php?tex=Bricks25, now ambientCG),
  Creative Commons CC0; scikit-image applied a perspective transform, rotated it by 90 degrees (the
  courses run vertically), cropped and scaled it.
- ``grass``: DeviantArt, linolafett, "Grass 01" (https://www.deviantart.com/linolafett/art/Grass-01-434853879),
  Creative Commons CC0; cropped to 512 x 512 at the top left and converted to grayscale.
- ``gravel``: CC0Textures, "Gravel04" (https://cc0textures.com/view.php?tex=Gravel04), Creative Commons
  CC0; rescaled to 1024 x 1024, its top-left 512 x 512 cropped and converted to grayscale.

(scikit-learn's sample images are not used here, nor anywhere in the project.) ``skimage.data.moon()``
is a photograph of a surface too, but its docstring names neither a source nor a licence, so it is left out.

**Held-out regions.** Each photograph is split into two disjoint column bands: training crops (and
``extra_normal``) are drawn from columns ``[0, 288)`` only, test crops (good and defective) from
columns ``[288, 512)`` only (:data:`REGIONS`). A crop is sampled from its band's own array (the
anti-aliasing blur included), so no pixel of the test band ever reaches a training image.

**Normal-preserving augmentation** (:func:`crop`): a window of :data:`WINDOW` source pixels times a
scale drawn log-uniformly from :data:`SCALE_RANGE`, at a random position and orientation, resampled
(bilinear) to the requested size. Each choice keeps a defect-free surface defect-free:

- *scale 0.8-1.2*: the camera 20 % nearer or farther; grains, blades and bricks keep natural sizes
  (MVTec AD's textures are taken at one distance, so the range stays narrow);
- *grass and gravel, any rotation and a mirror image*: ground cover photographed from above has no
  preferred direction, so every rotation and reflection of it is another view of the same surface;
- *brick, half turns and mirror images with a tilt of at most 4 degrees*: a running bond stays a running
  bond under a half turn and under reflection and a camera is never perfectly aligned, but a quarter
  turn would turn the courses across, a surface no training image of the photograph shows.

Light (exposure, gradient, vignette) and sensor noise are then added by the same code as for the
procedural surfaces (:func:`paper_repro.data.synthetic.render`), after the defects are composed in.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from skimage import data as skimage_data  # a dependency of the package: its wheel holds the photographs

from paper_repro.errors import UserError

SIDE = 512          # every photograph is SIDE x SIDE
WINDOW = 128        # source pixels across a crop at scale 1 (a quarter of the photograph)
SCALE_RANGE = (0.8, 1.2)
# Disjoint column bands (x0, x1): a rotated window of the largest scale is 154 * sqrt(2) = 218 px
# across, so it fits in either band at any angle, and the test crops follow the training crops' law.
REGIONS = {"train": (0, 288), "test": (288, SIDE)}
SPLIT_REGION = {"train": "train", "extra_normal": "train", "test": "test"}  # data-set split -> band
MAX_TILT = 4.0      # degrees, brick


@dataclass(frozen=True)
class Photograph:
    """A surface photograph shipped by an installed package, with where it came from."""

    loader: str       # the function of ``skimage.data`` that reads it
    file: str         # its file inside the installed package
    source: str       # where the photograph was published
    licence: str
    processing: str   # what scikit-image did to it before shipping it
    orientations: str  # "any" (every rotation and mirror) or "courses" (half turns, mirrors, small tilt)


PHOTOGRAPHS: dict[str, Photograph] = {
    "brick": Photograph("brick", "skimage/data/brick.png",
                        "CC0Textures, Bricks25: https://cc0textures.com/view.php?tex=Bricks25 (now ambientCG)",
                        "Creative Commons CC0 1.0",
                        "perspective transform, rotated 90 degrees, cropped and scaled to 512 x 512 (scikit-image)",
                        "courses"),
    "grass": Photograph("grass", "skimage/data/grass.png",
                        "DeviantArt, linolafett, Grass 01: https://www.deviantart.com/linolafett/art/Grass-01-434853879",
                        "Creative Commons CC0 1.0",
                        "top-left 512 x 512 cropped, converted to grayscale (scikit-image)", "any"),
    "gravel": Photograph("gravel", "skimage/data/gravel.png",
                         "CC0Textures, Gravel04: https://cc0textures.com/view.php?tex=Gravel04 (now ambientCG)",
                         "Creative Commons CC0 1.0",
                         "rescaled to 1024 x 1024, top-left 512 x 512 cropped, converted to grayscale (scikit-image)",
                         "any"),
}


@lru_cache(maxsize=None)
def photograph(name: str) -> np.ndarray:
    """Photograph ``name`` as float32 ``(SIDE, SIDE)`` in [0, 1], read from the installed scikit-image."""
    if name not in PHOTOGRAPHS:
        raise ValueError(f"unknown photograph {name!r}: expected one of {', '.join(PHOTOGRAPHS)}")
    image = np.asarray(getattr(skimage_data, PHOTOGRAPHS[name].loader)())
    if image.shape != (SIDE, SIDE) or image.dtype != np.uint8:
        raise UserError(f"skimage.data.{name}(): a {image.shape} {image.dtype} image; expected {SIDE} x {SIDE} uint8")
    image = (image.astype(np.float32) / 255.0)
    image.setflags(write=False)
    return image


def digest(name: str) -> str:
    """sha256 of the photograph's pixels (recorded in a data set's marker)."""
    return hashlib.sha256((photograph(name) * 255).round().astype(np.uint8).tobytes()).hexdigest()


def region(name: str, split: str) -> np.ndarray:
    """The band of photograph ``name`` a data-set ``split`` (train, extra_normal, test) draws from."""
    x0, x1 = REGIONS[SPLIT_REGION[split]]
    return photograph(name)[:, x0:x1]


@lru_cache(maxsize=32)
def _prefiltered(name: str, split: str, sigma: float) -> np.ndarray:
    """The band blurred before a downsampling crop (anti-aliasing); blurred on its own, reflecting at its
    edges, so the other band's pixels never leak in."""
    band = region(name, split)
    return ndimage.gaussian_filter(band, sigma, mode="reflect") if sigma > 0 else band


def sample_grid(name: str, split: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Where one crop of photograph ``name`` for ``split`` samples its band: row and column coordinates
    ``(size, size)`` in the band's own pixels, and the anti-aliasing blur (sigma, band pixels).

    Draws, from ``rng`` in this order: the scale, the orientation (angle, mirror), the centre; the
    window's rotated footprint lies inside the band (:data:`REGIONS`), bilinear neighbours included.
    """
    band_h, band_w = region(name, split).shape
    scale = float(np.exp(rng.uniform(np.log(SCALE_RANGE[0]), np.log(SCALE_RANGE[1]))))
    window = WINDOW * scale
    if PHOTOGRAPHS[name].orientations == "any":
        angle = float(rng.uniform(0.0, 2 * np.pi))
    else:  # brick: courses stay along the photograph's axis
        angle = float(np.pi * rng.integers(2) + np.deg2rad(rng.uniform(-MAX_TILT, MAX_TILT)))
    mirror = bool(rng.random() < 0.5)
    c, s = np.cos(angle), np.sin(angle)
    half = window / 2 * (abs(c) + abs(s))  # half the side of the rotated window's bounding box
    cy = float(rng.uniform(half, band_h - 1 - half))
    cx = float(rng.uniform(half, band_w - 1 - half))
    step = window / size  # source pixels per output pixel
    # ~ the Gaussian that band-limits a downsampling by ``step`` (none when enlarging); rounded so that
    # few blurred bands are cached
    sigma = round(0.5 * float(np.sqrt(step ** 2 - 1)), 2) if step > 1.05 else 0.0
    t = (np.arange(size, dtype=np.float64) + 0.5 - size / 2) * step
    v, u = np.meshgrid(t, -t if mirror else t, indexing="ij")  # rows (v) and columns (u) of the window
    return cy + u * s + v * c, cx + u * c - v * s, sigma


def crop(name: str, split: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One defect-free sample of photograph ``name`` for ``split`` (``train``, ``extra_normal`` or
    ``test``): ``(size, size, 3)`` float32 in [0, 1], the photograph's gray in all three channels,
    sampled (bilinear) from the split's band alone at :func:`sample_grid`'s coordinates."""
    ys, xs, sigma = sample_grid(name, split, rng, size)
    out = ndimage.map_coordinates(_prefiltered(name, split, sigma), [ys, xs], order=1, mode="nearest")
    return np.repeat(np.clip(out, 0, 1).astype(np.float32)[..., None], 3, axis=2)


def sources() -> dict[str, dict[str, str]]:
    """Per photograph: file, source, licence, processing and digest (for ``SYNTHETIC.json``)."""
    return {name: {"file": p.file, "package": "scikit-image", "source": p.source, "licence": p.licence,
                   "processing": p.processing, "sha256": digest(name),
                   "train_columns": list(REGIONS["train"]), "test_columns": list(REGIONS["test"])}
            for name, p in PHOTOGRAPHS.items()}


__all__ = ["SIDE", "WINDOW", "SCALE_RANGE", "REGIONS", "SPLIT_REGION", "Photograph", "PHOTOGRAPHS", "photograph",
           "digest", "region", "sample_grid", "crop", "sources"]
