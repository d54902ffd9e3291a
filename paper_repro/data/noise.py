"""Noise fields the textures and defects are built from (numpy, float32, seed-deterministic).

Everything here takes a ``numpy.random.Generator`` and returns ``(H, W)`` float32 arrays, so one
image is one generator and the same seed gives the same pixels on any run.

- :func:`fractal` — spectral 1/f^beta noise (Perlin-like octaves for the price of one FFT), optionally
  stretched along a direction (brushed metal, wood fibres, drips).
- :func:`cellular` — nearest-seed distance and cell index of a random point set (leather grain,
  terrazzo flecks, concrete aggregate).
- :func:`blob` — an irregular closed region with a signed inside-distance (spalls, stains, holes).
- :func:`stroke` — a rasterised random-walk or smooth curve with tapering width (cracks, scratches).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage


@lru_cache(maxsize=32)
def _frequency_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    return np.broadcast_to(fy, (h, fx.shape[1])), np.broadcast_to(fx, (h, fx.shape[1]))


@lru_cache(maxsize=64)
def _isotropic_amplitude(h: int, w: int, beta: float, cutoff: float | None) -> np.ndarray:
    fy, fx = _frequency_grid(h, w)
    return _amplitude(np.sqrt(fx * fx + fy * fy), beta, cutoff)


def _amplitude(f: np.ndarray, beta: float, cutoff: float | None) -> np.ndarray:
    f = f.copy()
    f[0, 0] = 1.0
    amplitude = f ** np.float32(-beta / 2.0)
    amplitude[0, 0] = 0.0
    if cutoff is not None:
        amplitude *= np.exp(-((f / cutoff) ** 2))
    return amplitude.astype(np.float32)


def fractal(rng: np.random.Generator, shape: tuple[int, int], beta: float = 2.0,
            cutoff: float | None = None, stretch: float = 1.0, angle: float = 0.0) -> np.ndarray:
    """Zero-mean, unit-std noise with power spectrum ~ 1/f^beta (beta 0: white, 2: clouds, 3: smooth).

    ``cutoff`` (cycles/pixel) removes detail finer than it. ``stretch > 1`` elongates structures
    along ``angle`` (radians) by that factor, which turns clouds into fibres or brush marks.
    """
    h, w = shape
    if beta >= 2.5 and cutoff is None and min(h, w) > 96:
        # Smooth fields carry almost no fine detail: draw at <= 64 px and upsample (4-16x cheaper).
        factor = min(h, w) // 64
        small = fractal(rng, (h // factor, w // factor), beta, None, stretch, angle)
        return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR), dtype=np.float32)
    if stretch != 1.0:
        fy, fx = _frequency_grid(h, w)
        c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        along, across = fx * c + fy * s, -fx * s + fy * c
        amplitude = _amplitude(np.sqrt((along * np.float32(stretch)) ** 2 + across ** 2), beta, cutoff)
    else:
        amplitude = _isotropic_amplitude(h, w, float(beta), cutoff)
    spectrum = np.fft.rfft2(rng.standard_normal((h, w), dtype=np.float32)) * amplitude
    out = np.fft.irfft2(spectrum, s=(h, w)).astype(np.float32)
    out -= out.mean()
    std = out.std()
    return out / std if std > 0 else out


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (``sigma`` in pixels), float32 in and out."""
    return ndimage.gaussian_filter(x, sigma, mode="reflect") if sigma > 0 else x


def cellular(rng: np.random.Generator, shape: tuple[int, int], n_cells: int,
             jitter: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Distance (pixels) to the nearest of ``n_cells`` random seeds, and the seed index per pixel.

    ``jitter < 1`` places seeds near a regular grid (even pebbles) instead of uniformly at random.
    """
    h, w = shape
    if jitter >= 1.0:
        ys = rng.integers(0, h, n_cells)
        xs = rng.integers(0, w, n_cells)
    else:
        side = max(1, int(round(np.sqrt(n_cells * w / h))))
        rows = max(1, int(round(n_cells / side)))
        gy, gx = np.meshgrid((np.arange(rows) + 0.5) * h / rows, (np.arange(side) + 0.5) * w / side,
                             indexing="ij")
        ys = gy.ravel() + rng.uniform(-0.5, 0.5, gy.size) * jitter * h / rows
        xs = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size) * jitter * w / side
        ys = np.clip(ys.round().astype(int), 0, h - 1)
        xs = np.clip(xs.round().astype(int), 0, w - 1)
    free = np.ones(shape, dtype=bool)
    free[ys, xs] = False
    label = np.zeros(shape, dtype=np.int32)
    label[ys, xs] = np.arange(1, ys.size + 1)
    dist, (iy, ix) = ndimage.distance_transform_edt(free, return_indices=True)
    return dist.astype(np.float32), label[iy, ix]


def coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinate grids ``(yy, xx)`` in pixels, float32."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy + 0.5, xx + 0.5


def blob(rng: np.random.Generator, shape: tuple[int, int], radius: float,
         center: tuple[float, float] | None = None, roughness: float = 0.25,
         elongation: float = 1.0) -> np.ndarray:
    """Signed distance (pixels, > 0 inside) of an irregular closed region.

    The outline is a circle of ``radius`` whose radius wobbles with a few random harmonics of the
    angle (lobes, bays) and whose edge is roughened by fractal noise (``roughness`` x radius).
    """
    h, w = shape
    if center is None:
        margin = min(radius * 0.6, min(h, w) / 3)
        center = (rng.uniform(margin, h - margin), rng.uniform(margin, w - margin))
    yy, xx = coords(shape)
    theta0 = rng.uniform(0, np.pi)
    dy, dx = yy - center[0], xx - center[1]
    c, s = np.cos(theta0), np.sin(theta0)
    u, v = dx * c + dy * s, (-dx * s + dy * c) * elongation
    r = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    wobble = np.ones_like(r)
    for k in range(2, 7):
        wobble += rng.normal(0, 0.18 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    edge_noise = fractal(rng, shape, beta=2.2) * roughness * radius
    return radius * wobble - r + edge_noise


def soft(signed: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of the region ``signed > 0`` (``width`` px ramp)."""
    return np.clip(signed / width + 0.5, 0.0, 1.0).astype(np.float32)


def random_walk(rng: np.random.Generator, shape: tuple[int, int], length: float,
                start: tuple[float, float] | None = None, heading: float | None = None,
                wiggle: float = 0.35, step: float = 1.5) -> np.ndarray:
    """Points ``(n, 2)`` (x, y) of a persistent random walk: the centre line of a crack."""
    h, w = shape
    if start is None:
        start = (rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h))
    if heading is None:
        heading = rng.uniform(0, 2 * np.pi)
    n = max(2, int(length / step))
    turns = np.cumsum(rng.normal(0, wiggle, n)) * 0.35 + rng.normal(0, wiggle * 0.6, n)
    angles = heading + turns
    steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * step
    return np.asarray(start, dtype=np.float32) + np.cumsum(steps, axis=0)


def curve(rng: np.random.Generator, shape: tuple[int, int], length: float) -> np.ndarray:
    """Points ``(n, 2)`` of a gently bent quadratic Bezier curve: the path of a scratch."""
    h, w = shape
    p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)], dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    p2 = p0 + length * np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)
    normal = np.array([-np.sin(angle), np.cos(angle)], dtype=np.float32)
    p1 = (p0 + p2) / 2 + normal * rng.normal(0, 0.12) * length
    t = np.linspace(0, 1, max(2, int(length)), dtype=np.float32)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def stroke(shape: tuple[int, int], points: np.ndarray, widths: np.ndarray | float,
           supersample: int = 2) -> np.ndarray:
    """Coverage in [0, 1] of a polyline drawn with per-segment ``widths`` (pixels), anti-aliased."""
    h, w = shape
    k = supersample
    canvas = Image.new("L", (w * k, h * k), 0)
    draw = ImageDraw.Draw(canvas)
    pts = [(float(x) * k, float(y) * k) for x, y in points]
    widths = np.broadcast_to(np.asarray(widths, dtype=np.float32), (len(pts),))
    for i in range(len(pts) - 1):
        width = max(1, int(round(widths[i] * k)))
        draw.line([pts[i], pts[i + 1]], fill=255, width=width)
        if width > 2:  # round joints so wide strokes do not show notches
            r = width / 2
            draw.ellipse([pts[i + 1][0] - r, pts[i + 1][1] - r, pts[i + 1][0] + r, pts[i + 1][1] + r],
                         fill=255)
    if k > 1:
        canvas = canvas.resize((w, h), Image.BOX)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def shade(height: np.ndarray, light: tuple[float, float] = (-0.6, -0.8), strength: float = 1.0) -> np.ndarray:
    """Lambert-like relief shading of a height field: 1 on flat ground, > 1 facing the light.

    ``light`` is the image-plane direction *towards* the light (x, y); the default is the usual
    upper-left studio light. Surface normal ~ (-dh/dx, -dh/dy, 1), so brightness ~ 1 - grad(h).light.
    """
    gy, gx = np.gradient(height)
    lx, ly = light
    return (1.0 - strength * (gx * lx + gy * ly)).astype(np.float32)


__all__ = ["fractal", "smooth", "cellular", "coords", "blob", "soft", "random_walk", "curve",
           "stroke", "shade"]
