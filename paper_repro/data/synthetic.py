"""The bundled default data set: procedural surfaces with defects, written in the published layouts.

Nothing is downloaded. Every image is drawn from its own random generator seeded by
``(seed, layout, category, split, kind, index)``, so a data set is byte-identical for one seed,
independent of the order in which images are made, and different for another seed.

- :func:`render` draws one sample: a surface (a procedural one, :mod:`~paper_repro.data.textures`, or a
  crop of a photograph, :mod:`~paper_repro.data.photographs`), zero or more defects composed onto it
  (:mod:`~paper_repro.data.defects`), then light and sensor noise.
- :func:`write_mvtec` / :func:`write_codebrim` write the MVTec AD and CODEBRIM classification layouts,
  so :class:`~paper_repro.data.MVTecAD` and :class:`~paper_repro.data.CODEBRIM` read them exactly as
  they read the real data sets; :func:`write_codebrim_originals` writes a miniature of CODEBRIM's
  original-photographs archive (large JPEGs with annotated defect boxes), which
  :mod:`~paper_repro.data.originals` crops the extra normals from.
- :func:`bundled_root` generates a layout once per ``(layout, scale, seed, sizes)`` and version of the
  generator's code (:func:`generator_code`) under :func:`paper_repro.environment.cache_dir` (atomically:
  a temporary folder renamed when complete) and returns its root.
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

from paper_repro.config import get_config
from paper_repro.environment import cache_dir
from paper_repro.data.defects import CODEBRIM_TAGS, paint
from paper_repro.data.codebrim import CODEBRIM_CLASSES
from paper_repro.data.mvtec import MIN_TRAIN_IMAGES
from paper_repro.data.originals import WINDOW_FRACTION
from paper_repro.data.photographs import PHOTOGRAPHS, crop as photograph_crop, sources as photograph_sources
from paper_repro.data.textures import FAMILIES, illuminate
from paper_repro.data.textures import texture
from paper_repro.errors import UserError
from paper_repro.runs.cached import NOT_FINGERPRINTED, code_fingerprint, damaged_since_marker, file_digests
from paper_repro.runs.progress import tqdm

GENERATOR = "paper_repro.data.synthetic"  # what a data set's marker names as its writer
MARKER = "SYNTHETIC.json"  # written last into every generated set; ``--force`` replaces only such sets
MIN_SIZE, MAX_SIZE = 16, 4096  # image sides the generator draws (defects need room; memory stays bounded)
# The bundled original photographs are this many times the crop size high, so that their windows
# (0.10-0.26 of the shorter side, data.originals.WINDOW_FRACTION) are 0.6-1.6 crops wide. In CODEBRIM
# (photographs 3456 px high and more, crops resized to 128 px) they are 2.7-7 crops wide; the miniature
# is smaller to stay quick to write.
ORIGINALS_SCALE = 6
# Photographs in the bundled CODEBRIM-layout set when the scale's Defect-GAN profile crops its extra
# normals from original photographs (extra_normals_source "original", i.e. at full); none otherwise.
BUNDLED_ORIGINALS = 16

CODEBRIM_DEFECTS = ("crack", "spallation", "efflorescence", "exposed_bars", "corrosion_stain")

# MVTec-layout categories of the bundled set: surface family and its test defect types. ``combined``
# (as in MVTec AD *wood*) holds two or three of the category's defects in one image.
PROCEDURAL_CATEGORIES: dict[str, tuple[str, ...]] = {
    "carpet": ("hole", "stain", "contamination", "missing_part", "combined"),
    "leather": ("scratch", "hole", "stain", "crack", "combined"),
    "tile": ("crack", "stain", "contamination", "missing_part", "combined"),
    "wood": ("scratch", "hole", "stain", "crack", "combined"),
    "metal": ("scratch", "hole", "corrosion_stain", "contamination", "combined"),
    "concrete": ("crack", "spallation", "efflorescence", "exposed_bars", "corrosion_stain", "combined"),
}
# Categories cropped from real photographs (paper_repro.data.photographs: sources, licences, the disjoint
# train/test bands, the normal-preserving augmentation), with the same defects composed in the same way.
# Masonry defects on brick; foreign matter, holes, stains and bare patches on grass and gravel.
PHOTOGRAPHED_CATEGORIES: dict[str, tuple[str, ...]] = {
    "brick": ("crack", "spallation", "efflorescence", "missing_part", "combined"),
    "grass": ("hole", "stain", "contamination", "missing_part", "combined"),
    "gravel": ("hole", "stain", "contamination", "corrosion_stain", "combined"),
}
assert set(PHOTOGRAPHED_CATEGORIES) == set(PHOTOGRAPHS) and not set(PHOTOGRAPHS) & set(FAMILIES)
BUNDLED_CATEGORIES: dict[str, tuple[str, ...]] = {**PROCEDURAL_CATEGORIES, **PHOTOGRAPHED_CATEGORIES}
LAYOUTS = ("mvtec", "codebrim")


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator for one image, keyed by stable integers (crc32 of the key's text)."""
    words = [int(seed)] + [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng(np.random.SeedSequence(words))


def surface(family: str, size: int, rng: np.random.Generator, split: str = "train") -> np.ndarray:
    """A defect-free surface ``(size, size, 3)`` float32 in [0, 1]: a procedural texture of ``family``
    (:data:`FAMILIES`; ``split`` plays no part), or a crop of the photograph ``family``
    (:data:`~paper_repro.data.photographs.PHOTOGRAPHS`) from the band of the photograph that ``split``
    (``train``, ``extra_normal`` or ``test``) owns."""
    if family in PHOTOGRAPHS:
        return photograph_crop(family, split, rng, size)
    return texture(family, rng, size)


def render(family: str, defect_types: tuple[str, ...] | list[str], size: int,
           rng: np.random.Generator, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """One sample: ``(image uint8 (size, size, 3), mask uint8 (size, size) in {0, 255})``.

    The surface is drawn first (:func:`surface`; ``split`` picks a photograph's band), then each defect
    is composed onto it, then the whole scene is lit and gets sensor noise, so light and noise are the
    same on normal and defective pixels, procedural and photographed surfaces alike.
    """
    image = surface(family, size, rng, split)
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
        image, _ = render(cat, (), size, rng, split)
        _save_png(image, out / cat / "extra_normal" / f"{i:05d}.png")
        return
    folder = out / cat / split / kind
    if kind == "good":
        image, _ = render(cat, (), size, rng, split)
        _save_png(image, folder / f"{i:03d}.png")
        return
    types = _combined(cat, rng) if kind == "combined" else [kind]
    image, mask = render(cat, types, size, rng, split)
    _save_png(image, folder / f"{i:03d}.png")
    _save_png(mask, out / cat / "ground_truth" / kind / f"{i:03d}_mask.png")


def write_mvtec(out: Path, categories: list[str] | None = None, size: int = 128, n_train: int = 160,
                n_test: int = 10, seed: int = 42, n_extra: int = 0, progress: bool = True,
                workers: int | None = None) -> Path:
    """Write the MVTec AD layout under ``out`` (which must be empty or absent).

    ``<cat>/train/good/000.png``, ``<cat>/test/good/000.png``, ``<cat>/test/<defect>/000.png`` and
    ``<cat>/ground_truth/<defect>/000_mask.png`` (0 / 255, the image's size); ``n_test`` images per
    test folder. A photographed category's training (and extra) images are crops of its photograph's
    training band, its test images crops of the other band; ``SYNTHETIC.json`` then names each
    photograph's source and licence (``photographs``). ``n_extra > 0`` also writes ``<cat>/extra_normal/00000.png``, a pool of further
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
    photographed = {c: s for c, s in photograph_sources().items() if c in cats}
    _write_info(out, layout="mvtec", categories=cats, size=size, n_train=n_train, n_test=n_test,
                seed=seed, n_extra=n_extra, **({"photographs": photographed} if photographed else {}))
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
                   n_originals: int = 0, progress: bool = True, workers: int | None = None) -> Path:
    """Write the CODEBRIM classification layout under ``out``.

    ``train|val|test/defects|background/image_NNNNNNN_crop_0000001.png`` and
    ``metadata/defects.xml`` / ``metadata/background.xml`` with one ``<Defect name="...">`` record
    per crop whose children ``Background, Crack, Spallation, Efflorescence, ExposedBars,
    CorrosionStain`` hold 0/1. About a third of each split is background (as in CODEBRIM).
    ``n_extra > 0`` also writes ``extra_normal/00000.png``: further defect-free concrete.
    ``n_originals > 0`` also writes ``original_dataset/``: photographs :data:`ORIGINALS_SCALE` times
    ``size`` high (:func:`write_codebrim_originals`).
    """
    out = Path(out)
    n_val = n_test if n_val is None else n_val
    if n_originals:
        write_codebrim_originals(out, n_originals, height=ORIGINALS_SCALE * size, seed=seed)
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
        write_codebrim_xml(out / "metadata" / f"{kind}.xml", recs)
    _write_info(out, layout="codebrim", size=size, n_train=n_train, n_val=n_val, n_test=n_test,
                seed=seed, n_extra=n_extra, n_originals=n_originals)
    return out


def _photograph(k: int, height: int, seed: int) -> tuple[np.ndarray, list[tuple[list[int], tuple[int, ...]]]]:
    """Photograph ``k``: concrete with one to three defect regions, and ``(labels, box)`` per annotated object.

    Every third photograph is portrait (both orientations occur in CODEBRIM). A region is as large as
    the real annotated boxes (:data:`~paper_repro.data.originals.WINDOW_FRACTION` of the shorter side);
    its box is the whole painted square, so a crack's soft halo stays inside it. One photograph in three
    also carries a Background-only box, as a few real annotations do.
    """
    rng = _rng(seed, "codebrim-original", k)
    long_side = height * 4 // 3
    width, height = (height, long_side) if k % 3 == 2 else (long_side, height)
    image = texture("concrete", rng, long_side)[:height, :width].copy()
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        side = int(round(min(width, height) * rng.uniform(*WINDOW_FRACTION)))
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        types = codebrim_defect_set(rng)
        region = image[y:y + side, x:x + side]
        for name in types:
            region, _ = paint(region, name, rng)
        image[y:y + side, x:x + side] = region
        objects.append((codebrim_labels(types), (x, y, x + side - 1, y + side - 1)))
    if rng.random() < 1 / 3:
        side = int(round(min(width, height) * WINDOW_FRACTION[0]))
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        objects.append((codebrim_labels([]), (x, y, x + side - 1, y + side - 1)))
    image = illuminate(rng, image)
    image = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(0.008)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8), objects


def _annotation_xml(filename: str, width: int, height: int,
                    objects: list[tuple[list[int], tuple[int, ...]]]) -> str:
    """A Pascal-VOC annotation with CODEBRIM's <Defect> block inside each <object>."""
    lines = ["<annotation>", "  <folder>images</folder>", f"  <filename>{filename}</filename>",
             f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for labels, (x0, y0, x1, y1) in objects:
        flags = "".join(f"<{c}>{v}</{c}>" for c, v in zip(CODEBRIM_CLASSES, labels))
        lines += ["  <object>", "    <name>defect</name>", f"    <Defect>{flags}</Defect>",
                  f"    <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>",
                  "  </object>"]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write_codebrim_originals(out: Path, n: int = 4, height: int = 1152, seed: int = 42) -> Path:
    """Write a miniature of ``CODEBRIM_original_images.zip`` unpacked into ``out``; return its root.

    ``out/original_dataset/images/image_NNNNNNN.jpg`` (``n`` photographs ``height`` pixels high, 4:3)
    and ``out/original_dataset/annotations/image_NNNNNNN.xml`` with one ``<object>`` per painted defect
    region: a ``<Defect>`` block of 0/1 flags and a ``<bndbox>`` xmin, ymin, xmax, ymax (inclusive).
    """
    root = Path(out) / "original_dataset"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1):
        image, objects = _photograph(k, height, seed)
        name = f"image_{k:07d}"
        Image.fromarray(image).save(root / "images" / f"{name}.jpg", format="JPEG", quality=92)
        xml = _annotation_xml(f"{name}.jpg", image.shape[1], image.shape[0], objects)
        (root / "annotations" / f"{name}.xml").write_text(xml, encoding="utf-8")
    return root


def write_codebrim_xml(path: Path, records: list[tuple[str, list[int]]]) -> None:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<Annotation>"]
    for name, labels in records:
        lines.append(f"  <Defect name={quoteattr(name)}>")
        lines += [f"    <{c}>{v}</{c}>" for c, v in zip(CODEBRIM_CLASSES, labels)]
        lines.append("  </Defect>")
    lines.append("</Annotation>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def generator_code() -> str:
    """A short fingerprint of the code that draws the data (this module, the textures, the defects and
    everything they import; comments and docstrings ignored, :func:`paper_repro.runs.cached.code_manifest`;
    ``paper_repro.runs``, the bookkeeping of runs and progress bars, draws no pixel and is left out).
    Cached data sets carry it in their folder name, so a change that could alter a pixel or a file
    generates them again, and no one has to remember to bump a version."""
    return code_fingerprint(GENERATOR, exclude=NOT_FINGERPRINTED + ("paper_repro.runs",))


def _write_info(out: Path, **info: object) -> None:
    """The marker, written last: what wrote the set, with what, and a digest of every file it holds."""
    info = {"generator": GENERATOR, "generator_code": generator_code(), **info, "files": file_digests(out, [MARKER])}
    (out / MARKER).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


_WHOLE: set[Path] = set()   # bundled sets this process has checked or written: verified once, not per call


def damaged_files(root: Path) -> list[str]:
    """The files of a generated set that are missing, changed or added since it was written (by the digests
    in its marker); empty when the set is whole."""
    return damaged_since_marker(root, MARKER)


def is_generated_set(folder: Path) -> bool:
    """Whether ``folder`` holds a data set this module wrote: its marker parses and names this generator."""
    try:
        info = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("generator") == GENERATOR


def check_counts(layout: str, size: int, n_train: int | None, n_test: int | None, n_extra: int, seed: int) -> None:
    """One UserError, naming the option, for a size or count a data set cannot have."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(f"--size {size}: expected an image side between {MIN_SIZE} and {MAX_SIZE} pixels")
    least = MIN_TRAIN_IMAGES if layout == "mvtec" else 1  # MVTecAD refuses a smaller train/good
    for name, value, minimum in (("--n-train", n_train, least), ("--n-test", n_test, 1)):
        if value is not None and value < minimum:
            raise UserError(f"{name} {value}: expected a count of at least {minimum}")
    if n_extra < 0:
        raise UserError(f"--n-extra {n_extra}: expected a count of at least 0")
    if seed < 0:
        raise UserError(f"--seed {seed}: expected a non-negative integer")


def check_out(out: Path, force: bool) -> None:
    """Whether a data set may be written to ``out``: a new or empty folder; with ``force``, also a data
    set this module generated, unless it is the working directory or holds it. Else one UserError."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UserError(f"{out}: is a {'symbolic link' if out.is_symlink() else 'file'}; expected a new or "
                        f"empty folder for the data set")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise UserError(f"{out}: already exists and is not empty; expected a new or empty folder (pass "
                        f"--force to replace a data set this project generated there)")
    here, target = Path.cwd().resolve(), out.resolve()
    if target == here or target in here.parents:
        raise UserError(f"--force {out}: refused: it is the working directory or a folder that holds it; "
                        f"expected a data set folder elsewhere")
    if not is_generated_set(out):
        raise UserError(f"--force {out}: refused: it holds no {MARKER} naming {GENERATOR}, so this "
                        f"project did not generate it; --force replaces only data sets it generated")


def _readable_by_others(folder: Path) -> None:
    """mkdtemp makes a folder private (0700); give the finished set the user's usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def synthesize(out: Path | str, layout: str, categories: list[str] | None = None, size: int = 128,
               n_train: int | None = None, n_test: int | None = None, seed: int = 42, n_extra: int = 0,
               n_originals: int = 0, progress: bool = True, force: bool = False) -> Path:
    """Write a bundled data set in ``layout`` to ``out`` atomically (what ``data synth`` runs).

    The files go to a temporary sibling folder first and are renamed to ``out`` only when complete,
    so an interrupted run never leaves a half data set that looks finished. ``out`` must be new or
    empty; ``force`` replaces it only if it is a data set this module generated (see :func:`check_out`).
    ``n_originals`` (codebrim layout) adds ``original_dataset/`` (:func:`write_codebrim_originals`).
    """
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    out = Path(out).expanduser()
    if layout == "codebrim" and categories and list(categories) != ["concrete"]:
        raise UserError(f"{out}: the codebrim layout has only concrete surfaces, got --categories "
                        f"{','.join(categories)}")
    if layout == "mvtec" and n_originals:
        raise UserError(f"--n-originals {n_originals}: CODEBRIM's original photographs belong to the "
                        f"codebrim layout; expected --layout codebrim")
    check_counts(layout, size, n_train, n_test, n_extra, seed)
    if n_originals < 0:
        raise UserError(f"--n-originals {n_originals}: expected a count of at least 0")
    try:
        check_out(out, force)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as err:
        raise UserError(f"{out}: cannot create it ({err.strerror or err}); expected a folder that can be "
                        f"written") from None
    try:
        if layout == "mvtec":
            write_mvtec(tmp, categories, size=size, n_train=n_train or 160, n_test=n_test or 10, seed=seed,
                        n_extra=n_extra, progress=progress)
        else:
            write_codebrim(tmp, size=size, n_train=n_train or 720, n_test=n_test or 90, seed=seed,
                           n_extra=n_extra, n_originals=n_originals, progress=progress)
        _readable_by_others(tmp)
        if not force and (out / MARKER).is_file():
            # another process finished the same set while this one worked (two chapters, or DDP ranks,
            # on first use): keep its copy, which readers may already hold open, and drop this one
            shutil.rmtree(tmp, ignore_errors=True)
            return out
        if out.exists():
            shutil.rmtree(out)  # check_out allowed it: empty, or a set this module generated
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def bundled_root(layout: str, scale: str, seed: int = 42, sizes=None) -> Path:
    """Root of the bundled synthetic data set in ``layout`` (``"mvtec"`` or ``"codebrim"``) at ``scale``.

    Generated once and cached under ``cache_dir()/data/`` in a folder named by layout, scale, seed,
    the generator's code (:func:`generator_code`) and the sizes (so neither changed code nor a changed
    ``bundled_data`` profile is ever served from an old folder); later calls (from any chapter or process) return the cached folder.
    The MVTec layout holds every category of :data:`BUNDLED_CATEGORIES`: the procedural
    ``carpet, leather, tile, wood, metal, concrete`` and the photographed ``brick, grass, gravel``. The CODEBRIM layout also holds
    :data:`BUNDLED_ORIGINALS` photographs in ``original_dataset/`` at the scales whose Defect-GAN profile
    crops its extra normals from them (``full``). ``sizes`` (a ``bundled_data`` configuration, e.g. a
    dry run's, :meth:`paper_repro.context.RunContext.config`) replaces the scale's profile.
    """
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    sizes = sizes or get_config("bundled_data", scale)
    n_train, n_test = ((sizes.n_train, sizes.n_test) if layout == "mvtec"
                       else (sizes.codebrim_train, sizes.codebrim_test))
    crops_originals = get_config("defect_gan", scale).extra_normals_source == "original"
    n_originals = BUNDLED_ORIGINALS if layout == "codebrim" and crops_originals else 0
    name = f"{layout}-{scale}-seed{int(seed)}-code{generator_code()}-{sizes.size}px-{n_train}-{n_test}"
    name += f"-originals{n_originals}" if n_originals else ""
    root = cache_dir() / "data" / name
    if root in _WHOLE and (root / MARKER).is_file():
        return root
    if (root / MARKER).is_file():
        damaged = damaged_files(root)
        if not damaged:
            _WHOLE.add(root)
            return root
        print(f"regenerating the bundled data: {root} has {len(damaged)} damaged or missing file(s) "
              f"({', '.join(damaged[:3])}{', ...' if len(damaged) > 3 else ''})")
        shutil.rmtree(root, ignore_errors=True)
    if root.is_dir():  # a cache folder without its marker is no finished set (sets are renamed in whole)
        shutil.rmtree(root, ignore_errors=True)
    try:
        synthesize(root, layout, size=sizes.size, n_train=n_train, n_test=n_test, seed=seed,
                   n_originals=n_originals)
    except (OSError, UserError):
        # Another process may have finished the same data set first; its copy is identical.
        if not (root / MARKER).is_file():
            raise
    return root


__all__ = [
    "generator_code", "damaged_files", "GENERATOR", "MARKER", "ORIGINALS_SCALE", "BUNDLED_ORIGINALS", "CODEBRIM_DEFECTS",
    "BUNDLED_CATEGORIES", "PROCEDURAL_CATEGORIES", "PHOTOGRAPHED_CATEGORIES", "LAYOUTS",
    "FAMILIES", "surface", "render", "normal_image", "codebrim_defect_set", "codebrim_labels", "write_mvtec",
    "write_codebrim", "write_codebrim_xml", "write_codebrim_originals", "is_generated_set", "check_counts", "check_out",
    "synthesize", "bundled_root",
]
