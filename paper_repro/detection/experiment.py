"""Defect-GAN Table 3 end to end: classifiers trained on real CODEBRIM alone and with synthesized
samples from StarGAN + SPADE and Defect-GAN (the Table 1-2 runs of :mod:`.synthesizers`).

Every cell is a cached run (``cache_dir()/runs/detection-<hash>``), so re-running the chapter only
reads results back. Conditional StackGAN++ is not re-run (no implementation here).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import ConcatDataset, Subset

from paper_repro import training as T
from paper_repro.config import get_config
from paper_repro.defect_gan.data import load_training_data
from paper_repro.detection.augment import (InMemory, RealSet, SynthesizedSet, n_restored,
                                           synthesized_set_dir, write_synthesized_set)
from paper_repro.detection.synthesizers import (ABLATION_ROWS, flags_of, load_synthesizer, table_config,
                                                train_variant)
from paper_repro.detection.train import DetectionResult, train_classifier

NO_AUGMENTATION = "None"
SYNTHESIZERS = {name: row for row, name in ABLATION_ROWS if name in ("StarGAN + SPADE", "Defect-GAN")}
AUGMENTATIONS = (NO_AUGMENTATION, *SYNTHESIZERS)
IN_MEMORY_LIMIT = 2 * 2**30  # bytes of float images below which a set is read into memory once


def _maybe_in_memory(dataset, image_size: int):
    return InMemory(dataset) if len(dataset) * 3 * image_size ** 2 * 4 <= IN_MEMORY_LIMIT else dataset


def capped(dataset, limit: int, seed: int):
    """A seeded random subset of ``limit`` samples (``limit`` 0 or larger than the set: the set)."""
    if not limit or limit >= len(dataset):
        return dataset
    keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:limit]
    return Subset(dataset, keep.tolist())


def real_splits(codebrim_root: str | Path, image_size: int) -> dict[str, object]:
    """CODEBRIM train/val/test with ``source`` = 0, ImageNet-normalised at ``image_size``."""
    return {split: _maybe_in_memory(RealSet(codebrim_root, split, image_size), image_size)
            for split in ("train", "val", "test")}


def synthesized_sets(scale: str, data_root: str | Path | None, n_defects: int, n_normals: int,
                     image_size: int, device: str = "cpu", seed: int = 42, progress: bool = True
                     ) -> dict[str, SynthesizedSet]:
    """{augmentation: its synthesized set}, training the synthesizers first if needed."""
    data = None
    sets = {}
    for name, row in SYNTHESIZERS.items():
        run_dir = train_variant(scale, data_root, device=device, seed=seed, progress=progress, **flags_of(row))
        folder = synthesized_set_dir(run_dir, n_defects, n_normals, seed)
        if not (folder / "done.json").is_file():
            data = data or load_training_data(table_config(scale), data_root, scale=scale, seed=seed)
            G = load_synthesizer(name, run_dir, row, device).generator
            write_synthesized_set(G, data, folder, n_defects, n_normals, seed=seed, device=device)
        sets[name] = _maybe_in_memory(SynthesizedSet(folder, image_size), image_size)
    return sets


def run_table3(scale: str, codebrim_root: str | Path, data_root: str | Path | None = None,
               device: str = "cpu", seed: int = 42, backbones: tuple[str, ...] | None = None,
               weights: str | None = None, progress: bool = True, **overrides) -> list[DetectionResult]:
    """Every (backbone, augmentation) cell of Table 3 at ``scale``; ``overrides`` change the
    DetectionConfig (e.g. ``epochs``)."""
    cfg = get_config("detection", scale, **overrides)
    real = real_splits(codebrim_root, cfg.image_size)
    n_def = cfg.n_synthesized
    n_norm = n_restored(n_def, real["train"].labels)
    synthetic = synthesized_sets(scale, data_root, n_def, n_norm, cfg.image_size, device, seed, progress)
    results = []
    for backbone in backbones or cfg.backbones:
        for augmentation in AUGMENTATIONS:
            extra = synthetic.get(augmentation)
            train_set = real["train"] if extra is None else ConcatDataset([real["train"], extra])
            train_set = capped(train_set, cfg.max_train_samples, seed)
            run_dir = T.cached_run_dir("detection", cfg, backbone=backbone, augmentation=augmentation,
                                       weights=weights, data=str(data_root or f"bundled-{scale}"), seed=seed,
                                       synthesized=None if extra is None else n_def)
            results.append(train_classifier(cfg, backbone, augmentation, train_set, real["val"], real["test"],
                                            run_dir, source_head=extra is not None, weights=weights,
                                            device=device, seed=seed, progress=progress))
    return results


def results_frame(results: list[DetectionResult]) -> pd.DataFrame:
    """Table 3 in the paper's shape: ``network, augmentation, accuracy`` (%), plus val and epoch."""
    names = {"resnet34": "ResNet34", "densenet121": "DenseNet121"}
    return pd.DataFrame([{"network": names.get(r.backbone, r.backbone), "augmentation": r.augmentation,
                          "accuracy": 100 * r.test_accuracy, "val_accuracy": 100 * r.val_accuracy,
                          "best_epoch": r.best_epoch} for r in results])


__all__ = ["NO_AUGMENTATION", "SYNTHESIZERS", "AUGMENTATIONS", "real_splits", "synthesized_sets",
           "run_table3", "results_frame"]
