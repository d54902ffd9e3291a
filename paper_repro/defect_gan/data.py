"""Training data for Defect-GAN: a pool of normal images and a pool of labelled defect images.

§4.1: all classification images are used (CODEBRIM: *normal* = only ``Background`` set; *defects* =
the rest, labelled over the C = 5 defect classes), plus 50,000 extra normal crops, "collected by simply
cropping the original full-resolution images". Where the extra normals come from is the explicit
setting ``DefectGANConfig.extra_normals_source`` (:data:`EXTRA_NORMALS_SOURCES`):

- ``"auto"`` (the ``smoke`` and ``demo`` default): follow the data (:func:`resolve_normals_source`):
  ``"procedural"`` for a data set this project generated (the bundled set, or a ``data synth`` folder with
  its ``SYNTHETIC.json``), ``"original"`` for a real CODEBRIM whose original photographs are found beside
  it, ``"background-recrop"`` otherwise; a real data set's choice is printed in one line;
- ``"original"`` (the paper's way, the ``full`` default): square windows of CODEBRIM's original
  photographs that avoid every annotated defect box (:mod:`paper_repro.data.originals`); the archive
  ``original_dataset/`` is found next to the classification set (:func:`paper_repro.data.roots.find_originals`);
- ``"background-recrop"``: the named fallback, random square re-crops of the classification set's
  ``train/background`` crops (:class:`paper_repro.data.NormalPool`);
- ``"procedural"``: the bundled synthetic concrete, generated on the fly; only with data this project
  generated, never mixed into a real data set.

:attr:`TrainingData.normals_source` says which one ran, in words a caption can print. Images are
returned in [-1, 1] (the generator's tanh range).

Batches are a pure function of ``(seed, step, rank)``: each pool is walked in a fresh random
permutation per epoch, and the permutation of epoch ``e`` comes from a generator seeded with
``seed`` and ``e``. A resumed run therefore draws exactly the batches an uninterrupted run draws,
and under DDP every process takes its own slice of the global batch.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from paper_repro.environment import cache_dir
from paper_repro.data.codebrim import CODEBRIM, CODEBRIM_CLASSES
from paper_repro.data.originals import CODEBRIMOriginals, DefectFreeCrops
from paper_repro.data.pool import NormalPool
from paper_repro.data.roots import DataSource, find_originals, is_generated_data
from paper_repro.errors import UserError
from paper_repro.runs.cached import NOT_FINGERPRINTED, code_fingerprint
from paper_repro.runs.progress import tqdm

DEFECT_CLASSES = CODEBRIM_CLASSES[1:]  # C = 5: "Background" is the absence of all of them
EXTRA_NORMALS_SOURCES = ("auto", "original", "background-recrop", "procedural")


class EpochSampler:
    """Index of the k-th item of step ``step`` on ``rank``: epoch-wise permutations of ``range(n)``."""

    def __init__(self, n: int, seed: int):
        if n <= 0:
            raise ValueError("cannot sample from an empty pool")
        self.n, self.seed = n, seed
        self._perm = lru_cache(maxsize=4)(self._permutation)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def indices(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[int]:
        start = (step * world_size + rank) * batch_size
        return [int(self._perm(pos // self.n)[pos % self.n]) for pos in range(start, start + batch_size)]


@dataclass
class Batch:
    normal: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    defect: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    labels: torch.Tensor  # (B, C) multi-hot over the defect classes


class TrainingData:
    """Two pools, each a ``get(i) -> tensor`` function and a length; defects carry label vectors.

    ``normals_source`` names where the normal pool's extra images came from (for chapters and captions);
    ``defect_names`` the file name of each defect image (Tables 1-2 choose their FID sets by it), by
    default its index.
    """

    def __init__(self, normals: Callable[[int], torch.Tensor], n_normals: int,
                 defects: Callable[[int], torch.Tensor], defect_labels: torch.Tensor,
                 classes: Sequence[str] = DEFECT_CLASSES, seed: int = 42, normals_source: str = "given tensors",
                 defect_names: Sequence[str] | None = None):
        self.normals, self.defects = normals, defects
        self.defect_names = list(defect_names) if defect_names is not None else [str(i) for i in range(len(defect_labels))]
        self.normals_source = normals_source
        self.labels = defect_labels.float()
        self.classes = tuple(classes)
        self.n_normals, self.n_defects = n_normals, len(defect_labels)
        self.normal_sampler = EpochSampler(n_normals, seed)
        self.defect_sampler = EpochSampler(self.n_defects, seed + 1)

    @property
    def num_classes(self) -> int:
        return self.labels.shape[1]

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Batch:
        ni = self.normal_sampler.indices(step, batch_size, rank, world_size)
        di = self.defect_sampler.indices(step, batch_size, rank, world_size)
        return Batch(torch.stack([self.normals(i) for i in ni]),
                     torch.stack([self.defects(i) for i in di]), self.labels[di])

    def fixed_normals(self, n: int) -> torch.Tensor:
        """The first ``n`` normal images (for sample grids that stay comparable across steps)."""
        return torch.stack([self.normals(i) for i in range(min(n, self.n_normals))])

    @classmethod
    def from_tensors(cls, normals: torch.Tensor, defects: torch.Tensor, labels: torch.Tensor,
                     classes: Sequence[str] | None = None, seed: int = 42) -> "TrainingData":
        """In-memory pools (tests, notebooks): images already in [-1, 1]."""
        classes = classes or [f"class{i}" for i in range(labels.shape[1])]
        return cls(normals.__getitem__, len(normals), defects.__getitem__, labels, classes, seed)


def _to_gan_range(item: dict) -> torch.Tensor:
    return item["image"] * 2 - 1  # [0, 1] -> [-1, 1]


def _in_memory(dataset, indices, desc: str) -> torch.Tensor:
    with tqdm(indices, desc=desc, mininterval=2, leave=False) as bar:  # closed (and cleared) on errors too
        images = [dataset[i]["image"] for i in bar]
    return (torch.stack(images) * 255).round().to(torch.uint8)


def _dataset_name(source: DataSource) -> str:
    return "bundled synthetic CODEBRIM-layout" if source.bundled else "CODEBRIM"


def resolve_normals_source(kind: str, source: DataSource, normals_dir: str | Path | None = None) -> tuple[str, str]:
    """The extra-normals source ``kind`` stands for on ``source``, and why (empty unless ``kind`` is ``"auto"``).

    ``"auto"`` follows the data: ``"procedural"`` for data this project generated
    (:func:`~paper_repro.data.roots.is_generated_data`), ``"original"`` for a real CODEBRIM whose original
    photographs are found (:func:`~paper_repro.data.roots.find_originals`, or under ``normals_dir``),
    ``"background-recrop"`` otherwise. Any other ``kind`` is returned as it is."""
    if kind != "auto":
        return kind, ""
    if is_generated_data(source):
        return "procedural", "a data set this project generated (bundled, or SYNTHETIC.json)"
    try:
        find_originals(source, normals_dir)
    except UserError:
        return "background-recrop", "a real CODEBRIM without its original photographs (original_dataset/) beside it"
    return "original", "a real CODEBRIM with its original photographs, as §4.1 crops them"


def extra_normals(cfg, source: DataSource, codebrim_root: Path, seed: int = 42,
                  normals_dir: str | Path | None = None) -> tuple[Dataset | None, str]:
    """The pool of ``cfg.extra_normals`` extra normals from ``cfg.extra_normals_source``, and its caption label.

    ``normals_dir`` says where the source's files are: for ``"original"`` a folder at or below which
    ``original_dataset/`` lies; otherwise a folder of defect-free images that is re-cropped instead of
    ``train/background`` (with ``"procedural"`` too: a folder the user names replaces the generated
    surfaces). Every missing or disallowed source is one UserError.
    """
    kind, n = cfg.extra_normals_source, cfg.extra_normals
    if kind not in EXTRA_NORMALS_SOURCES:
        raise UserError(f"extra_normals_source {kind!r}: unknown; expected one of {', '.join(EXTRA_NORMALS_SOURCES)}")
    if not n:
        return None, "no extra normals"
    kind, why = resolve_normals_source(kind, source, normals_dir)
    if why and not source.bundled:  # one line for a user's folder; the bundled set needs no news
        print(f"extra normals: {kind} ({why}); choose another with --normals-source")
    if kind == "original":
        originals = CODEBRIMOriginals(find_originals(source, normals_dir))
        what = "bundled synthetic photographs" if source.bundled else "CODEBRIM original images"
        return (DefectFreeCrops(originals, n, cfg.image_size, seed),
                f"{what}, {n:,} crops avoiding defect boxes")
    if normals_dir is not None:
        folder = Path(normals_dir).expanduser()
        return NormalPool(folder, n, cfg.image_size, seed), f"re-crops of {folder}, {n:,} crops"
    if kind == "procedural":
        if not is_generated_data(source):
            raise UserError(f"{source.root}: extra_normals_source 'procedural' draws the bundled synthetic "
                            f"concrete, which is never mixed into a real data set; expected 'original' (the "
                            f"paper's crops of CODEBRIM's photographs) or 'background-recrop'")
        return NormalPool(None, n, cfg.image_size, seed), f"bundled procedural concrete, {n:,} images"
    folder = codebrim_root / "train" / "background"
    if not folder.is_dir():
        raise UserError(f"{folder}: not found; extra_normals_source 'background-recrop' re-crops the "
                        f"classification set's train/background crops")
    return (NormalPool(folder, n, cfg.image_size, seed),
            f"{_dataset_name(source)} train/background re-crops, {n:,} crops (fallback: §4.1 crops the original "
            f"photographs)")


def _pool_key(pool: Dataset, seed: int) -> str:
    """What an extra-normals pool's crops depend on: its kind and the code that crops (a fingerprint of its
    module, so a change to the cropping never serves old crops), folder, file count, crop sizes, n, seed."""
    if isinstance(pool, DefectFreeCrops):
        origin = (str(pool.originals.root.resolve()), len(pool.originals), pool.window_fraction)
    else:
        folder = str(pool.root.resolve()) if pool.root is not None else f"procedural:{pool.family}"
        origin = (folder, len(pool.sources), pool.crop_fraction)
    code = code_fingerprint(type(pool).__module__, exclude=NOT_FINGERPRINTED + ("paper_repro.runs",))
    return repr((type(pool).__name__, code, origin, len(pool), pool.image_size, seed))


def _on_disk(pool: Dataset, key: str, desc: str) -> np.ndarray:
    """Every image of ``pool`` as uint8 (N, 3, S, S), written once to ``cache_dir()/normals/<hash>.npy``
    (atomically) and memory-mapped: a pool too large for memory is decoded once, not every epoch.
    ``key`` (:func:`_pool_key`) names what the crops depend on, their code included."""
    path = cache_dir() / "normals" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"
    expected = (len(pool), 3, pool.image_size, pool.image_size)
    if path.is_file():
        try:
            array = np.load(path, mmap_mode="r")
            if array.shape == expected and array.dtype == np.uint8:
                return array
            problem = f"holds {array.dtype} {array.shape}, not uint8 {expected}"
        except (OSError, ValueError, EOFError) as err:   # truncated, not a .npy file
            problem = f"cannot be read ({' '.join(str(err).split())[:120]})"
        print(f"rebuilding the extra normals: {path} is damaged ({problem})")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    try:
        first = pool[0]["image"]
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(pool), *first.shape))
        with tqdm(range(len(pool)), desc=desc, mininterval=2, leave=False) as bar:
            for i in bar:
                array[i] = (pool[i]["image"] * 255).round().to(torch.uint8).numpy()
        array.flush()
        del array
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


def load_training_data(cfg, source: DataSource, seed: int = 42, normals_dir: str | Path | None = None,
                       preload_limit_bytes: int = 512 * 2**20) -> TrainingData:
    """The §4.1 training set: CODEBRIM ``train`` of ``source`` split into normals and defects, plus
    ``cfg.extra_normals`` extra normals from ``cfg.extra_normals_source`` (see :func:`extra_normals`).

    When the whole set fits under ``preload_limit_bytes`` (as uint8) it is read once into memory;
    otherwise the classification images are read when drawn and the extra normals are decoded once into
    a memory-mapped file under ``cache_dir()`` (see :func:`_on_disk`)."""
    codebrim = CODEBRIM(source.root, "train", image_size=cfg.image_size)
    pool, label = extra_normals(cfg, source, codebrim.root, seed, normals_dir)
    labels = codebrim.labels
    defect_labels = labels[:, 1:]  # drop "Background": C = 5 defect classes
    is_normal = defect_labels.sum(1) == 0
    normal_idx = torch.nonzero(is_normal).flatten().tolist()
    defect_idx = torch.nonzero(~is_normal).flatten().tolist()
    if not defect_idx:
        raise UserError(f"{codebrim.root}: the train split has no defect images; Defect-GAN needs "
                        f"some (records with a defect class set to 1)")
    n_pool = len(pool) if pool is not None else 0
    n_normals = len(normal_idx) + n_pool
    if n_normals == 0:
        raise UserError(f"{codebrim.root}: no normal images (Background-only records) and no extra normals")
    per_image = 3 * cfg.image_size ** 2
    if (n_normals + len(defect_idx)) * per_image <= preload_limit_bytes:
        normals = _in_memory(codebrim, normal_idx, "normals")
        if pool is not None:
            normals = torch.cat([normals, _in_memory(pool, range(n_pool), "extra normals")])
        defects = _in_memory(codebrim, defect_idx, "defects")
        get_normal = lambda i: normals[i].float() / 127.5 - 1  # noqa: E731
        get_defect = lambda i: defects[i].float() / 127.5 - 1  # noqa: E731
    else:
        extra = _on_disk(pool, _pool_key(pool, seed), "extra normals") if pool is not None else None

        def get_normal(i):
            if i < len(normal_idx):
                return _to_gan_range(codebrim[normal_idx[i]])
            return torch.from_numpy(np.array(extra[i - len(normal_idx)])).float() / 127.5 - 1

        def get_defect(i):
            return _to_gan_range(codebrim[defect_idx[i]])
    return TrainingData(get_normal, n_normals, get_defect, defect_labels[defect_idx],
                        CODEBRIM_CLASSES[1:], seed, normals_source=label,
                        defect_names=[codebrim.samples[i][0].name for i in defect_idx])


__all__ = ["DEFECT_CLASSES", "EXTRA_NORMALS_SOURCES", "EpochSampler", "Batch", "TrainingData",
           "resolve_normals_source", "extra_normals", "load_training_data"]
