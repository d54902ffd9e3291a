"""The bundled default data set: procedural surfaces with defects, written in the published layouts.

Nothing is downloaded. Every image is drawn from its own random generator seeded by
``(seed, layout, category, split, kind, index)``, so a data set is byte-identical for one seed,
independent of the order in which images are made, and different for another seed.

- :func:`render` draws one sample: a surface (:mod:`~paper_repro.data.textures`), zero or more
  defects composed onto it (:mod:`~paper_repro.data.defects`), then light and sensor noise.
- :func:`write_mvtec` / :func:`write_codebrim` write the MVTec AD and CODEBRIM classification layouts,
  so :class:`~paper_repro.data.MVTecAD` and :class:`~paper_repro.data.CODEBRIM` read them exactly as
  they read the real data sets.
- :func:`bundled_root` generates a layout once per ``(layout, scale, seed, GENERATOR_VERSION)`` under
  :func:`paper_repro.config.cache_dir` (atomically: a temporary folder renamed when complete) and
  returns its root.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from paper_repro.config import cache_dir, get_config
from paper_repro.data.defects import CODEBRIM_TAGS, paint
from paper_repro.data.codebrim import CODEBRIM_CLASSES
from paper_repro.data.textures import FAMILIES, illuminate
from paper_repro.data.textures import texture
from paper_repro.errors import UserError

# Bump whenever a change to textures, defects or layouts changes the pixels or the files written:
# cached data sets carry it in their folder name, so stale caches are never reused.
GENERATOR_VERSION = 4

CODEBRIM_DEFECTS = ("crack", "spallation", "efflorescence", "exposed_bars", "corrosion_stain")

# MVTec-layout categories of the bundled set: surface family and its test defect types. ``combined``
# (as in MVTec AD *wood*) holds two or three of the category's defects in one image.
BUNDLED_CATEGORIES: dict[str, tuple[str, ...]] = {
    "carpet": ("hole", "stain", "contamination", "missing_part", "combined"),
    "leather": ("scratch", "hole", "stain", "crack", "combined"),
    "tile": ("crack", "stain", "contamination", "missing_part", "combined"),
    "wood": ("scratch", "hole", "stain", "crack", "combined"),
    "metal": ("scratch", "hole", "corrosion_stain", "contamination", "combined"),
    "concrete": ("crack", "spallation", "efflorescence", "exposed_bars", "corrosion_stain", "combined"),
}
LAYOUTS = ("mvtec", "codebrim")


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator for one image, keyed by stable integers (crc32 of the key's text)."""
    words = [int(seed)] + [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng(np.random.SeedSequence(words))


def render(family: str, defect_types: tuple[str, ...] | list[str], size: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One sample: ``(image uint8 (size, size, 3), mask uint8 (size, size) in {0, 255})``.

    The surface is drawn first, then each defect is composed onto it, then the whole scene is lit
    and gets sensor noise, so light and noise are the same on normal and defective pixels.
    """
    image = texture(family, rng, size)
    mask = np.zeros((size, size), bool)
    for name in defect_types:
        image, m = paint(image, name, rng)
        mask |= m
    image = illuminate(rng, image)
    image = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(0.004, 0.012))
    out = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out, (mask * 255).astype(np.uint8)


def normal_image(family: str, size: int, seed: int, index: int) -> np.ndarray:
    """Defect-free sample ``index`` of ``family`` (uint8), the same for the same arguments."""
    image, _ = render(family, (), size, _rng(seed, "normal", family, index))
    return image


def _combined(category: str, rng: np.random.Generator) -> list[str]:
    pool = [d for d in BUNDLED_CATEGORIES[category] if d != "combined"]
    k = int(rng.integers(2, 4))
    return list(rng.choice(pool, size=min(k, len(pool)), replace=False))


def _save_png(array: np.ndarray, path: Path) -> None:
    # Pillow writes the same bytes for the same pixels and options: no timestamps in PNG by default.
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _check_categories(categories: list[str] | tuple[str, ...] | None) -> list[str]:
    if not categories:
        return list(BUNDLED_CATEGORIES)
    unknown = [c for c in categories if c not in BUNDLED_CATEGORIES]
    if unknown:
        raise UserError(f"unknown bundled category {unknown[0]!r}: expected some of "
                        f"{', '.join(BUNDLED_CATEGORIES)}")
    return list(categories)


def _run(jobs: list, work, desc: str, progress: bool, workers: int | None) -> list:
    """``[work(job) for job in jobs]``, over ``workers`` processes when there are many jobs.

    Every job seeds its own generator, so the result is the same for any number of workers.
    """
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress, leave=False)
    try:
        if workers == 1 or len(jobs) < 256 or "fork" not in mp.get_all_start_methods():
            results = []
            for job in jobs:
                results.append(work(job))
                bar.update()
            return results
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            results = []
            for result in pool.map(work, jobs, chunksize=32):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()


def _mvtec_job(job: tuple) -> None:
    out, cat, split, kind, i, size, seed = job
    rng = _rng(seed, "mvtec", cat, split, kind, i)
    if split == "extra_normal":
        image, _ = render(cat, (), size, rng)
        _save_png(image, out / cat / "extra_normal" / f"{i:05d}.png")
        return
    folder = out / cat / split / kind
    if kind == "good":
        image, _ = render(cat, (), size, rng)
        _save_png(image, folder / f"{i:03d}.png")
        return
    types = _combined(cat, rng) if kind == "combined" else [kind]
    image, mask = render(cat, types, size, rng)
    _save_png(image, folder / f"{i:03d}.png")
    _save_png(mask, out / cat / "ground_truth" / kind / f"{i:03d}_mask.png")


def write_mvtec(out: Path, categories: list[str] | None = None, size: int = 128, n_train: int = 160,
                n_test: int = 10, seed: int = 42, n_extra: int = 0, progress: bool = True,
                workers: int | None = None) -> Path:
    """Write the MVTec AD layout under ``out`` (which must be empty or absent).

    ``<cat>/train/good/000.png``, ``<cat>/test/good/000.png``, ``<cat>/test/<defect>/000.png`` and
    ``<cat>/ground_truth/<defect>/000_mask.png`` (0 / 255, the image's size); ``n_test`` images per
    test folder. ``n_extra > 0`` also writes ``<cat>/extra_normal/00000.png``, a pool of further
    defect-free images (Defect-GAN trains on extra normal crops).
    """
    out = Path(out)
    cats = _check_categories(categories)
    jobs = []
    for cat in cats:
        folders = [out / cat / "train" / "good", out / cat / "test" / "good"]
        folders += [out / cat / sub / d for d in BUNDLED_CATEGORIES[cat] for sub in ("test", "ground_truth")]
        folders += [out / cat / "extra_normal"] if n_extra else []
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        jobs += [(out, cat, "train", "good", i, size, seed) for i in range(n_train)]
        jobs += [(out, cat, "test", "good", i, size, seed) for i in range(n_test)]
        jobs += [(out, cat, "test", d, i, size, seed) for d in BUNDLED_CATEGORIES[cat] for i in range(n_test)]
        jobs += [(out, cat, "extra_normal", None, i, size, seed) for i in range(n_extra)]
    _run(jobs, _mvtec_job, "mvtec", progress, workers)
    _write_info(out, layout="mvtec", categories=cats, size=size, n_train=n_train, n_test=n_test,
                seed=seed, n_extra=n_extra)
    return out


def codebrim_defect_set(rng: np.random.Generator) -> list[str]:
    """The defects of one CODEBRIM-like crop: one to three classes, as co-occurring in the real data."""
    k = int(rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12]))
    chosen = list(rng.choice(CODEBRIM_DEFECTS, size=k, replace=False, p=[0.3, 0.22, 0.18, 0.12, 0.18]))
    # Paint the crater first so cracks, salt and rust lie on top of it.
    order = {"spallation": 0, "exposed_bars": 1}
    return sorted(chosen, key=lambda d: order.get(d, 2))


def codebrim_labels(defect_types: list[str] | tuple[str, ...]) -> list[int]:
    """The 0/1 vector over :data:`CODEBRIM_CLASSES` for a crop with ``defect_types``."""
    tags = {t for d in defect_types for t in CODEBRIM_TAGS[d]} or {"Background"}
    return [int(c in tags) for c in CODEBRIM_CLASSES]


def _codebrim_job(job: tuple) -> tuple[str, str, list[int]] | None:
    out, split, kind, k, size, seed = job
    rng = _rng(seed, "codebrim", split, kind, k)
    if split == "extra_normal":
        image, _ = render("concrete", (), size, rng)
        _save_png(image, out / "extra_normal" / f"{k:05d}.png")
        return None
    types = codebrim_defect_set(rng) if kind == "defects" else []
    image, _ = render("concrete", types, size, rng)
    name = f"image_{k:07d}_crop_0000001.png"
    _save_png(image, out / split / kind / name)
    return kind, name, codebrim_labels(types)


def write_codebrim(out: Path, size: int = 128, n_train: int = 720, n_test: int = 90, n_val: int | None = None,
                   seed: int = 42, n_extra: int = 0, background_fraction: float = 1 / 3,
                   progress: bool = True, workers: int | None = None) -> Path:
    """Write the CODEBRIM classification layout under ``out``.

    ``train|val|test/defects|background/image_NNNNNNN_crop_0000001.png`` and
    ``metadata/defects.xml`` / ``metadata/background.xml`` with one ``<Defect name="...">`` record
    per crop whose children ``Background, Crack, Spallation, Efflorescence, ExposedBars,
    CorrosionStain`` hold 0/1. About a third of each split is background (as in CODEBRIM).
    ``n_extra > 0`` also writes ``extra_normal/00000.png``: further defect-free concrete.
    """
    out = Path(out)
    n_val = n_test if n_val is None else n_val
    jobs = []
    counter = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        n_bg = int(round(n * background_fraction))
        for j in range(n):
            counter += 1
            jobs.append((out, split, "background" if j < n_bg else "defects", counter, size, seed))
    jobs += [(out, "extra_normal", None, i, size, seed) for i in range(n_extra)]
    for split in ("train", "val", "test"):
        for kind in ("defects", "background"):
            (out / split / kind).mkdir(parents=True, exist_ok=True)
    if n_extra:
        (out / "extra_normal").mkdir(parents=True, exist_ok=True)
    records: dict[str, list[tuple[str, list[int]]]] = {"defects": [], "background": []}
    for result in _run(jobs, _codebrim_job, "codebrim", progress, workers):
        if result is not None:
            kind, name, labels = result
            records[kind].append((name, labels))
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    for kind, recs in records.items():
        _write_codebrim_xml(out / "metadata" / f"{kind}.xml", recs)
    _write_info(out, layout="codebrim", size=size, n_train=n_train, n_val=n_val, n_test=n_test,
                seed=seed, n_extra=n_extra)
    return out


def _write_codebrim_xml(path: Path, records: list[tuple[str, list[int]]]) -> None:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<Annotation>"]
    for name, labels in records:
        lines.append(f"  <Defect name={quoteattr(name)}>")
        lines += [f"    <{c}>{v}</{c}>" for c, v in zip(CODEBRIM_CLASSES, labels)]
        lines.append("  </Defect>")
    lines.append("</Annotation>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_info(out: Path, **info: object) -> None:
    info = {"generator": "paper_repro.data.synthetic", "generator_version": GENERATOR_VERSION, **info}
    (out / "SYNTHETIC.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def synthesize(out: Path | str, layout: str, categories: list[str] | None = None, size: int = 128,
               n_train: int | None = None, n_test: int | None = None, seed: int = 42, n_extra: int = 0,
               progress: bool = True, force: bool = False) -> Path:
    """Write a bundled data set in ``layout`` to ``out`` atomically (what ``data synth`` runs).

    The files go to a temporary sibling folder first and are renamed to ``out`` only when complete,
    so an interrupted run never leaves a half data set that looks finished.
    """
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    out = Path(out).expanduser()
    if layout == "codebrim" and categories and list(categories) != ["concrete"]:
        raise UserError(f"{out}: the codebrim layout has only concrete surfaces, got --categories "
                        f"{','.join(categories)}")
    if size < 16 or size > 4096:
        raise UserError(f"--size {size}: expected an image side between 16 and 4096 pixels")
    for name, value in (("--n-train", n_train), ("--n-test", n_test), ("--n-extra", n_extra)):
        if value is not None and value < (1 if name != "--n-extra" else 0):
            raise UserError(f"{name} {value}: expected a positive count")
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            if not force:
                raise UserError(f"{out}: already exists and is not empty; expected a new or empty "
                                f"folder (pass --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        if layout == "mvtec":
            write_mvtec(tmp, categories, size=size, n_train=n_train or 160, n_test=n_test or 10, seed=seed,
                        n_extra=n_extra, progress=progress)
        else:
            write_codebrim(tmp, size=size, n_train=n_train or 720, n_test=n_test or 90, seed=seed,
                           n_extra=n_extra, progress=progress)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the finished set is as readable as any folder
        if not force and (out / "SYNTHETIC.json").is_file():
            # another process finished the same set while this one worked (two chapters, or DDP ranks,
            # on first use): keep its copy, which readers may already hold open, and drop this one
            shutil.rmtree(tmp, ignore_errors=True)
            return out
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def bundled_root(layout: str, scale: str, seed: int = 42) -> Path:
    """Root of the bundled synthetic data set in ``layout`` (``"mvtec"`` or ``"codebrim"``) at ``scale``.

    Generated once and cached under ``cache_dir()/data/`` in a folder named by layout, scale, seed,
    :data:`GENERATOR_VERSION` and the sizes (so a changed ``bundled_data`` profile is never served
    from an old folder); later calls (from any chapter or process) return the cached folder.
    The MVTec layout holds every category of :data:`BUNDLED_CATEGORIES`
    (``carpet, leather, tile, wood, metal, concrete``).
    """
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    sizes = get_config("bundled_data", scale)
    n_train, n_test = ((sizes.n_train, sizes.n_test) if layout == "mvtec"
                       else (sizes.codebrim_train, sizes.codebrim_test))
    name = f"{layout}-{scale}-seed{int(seed)}-v{GENERATOR_VERSION}-{sizes.size}px-{n_train}-{n_test}"
    root = cache_dir() / "data" / name
    if (root / "SYNTHETIC.json").is_file():
        return root
    try:  # a folder without SYNTHETIC.json is no finished set (sets are renamed in whole): replace it
        synthesize(root, layout, size=sizes.size, n_train=n_train, n_test=n_test, seed=seed,
                   force=root.exists())
    except (OSError, UserError):
        # Another process may have finished the same data set first; its copy is identical.
        if not (root / "SYNTHETIC.json").is_file():
            raise
    return root


__all__ = [
    "GENERATOR_VERSION", "CODEBRIM_DEFECTS", "BUNDLED_CATEGORIES", "LAYOUTS",
    "FAMILIES", "render", "normal_image", "codebrim_defect_set", "codebrim_labels", "write_mvtec",
    "write_codebrim", "synthesize", "bundled_root",
]
