"""Random masks M_g (DADNet §3.2: "a random process produces mask regions of various shapes").

Two families, both deterministic given a ``numpy.random.Generator``:

- :func:`perlin_mask`: DRAEM's masks. Perlin noise at a random power-of-two scale, rotated, and
  thresholded at 0.5: blob-like, irregular regions.
- :func:`shape_mask`: the paper's "random shapes": ellipses, polygons and thick strokes (scratches),
  drawn with PIL.

:func:`random_mask` picks one family per call; :func:`sample_rng` gives each (seed, index, ...) its
own generator so a sample's mask does not depend on the order samples are drawn in.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator for one sample, keyed by ``(seed, *keys)`` (e.g. epoch and index)."""
    return np.random.default_rng([int(seed), *map(int, keys)])


def perlin_noise(size: int, res: int, rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin gradient noise on a ``size x size`` grid with ``res x res`` lattice cells."""
    angles = 2 * math.pi * rng.random((res + 1, res + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    coords = np.linspace(0, res, size, endpoint=False)
    x, y = np.meshgrid(coords, coords, indexing="ij")
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = x - x0, y - y0

    def dot(dx: int, dy: int) -> np.ndarray:
        g = grads[x0 + dx, y0 + dy]
        return g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy)

    fade = lambda t: 6 * t**5 - 15 * t**4 + 10 * t**3  # noqa: E731 (Perlin's quintic)
    u, v = fade(fx), fade(fy)
    top = dot(0, 0) * (1 - u) + dot(1, 0) * u
    bottom = dot(0, 1) * (1 - u) + dot(1, 1) * u
    return math.sqrt(2) * (top * (1 - v) + bottom * v)


def perlin_mask(size: int, rng: np.random.Generator, threshold: float = 0.5,
                min_scale: int = 0, max_scale: int = 6) -> np.ndarray:
    """DRAEM's mask: Perlin noise with scale 2^k (k uniform in [min_scale, max_scale)), rotated by a
    random angle in [-90, 90] degrees, thresholded; ``(size, size)`` float32 in {0, 1}.

    The lattice counts cells per image side, whatever ``size`` is, so a mask has the same blobs
    relative to the image at every size: DRAEM's finest lattice (2^5) has 8 px cells at its 256 px
    and 2 px cells at demo's 64 px, where scattered specks teach the detector small defects.
    """
    res = 2 ** int(rng.integers(min_scale, max_scale))
    pad = 2 * size  # draw larger, rotate, crop the centre: no empty corners after rotation
    res_big = max(1, res * 2)
    noise = perlin_noise(pad, res_big, rng).astype(np.float32)
    angle = float(rng.uniform(-90, 90))
    rotated = np.asarray(Image.fromarray(noise).rotate(angle, resample=Image.BILINEAR))
    lo = (pad - size) // 2
    crop = rotated[lo:lo + size, lo:lo + size]
    return (crop > threshold).astype(np.float32)


def shape_mask(size: int, rng: np.random.Generator, max_shapes: int = 3) -> np.ndarray:
    """1 to ``max_shapes`` random ellipses, polygons or strokes; ``(size, size)`` float32 in {0, 1}."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        kind = rng.choice(["ellipse", "polygon", "stroke"])
        cx, cy = rng.uniform(0.1, 0.9, 2) * size
        r = rng.uniform(0.04, 0.2) * size
        if kind == "ellipse":
            rx, ry = r, r * rng.uniform(0.3, 1.0)
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        elif kind == "polygon":
            n = int(rng.integers(3, 8))
            angles = np.sort(rng.uniform(0, 2 * math.pi, n))
            radii = r * rng.uniform(0.4, 1.0, n)
            draw.polygon([(cx + q * math.cos(a), cy + q * math.sin(a)) for q, a in zip(radii, angles)],
                         fill=255)
        else:  # a scratch: a random walk drawn as a thick line
            n = int(rng.integers(2, 6))
            steps = rng.normal(0, r, (n, 2)).cumsum(axis=0) + (cx, cy)
            draw.line([tuple(p) for p in steps], fill=255, width=max(1, int(rng.uniform(0.01, 0.04) * size)))
    return (np.asarray(canvas) > 127).astype(np.float32)


MASK_FAMILIES = {"perlin": perlin_mask, "shapes": shape_mask}


def random_mask(size: int, rng: np.random.Generator, min_fraction: float = 0.005,
                family: str | None = None) -> torch.Tensor:
    """``M_g`` as a ``(1, size, size)`` tensor: Perlin or random shapes, half the time each
    (``family="perlin"`` or ``"shapes"`` draws only that one, e.g. to show it).

    Redrawn (with the same generator) until at least ``min_fraction`` of the pixels (and one) are set.
    """
    if family is not None and family not in MASK_FAMILIES:
        raise ValueError(f"unknown mask family {family!r}: expected one of {', '.join(MASK_FAMILIES)}")
    min_pixels = max(1.0, min_fraction * size * size)
    for _ in range(100):
        if family is None:
            draw = perlin_mask if rng.random() < 0.5 else shape_mask
        else:
            draw = MASK_FAMILIES[family]
        mask = draw(size, rng)
        if mask.sum() >= min_pixels:
            break
    return torch.from_numpy(mask)[None]


def resize_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour resize of a ``(..., H, W)`` mask, kept binary."""
    return F.interpolate(mask.reshape(-1, 1, *mask.shape[-2:]).float(), size=(size, size),
                         mode="nearest").reshape(*mask.shape[:-2], size, size)
