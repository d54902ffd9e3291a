"""Training data for Defect-GAN: a pool of normal images and a pool of labelled defect images.

§4.1: all classification images are used (CODEBRIM: *normal* = only ``Background`` set; *defects* =
the rest, labelled over the C = 5 defect classes), plus 50,000 extra normal crops (here
:class:`paper_repro.data.NormalPool`). Images are returned in [-1, 1] (the generator's tanh range).

Batches are a pure function of ``(seed, step, rank)``: each pool is walked in a fresh random
permutation per epoch, and the permutation of epoch ``e`` comes from a generator seeded with
``seed`` and ``e``. A resumed run therefore draws exactly the batches an uninterrupted run draws,
and under DDP every process takes its own slice of the global batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from paper_repro.data.codebrim import CODEBRIM, CODEBRIM_CLASSES
from paper_repro.data.pool import NormalPool
from paper_repro.data.roots import DataSource
from paper_repro.errors import UserError

DEFECT_CLASSES = CODEBRIM_CLASSES[1:]  # C = 5: "Background" is the absence of all of them


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
    """Two pools, each a ``get(i) -> tensor`` function and a length; defects carry label vectors."""

    def __init__(self, normals: Callable[[int], torch.Tensor], n_normals: int,
                 defects: Callable[[int], torch.Tensor], defect_labels: torch.Tensor,
                 classes: Sequence[str] = DEFECT_CLASSES, seed: int = 42):
        self.normals, self.defects = normals, defects
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
    images = [dataset[i]["image"] for i in tqdm(indices, desc=desc, mininterval=2, leave=False)]
    return (torch.stack(images) * 255).round().to(torch.uint8)


def load_training_data(cfg, source: DataSource, seed: int = 42, normals_dir: str | Path | None = None,
                       preload_limit_bytes: int = 512 * 2**20) -> TrainingData:
    """The §4.1 training set: CODEBRIM ``train`` of ``source`` split into normals and defects, plus
    ``cfg.extra_normals`` extra normals from :class:`paper_repro.data.NormalPool` (procedural concrete
    for the bundled set; crops of ``normals_dir``, default ``<root>/train/background``, for a real root).

    Pools small enough (as uint8, under ``preload_limit_bytes``) are read once into memory."""
    codebrim = CODEBRIM(source.root, "train", image_size=cfg.image_size)
    pool_source = normals_dir
    if pool_source is None and not source.bundled:
        pool_source = next((p for p in [codebrim.root / "train" / "background"] if p.is_dir()), None)
    labels = codebrim.labels
    defect_labels = labels[:, 1:]  # drop "Background": C = 5 defect classes
    is_normal = defect_labels.sum(1) == 0
    normal_idx = torch.nonzero(is_normal).flatten().tolist()
    defect_idx = torch.nonzero(~is_normal).flatten().tolist()
    if not defect_idx:
        raise UserError(f"{codebrim.root}: the train split has no defect images; Defect-GAN needs "
                        f"some (records with a defect class set to 1)")
    pool = NormalPool(pool_source, cfg.extra_normals, cfg.image_size, seed) if cfg.extra_normals else None
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
        def get_normal(i):
            return _to_gan_range(codebrim[normal_idx[i]] if i < len(normal_idx) else pool[i - len(normal_idx)])

        def get_defect(i):
            return _to_gan_range(codebrim[defect_idx[i]])
    return TrainingData(get_normal, n_normals, get_defect, defect_labels[defect_idx],
                        CODEBRIM_CLASSES[1:], seed)
