"""Defect-free surfaces: six procedural background families.

Each ``<family>(rng, size)`` returns an albedo image ``(size, size, 3)`` float32 in [0, 1] with its own
natural variation (colour, feature scale, orientation) drawn from ``rng``. Illumination is applied
later, by :func:`illuminate`, *after* defects are composed in, so light falls on the defects too.

Feature sizes are given for a 128 px image and scale with ``size``: a 64 px sample looks like a
128 px one seen from twice as far, which is what resizing real photographs does.

Families: ``concrete`` (CODEBRIM bridges), ``metal`` (brushed steel), ``wood`` (grain, rings, knots),
``carpet`` (woven yarn), ``tile`` (terrazzo-like ceramic, like MVTec AD *tile*), ``leather``
(pebbled grain, like MVTec AD *leather*).
"""
from __future__ import annotations

import numpy as np

from paper_repro.data import noise


def _hsv_jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> np.ndarray:
    """A base colour with random brightness and a little random tint."""
    c = np.asarray(rgb, dtype=np.float32) * rng.uniform(1 - amount, 1 + amount)
    return np.clip(c * (1 + rng.normal(0, amount * 0.12, 3)), 0.02, 0.98).astype(np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a * (1 - t[..., None]) + b * t[..., None]


def concrete(rng: np.random.Generator, size: int) -> np.ndarray:
    """Cast concrete: grey (warm or cool), cloudy mottling, sand grain, air pores, faint aggregate."""
    s, shape = size / 128.0, (size, size)
    base = _hsv_jitter(rng, (0.60, 0.59, 0.56), 0.18)
    mottle = noise.fractal(rng, shape, beta=2.6)
    grain = noise.fractal(rng, shape, beta=0.6)
    dist, cell = noise.cellular(rng, shape, n_cells=int(rng.uniform(40, 90) / s))
    aggregate = (np.minimum(dist / (4.0 * s), 1.0) - 0.5) * rng.uniform(0.02, 0.06)
    lum = 1.0 + rng.uniform(0.06, 0.12) * mottle + rng.uniform(0.03, 0.06) * grain + aggregate
    pores = noise.smooth(noise.fractal(rng, shape, beta=0.0), 0.7 * s)
    pore = np.clip((pores - np.quantile(pores, 0.992)) * 8.0, 0, 1)
    lum = lum * (1 - 0.55 * pore)
    img = base * lum[..., None]
    tint = noise.fractal(rng, shape, beta=3.0)[..., None] * np.array([0.008, 0.005, -0.006], np.float32)
    return np.clip(img + tint, 0, 1)


def metal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Brushed steel or aluminium: fine streaks along one direction, a little waviness."""
    shape = (size, size)
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.05)
    base = _hsv_jitter(rng, (0.62, 0.64, 0.68), 0.15)
    streaks = noise.fractal(rng, shape, beta=1.0, stretch=rng.uniform(25, 60), angle=angle)
    wave = noise.fractal(rng, shape, beta=3.0)
    lum = 1.0 + rng.uniform(0.05, 0.10) * streaks + 0.04 * wave
    return np.clip(base * lum[..., None], 0, 1)


def wood(rng: np.random.Generator, size: int) -> np.ndarray:
    """Planed wood: growth rings (dark latewood bands) bent by noise and knots, fibre streaks, pores."""
    s, shape = size / 128.0, (size, size)
    yy, xx = noise.coords(shape)
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.08)
    c, si = np.cos(angle), np.sin(angle)
    across = (-xx * si + yy * c) / s  # distance across the grain, in 128-px units
    warp = noise.fractal(rng, shape, beta=3.2, stretch=6.0, angle=angle) * rng.uniform(3, 8)
    phase = across + warp
    if rng.random() < 0.35:  # a knot: rings crowd around a point
        ky, kx = rng.uniform(0.2, 0.8, 2) * size
        r = np.hypot(yy - ky, xx - kx) / s
        phase = phase + rng.uniform(10, 22) * np.exp(-(r / rng.uniform(6, 12)) ** 2)
    period = rng.uniform(7, 16)
    t = (phase / period) % 1.0
    late = np.clip((t - 0.72) / 0.12, 0, 1) * np.clip((1.0 - t) / 0.08, 0, 1)  # sharp latewood band
    light = _hsv_jitter(rng, (0.78, 0.58, 0.36), 0.15)
    dark = light * np.array([0.62, 0.55, 0.50], np.float32) * rng.uniform(0.85, 1.0)
    fibres = noise.fractal(rng, shape, beta=1.2, stretch=40.0, angle=angle)
    lum = 1.0 + 0.06 * fibres + 0.05 * noise.fractal(rng, shape, beta=2.5)
    img = _mix(light, dark, np.clip(late + 0.15 * noise.fractal(rng, shape, beta=2.0), 0, 1))
    return np.clip(img * lum[..., None], 0, 1)


def carpet(rng: np.random.Generator, size: int) -> np.ndarray:
    """Woven fabric: a plain weave of rounded warp and weft yarns with fibre fuzz and yarn slubs."""
    s, shape = size / 128.0, (size, size)
    yy, xx = noise.coords(shape)
    period = rng.uniform(5.0, 8.0) * s
    warp_noise = noise.fractal(rng, shape, beta=3.0) * 0.35 * period
    u, v = (xx + warp_noise) / period, (yy + warp_noise[::-1]) / period
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    over = ((iu + iv) % 2).astype(np.float32)  # which yarn lies on top in this cell
    across_warp = np.clip(np.cos((fu - 0.5) * np.pi), 0, 1) ** 0.7  # rounded yarn cross-section
    across_weft = np.clip(np.cos((fv - 0.5) * np.pi), 0, 1) ** 0.7
    along_warp = 0.75 + 0.25 * np.sin(fv * np.pi)  # yarn dips where it goes under
    along_weft = 0.75 + 0.25 * np.sin(fu * np.pi)
    height = over * across_warp * along_warp + (1 - over) * across_weft * along_weft
    colour_a = _hsv_jitter(rng, (0.52, 0.46, 0.38), 0.15)
    colour_b = colour_a * rng.uniform(0.8, 1.1, 3).astype(np.float32)
    img = _mix(colour_b, colour_a, over)
    fuzz = noise.fractal(rng, shape, beta=0.3)
    slub = noise.fractal(rng, shape, beta=2.0, stretch=8.0, angle=0.0)
    lum = 0.68 + 0.38 * height + 0.06 * fuzz + 0.05 * slub
    return np.clip(img * lum[..., None], 0, 1)


def tile(rng: np.random.Generator, size: int) -> np.ndarray:
    """Terrazzo-like ceramic tile: a pale body with light and dark flecks of several sizes."""
    s, shape = size / 128.0, (size, size)
    base = _hsv_jitter(rng, (0.62, 0.62, 0.60), 0.12)
    img = base * (1.0 + 0.05 * noise.fractal(rng, shape, beta=2.2) + 0.03 * noise.fractal(rng, shape, beta=0.5))[..., None]
    for colour, fraction, blur in (((0.92, 0.92, 0.90), 0.10, 1.2), ((0.30, 0.30, 0.32), 0.06, 0.9),
                                   ((0.80, 0.78, 0.74), 0.12, 2.0)):
        field = noise.smooth(noise.fractal(rng, shape, beta=0.2), blur * s)
        fleck = np.clip((field - np.quantile(field, 1 - fraction)) / (field.std() * 0.25 + 1e-6), 0, 1)
        img = _mix(img, _hsv_jitter(rng, colour, 0.06), fleck * 0.9)
    return np.clip(img, 0, 1)


def leather(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pebbled leather: domed grain cells separated by fine creases, a soft waxy sheen."""
    s, shape = size / 128.0, (size, size)
    dist, cell = noise.cellular(rng, shape, n_cells=int(rng.uniform(140, 260)), jitter=0.9)
    cell_radius = size / np.sqrt(np.max(cell)) * 0.55
    dome = 1.0 - np.clip(dist / cell_radius, 0, 1) ** 2
    height = noise.smooth(dome, 0.6 * s) + 0.15 * noise.fractal(rng, shape, beta=1.5)
    base = _hsv_jitter(rng, (0.42, 0.27, 0.17), 0.15)
    relief = noise.shade(height * 2.0, strength=1.2)
    lum = (0.75 + 0.25 * height) * relief + 0.04 * noise.fractal(rng, shape, beta=2.5)
    return np.clip(base * lum[..., None], 0, 1)


FAMILIES = {
    "concrete": concrete, "metal": metal, "wood": wood, "carpet": carpet, "tile": tile,
    "leather": leather,
}


def texture(family: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A defect-free albedo image of ``family`` (one of :data:`FAMILIES`), ``(size, size, 3)`` in [0, 1]."""
    try:
        make = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown surface family {family!r}: expected one of {', '.join(FAMILIES)}") from None
    return make(rng, size).astype(np.float32)


def illuminate(rng: np.random.Generator, image: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Light the scene: exposure, a linear light gradient, a soft vignette and low-frequency shading."""
    size = image.shape[0]
    yy, xx = noise.coords(image.shape[:2])
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((xx * np.cos(angle) + yy * np.sin(angle)) / size - 0.5) * rng.uniform(0.0, 0.35)
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    vignette = -rng.uniform(0.0, 0.25) * (((yy - cy) ** 2 + (xx - cx) ** 2) / size ** 2)
    field = 0.06 * noise.fractal(rng, image.shape[:2], beta=3.5)
    light = rng.uniform(0.85, 1.12) * (1.0 + strength * (ramp + vignette + field))
    return np.clip(image * light[..., None], 0, 1)


__all__ = ["FAMILIES", "texture", "illuminate", *FAMILIES]
