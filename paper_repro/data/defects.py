"""Defects painted onto a surface, each as layers composed with :func:`paper_repro.compose.compose`.

A defect is a list of :class:`Layer` s — a foreground ``f``, a coverage map ``m`` and the part of it
that counts as defective in the ground truth — applied as ``image = compose(image, f, m)``, the same
``b * (1 - m) + f * m`` as Defect-GAN eq. (2) and DADNet eq. (6). Foregrounds are computed *from*
the surface under them (darkened, tinted, shaded, re-textured), never flat stickers: a crack is a
deep shadow in the surface with a darker halo, a spall shows rougher aggregate lit from one side,
rust multiplies the surface colour so its texture shows through.

CODEBRIM classes (Mundt et al. 2019): ``crack``, ``spallation``, ``efflorescence``, ``exposed_bars``,
``corrosion_stain``. MVTec-style classes: ``scratch``, ``hole``, ``stain`` (liquid/colour),
``contamination`` (foreign particle or thread), ``missing_part``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paper_repro.compose import compose
from paper_repro.data import noise

WHITE = np.array([0.94, 0.94, 0.91], np.float32)


@dataclass
class Layer:
    """One composition step: ``foreground`` (H, W, 3), ``alpha`` (H, W) in [0, 1], ``mask`` (H, W) bool."""

    foreground: np.ndarray
    alpha: np.ndarray
    mask: np.ndarray | None = None  # None: a shading side effect (halo, shadow) outside the ground truth


def _scale(img: np.ndarray) -> tuple[float, tuple[int, int]]:
    return img.shape[0] / 128.0, img.shape[:2]


def _fade(intensity: np.ndarray, low: float = 0.2, high: float = 0.35) -> np.ndarray:
    """Coverage of a diffuse deposit: its faint fringe (below ``low``) is cut so the visible stain and
    its ground-truth mask (``intensity > low``) agree."""
    return intensity * np.clip((intensity - low) / (high - low), 0, 1)


def crack(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """A fracture: a tapering, branching dark fissure (deep shadow) with a faint darker halo."""
    s, shape = _scale(img)
    size = shape[0]
    paths = [noise.random_walk(rng, shape, rng.uniform(0.5, 1.1) * size, step=1.5 * s)]
    for _ in range(rng.integers(0, 3)):  # branches leave the main crack at random points
        start = paths[0][rng.integers(0, len(paths[0]))]
        paths.append(noise.random_walk(rng, shape, rng.uniform(0.15, 0.4) * size, start=tuple(start),
                                       step=1.5 * s))
    width = rng.uniform(1.2, 2.8) * s
    core = np.zeros(shape, np.float32)
    for i, pts in enumerate(paths):
        taper = np.sin(np.linspace(0.15, np.pi - 0.15, len(pts))) ** 0.5
        jitter = 1 + 0.3 * noise.smooth(rng.normal(0, 1, len(pts)).astype(np.float32), 3)
        w = np.maximum(width * (0.6 if i else 1.0) * taper * jitter, 0.8)
        core = np.maximum(core, noise.stroke(shape, pts, w))
    halo = np.clip(noise.smooth(core, 2.0 * s) * 2.0, 0, 1) * rng.uniform(0.2, 0.4)
    return [Layer(img * 0.72, halo),
            Layer(img * rng.uniform(0.12, 0.25), core, core > 0.3)]


def scratch(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """A long thin gouge along a gentle curve: bright where it catches the light, else dark."""
    s, shape = _scale(img)
    pts = noise.curve(rng, shape, rng.uniform(0.3, 0.8) * shape[0])
    cov = noise.stroke(shape, pts, max(rng.uniform(0.9, 1.8) * s, 0.9))
    if rng.random() < 0.6:
        fg = np.clip(img * 1.6 + 0.2, 0, 1)
    else:
        fg = img * 0.35
    sheen = 0.75 + 0.25 * noise.fractal(rng, shape, beta=2.5).clip(-1, 1)
    return [Layer(fg, cov * sheen * rng.uniform(0.8, 1.0), cov > 0.3)]


def hole(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """A puncture: a dark pit whose inner wall is lit on the side away from the light, with a raised lip."""
    s, shape = _scale(img)
    r = rng.uniform(3.5, 10.0) * s
    d = noise.blob(rng, shape, r, roughness=0.12)
    depth = -np.clip(d / (0.6 * r), 0, 1) * r
    inner = img * rng.uniform(0.08, 0.2) * np.clip(noise.shade(depth, strength=0.8), 0.3, 2.5)[..., None]
    lip = np.exp(-((d + 1.0 * s) / (1.2 * s)) ** 2) * (d < 0)
    return [Layer(np.clip(img * 1.25, 0, 1), lip * 0.4),
            Layer(np.clip(inner, 0, 1), noise.soft(d, 1.0), d > 0)]


def stain(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """A liquid or colour stain: a multiplicative tint (texture shows through) with a darker drying ring."""
    s, shape = _scale(img)
    r = rng.uniform(6.0, 20.0) * s
    d = noise.blob(rng, shape, r, roughness=0.35)
    tints = [(0.55, 0.50, 0.40), (0.62, 0.45, 0.30), (0.45, 0.45, 0.55), (0.70, 0.55, 0.60),
             (1.15, 1.12, 1.05)]
    tint = np.asarray(tints[rng.integers(len(tints))], np.float32) * rng.uniform(0.8, 1.05)
    ring = np.exp(-(d / (1.5 * s)) ** 2) * (d > -1)
    fg = np.clip(img * tint * (1 - 0.25 * ring)[..., None], 0, 1)
    return [Layer(fg, noise.soft(d, 2.5 * s) * rng.uniform(0.75, 0.95), d > 0)]


def contamination(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """Foreign matter on the surface — a particle or a stray thread — shaded, casting a soft shadow."""
    s, shape = _scale(img)
    if rng.random() < 0.5:
        d = noise.blob(rng, shape, rng.uniform(2.5, 6.0) * s, roughness=0.3)
        cov = noise.soft(d, 1.0)
        height = np.clip(d, 0, None)
    else:
        pts = noise.random_walk(rng, shape, rng.uniform(0.2, 0.45) * shape[0], wiggle=0.5, step=1.0 * s)
        cov = noise.stroke(shape, pts, max(1.6 * s, 1.0))
        height = noise.smooth(cov, 0.8 * s) * 2 * s
    colours = [(0.75, 0.75, 0.78), (0.20, 0.20, 0.22), (0.85, 0.70, 0.30), (0.30, 0.45, 0.70),
               (0.70, 0.25, 0.20)]
    colour = np.asarray(colours[rng.integers(len(colours))], np.float32) * rng.uniform(0.85, 1.1)
    tex = 0.85 + 0.15 * noise.fractal(rng, shape, beta=1.0)
    fg = np.clip(colour * (tex * np.clip(noise.shade(height, strength=0.6), 0.5, 1.6))[..., None], 0, 1)
    off = int(max(1, round(1.5 * s)))
    shadow = noise.smooth(np.roll(cov, (off, off), axis=(0, 1)), 1.0 * s) * 0.45
    return [Layer(img * 0.55, shadow), Layer(fg, cov, cov > 0.5)]


def missing_part(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """A broken-off piece: the backing shows through a ragged opening, its walls lit from one side."""
    s, shape = _scale(img)
    size = shape[0]
    r = rng.uniform(8.0, 18.0) * s
    center = None
    if rng.random() < 0.5:  # chipped from an edge
        edge = rng.integers(4)
        along = rng.uniform(0.2, 0.8) * size
        across = rng.uniform(0.0, 0.3) * r
        center = [(across, along), (along, size - across), (size - across, along), (along, across)][edge]
    d = noise.blob(rng, shape, r, center=center, roughness=0.3)
    backing = rng.uniform(0.08, 0.2) * (1 + 0.15 * noise.fractal(rng, shape, beta=1.5))
    walls = noise.shade(-np.clip(d / (3.0 * s), 0, 1) * 3.0 * s, strength=1.2)
    fg = np.clip((img.mean(-1, keepdims=True) * 0.3 + backing[..., None]) * walls[..., None], 0, 1)
    fg = fg * np.array([1.0, 0.97, 0.93], np.float32)
    return [Layer(fg.astype(np.float32), noise.soft(d, 1.0), d > 0)]


def _spall(img: np.ndarray, rng: np.random.Generator, r: float, elongation: float,
           angle_hint: float | None = None) -> tuple[Layer, np.ndarray]:
    s, shape = _scale(img)
    d = noise.blob(rng, shape, r, roughness=0.35, elongation=elongation)
    inside = np.clip(d / (0.5 * r), 0, 1) ** 0.7
    rough = noise.fractal(rng, shape, beta=1.4)
    height = -inside * rng.uniform(4, 8) * s + 1.2 * s * rough * (d > 0)
    dist, cell = noise.cellular(rng, shape, n_cells=int(rng.uniform(60, 140)))
    stone_tone = rng.uniform(0.7, 1.15, int(cell.max()) + 1).astype(np.float32)[cell]
    stones = stone_tone * (0.8 + 0.2 * np.clip(dist / (3 * s), 0, 1))
    warm = np.array([1.0, 0.96, 0.9], np.float32)
    interior = img.mean(-1, keepdims=True) * 0.72 * warm * stones[..., None]
    lit = np.clip(noise.shade(noise.smooth(height, 0.8 * s), strength=0.45), 0.35, 1.8)
    fg = np.clip(interior * lit[..., None], 0, 1)
    return Layer(fg, noise.soft(d, 1.2), d > 0), d


def spallation(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """Concrete broken off the surface: a rough, darker crater of exposed aggregate, shaded by its depth."""
    s, _ = _scale(img)
    layer, _ = _spall(img, rng, rng.uniform(10.0, 28.0) * s, rng.uniform(0.6, 1.0))
    return [layer]


def exposed_bars(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """A spall deep enough to expose the reinforcement: ribbed, rusty, cylindrically shaded bars."""
    s, shape = _scale(img)
    spall, d = _spall(img, rng, rng.uniform(16.0, 32.0) * s, rng.uniform(0.45, 0.7))
    yy, xx = noise.coords(shape)
    inside = d > 2 * s
    cy, cx = (np.argwhere(inside).mean(0) if inside.any() else (shape[0] / 2, shape[1] / 2))
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.1)
    c, si = np.cos(angle), np.sin(angle)
    along = (xx - cx) * c + (yy - cy) * si
    across = -(xx - cx) * si + (yy - cy) * c
    layers = [spall]
    rust = np.array([0.48, 0.27, 0.14], np.float32) * rng.uniform(0.7, 1.1)
    for offset in ([0.0] if rng.random() < 0.6 else [-1.0, 1.0]):
        half = rng.uniform(2.0, 3.5) * s
        t = (across - offset * rng.uniform(2.5, 4.0) * half) / half
        cyl = np.sqrt(np.clip(1 - t ** 2, 0, 1))
        ribs = 0.85 + 0.15 * np.cos(along / (2.5 * s) * np.pi)
        lum = (0.35 + 0.9 * cyl * (0.75 - 0.35 * t)) * ribs * (0.85 + 0.15 * noise.fractal(rng, shape, beta=1.0))
        fg = np.clip(rust * lum[..., None], 0, 1)
        cov = noise.soft((1 - np.abs(t)) * half, 1.0) * noise.soft(d - 1.5 * s, 1.5 * s)
        layers.append(Layer(fg, cov, None))
    return layers


def corrosion_stain(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """Rust run-off: an orange-brown multiplicative stain below a source, streaking downwards."""
    s, shape = _scale(img)
    size = shape[0]
    yy, xx = noise.coords(shape)
    sy, sx = rng.uniform(0.05, 0.45) * size, rng.uniform(0.15, 0.85) * size
    r = rng.uniform(4.0, 10.0) * s
    source = noise.soft(noise.blob(rng, shape, r, center=(sy, sx), roughness=0.4), 2.0 * s)
    length = rng.uniform(0.4, 0.9) * size
    below = np.clip((yy - sy) / length, 0, None)
    spread = r * rng.uniform(1.0, 2.0) * (1 + below)
    envelope = np.exp(-((xx - sx) / spread) ** 2) * np.exp(-below * 1.8) * noise.soft(yy - sy + r, 2.0 * s)
    streaks = noise.fractal(rng, shape, beta=1.6, stretch=25.0, angle=np.pi / 2)
    intensity = np.clip(np.maximum(source, envelope * (0.75 + 0.45 * streaks)), 0, 1)
    tint = np.array([1.0, 0.58, 0.30], np.float32) * rng.uniform(0.55, 0.8)
    fg = np.clip(img * tint, 0, 1)
    alpha = _fade(intensity) * rng.uniform(0.8, 0.97)
    return [Layer(fg, alpha, alpha > 0.2)]


def efflorescence(img: np.ndarray, rng: np.random.Generator) -> list[Layer]:
    """Salt deposit: a powdery white bloom along a seep line, with white streaks running down."""
    s, shape = _scale(img)
    size = shape[0]
    heading = rng.normal(0, 0.3) + rng.choice([0, np.pi])
    pts = noise.random_walk(rng, shape, rng.uniform(0.35, 0.8) * size, heading=heading, wiggle=0.15, step=1.5 * s)
    seep = noise.smooth(noise.stroke(shape, pts, 4.0 * s), rng.uniform(3, 6) * s)
    seep = seep / (seep.max() + 1e-6)
    drip = np.zeros(shape, np.float32)
    fall = rng.uniform(5, 14) * s
    for k in range(1, 8):  # let the deposit run down: shifted, fading copies
        drip = np.maximum(drip, np.roll(seep, int(k * fall / 2), axis=0) * np.exp(-k * 0.35))
    streaks = noise.fractal(rng, shape, beta=1.4, stretch=20.0, angle=np.pi / 2)
    powder = noise.fractal(rng, shape, beta=0.8)
    bloom = np.maximum(seep * 1.8, drip * (0.8 + 0.5 * streaks))
    intensity = np.clip(bloom * (0.8 + 0.2 * powder), 0, 1)
    fg = np.clip(WHITE * (0.97 + 0.05 * powder[..., None]) + 0.05, 0, 1)
    alpha = _fade(intensity) * rng.uniform(0.75, 0.95)
    return [Layer(fg, alpha, alpha > 0.2)]


DEFECTS = {
    # CODEBRIM (concrete bridges)
    "crack": crack, "spallation": spallation, "efflorescence": efflorescence,
    "exposed_bars": exposed_bars, "corrosion_stain": corrosion_stain,
    # MVTec-style
    "scratch": scratch, "hole": hole, "stain": stain, "contamination": contamination,
    "missing_part": missing_part,
}

# CODEBRIM tag(s) a painted defect switches on (exposed bars always lie in a spall).
CODEBRIM_TAGS = {
    "crack": ("Crack",), "spallation": ("Spallation",), "efflorescence": ("Efflorescence",),
    "exposed_bars": ("ExposedBars", "Spallation"), "corrosion_stain": ("CorrosionStain",),
}


def paint(image: np.ndarray, defect: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Compose ``defect`` onto ``image``; return the new image and its ground-truth mask (bool).

    A drawn shape can fall almost entirely outside the frame; such draws are retried (up to 8 times)
    so that every defective sample really shows its defect.
    """
    if defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}: expected one of {', '.join(DEFECTS)}")
    min_pixels = max(4, int(image.shape[0] * image.shape[1] * 0.0015))
    for _ in range(8):
        layers = DEFECTS[defect](image, rng)
        mask = np.zeros(image.shape[:2], bool)
        for layer in layers:
            if layer.mask is not None:
                mask |= layer.mask
        if mask.sum() >= min_pixels:
            break
    for layer in layers:
        image = compose(image, layer.foreground, layer.alpha[..., None])
    return image.astype(np.float32), mask


__all__ = ["Layer", "DEFECTS", "CODEBRIM_TAGS", "paint", *DEFECTS]
