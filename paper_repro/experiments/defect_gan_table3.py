"""Defect-GAN Table 3 end to end (§4.2): classifiers trained on real CODEBRIM alone and with
synthesized samples from StarGAN + SPADE and Defect-GAN (the Table 1-2 runs of :mod:`.synthesizers`).

"Defect-GAN synthesizes 50,000 defect samples to augment the training data ... restored normal
samples are added as well to avoid data imbalance." A synthesizer (a trained generator) writes ``n``
defects d = G(n, c), with targets c drawn from the real defects' labels, and as many restored
normals n̂ = G(d_real, 0) as keep the real set's normal : defect ratio. They are written once as PNG
files (with ``labels.csv``) in a cached folder and read back like any data set, each sample tagged
with its *source* (0 real, 1 synthesized) for f_src.

Every cell is a cached run (``cache_dir()/runs/detection-<hash>``), so re-running the chapter only
reads results back. Conditional StackGAN++ is not re-run (no implementation here).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from paper_repro.context import RunContext, as_context
from paper_repro.data.codebrim import CODEBRIM, CODEBRIM_CLASSES
from paper_repro.data.io import image_tensor, read_image, resolve_normalize
from paper_repro.data.roots import DataSource
from paper_repro.defect_gan.classifier import DetectionResult, majority_label_set_accuracy, train_classifier
from paper_repro.defect_gan.control import write_image
from paper_repro.defect_gan.data import TrainingData, load_training_data
from paper_repro.experiments.synthesizers import (ABLATION_ROWS, converged, flags_of, load_synthesizer,
                                                  recorded_fid_curve, sample_defaced, sample_restored,
                                                  table_config, train_variant)
from paper_repro.results.papers import paper_table
from paper_repro.results.reading import Effect, Spread, Verdict, improvement, spreads
from paper_repro.runs.cached import MANIFEST, damaged_since_marker, empty_folder, ensure_current, file_digests, listed
from paper_repro.runs.folders import cached_run_dir, run_lock
from paper_repro.runs.progress import tqdm

NO_AUGMENTATION = "None"
SYNTHESIZERS = {name: row for row, name in ABLATION_ROWS if name in ("StarGAN + SPADE", "Defect-GAN")}
AUGMENTATIONS = (NO_AUGMENTATION, *SYNTHESIZERS)
IN_MEMORY_LIMIT = 2 * 2**30  # bytes of float images below which a set is read into memory once


# ------------------------------------------------------------------------------------------
# Training sets: real crops, synthesized defects and restored normals
# ------------------------------------------------------------------------------------------
REAL, SYNTHETIC = 0.0, 1.0


def n_restored(n_synthesized: int, real_labels: torch.Tensor) -> int:
    """Restored normals that keep the real normal : defect ratio once ``n_synthesized`` defects are added."""
    is_defect = real_labels[:, 1:].sum(1) > 0
    n_defect, n_normal = int(is_defect.sum()), int((~is_defect).sum())
    return round(n_synthesized * n_normal / max(n_defect, 1))


def write_synthesized_set(G, data: TrainingData, out_dir: str | Path, n_defects: int, n_normals: int,
                          seed: int = 0, device: str = "cpu", batch_size: int = 64) -> Path:
    """Write ``n_defects`` synthesized defects and ``n_normals`` restored normals under ``out_dir``.

    Labels are CODEBRIM's six (``Background`` first): a synthesized defect has Background 0 and its
    target classes; a restored normal is Background only. A ``done.json`` marks a finished folder.
    """
    out_dir = Path(out_dir)
    if (out_dir / "done.json").is_file():
        return out_dir
    rows = []
    for start in range(0, n_defects, 1024):  # chunks bound the memory at full scale
        count = min(1024, n_defects - start)
        images, targets = sample_defaced(G, data, count, seed=seed + start, device=device, batch_size=batch_size)
        for k, (image, target) in enumerate(zip(images, targets)):
            name = f"defects/syn_{start + k:06d}.png"
            write_image(image * 2 - 1, out_dir / name)
            rows.append([name, 0.0, *target.tolist()])
    for start in range(0, n_normals, 1024):
        count = min(1024, n_normals - start)
        images = sample_restored(G, _shifted(data, start), count, seed=seed + 7919 + start, device=device,
                         batch_size=batch_size)
        for k, image in enumerate(images):
            name = f"background/restored_{start + k:06d}.png"
            write_image(image * 2 - 1, out_dir / name)
            rows.append([name, 1.0] + [0.0] * (len(CODEBRIM_CLASSES) - 1))
    with (out_dir / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", *CODEBRIM_CLASSES], *rows])
    files = file_digests(out_dir, SET_BOOKKEEPING)
    (out_dir / "done.json").write_text(json.dumps({"defects": n_defects, "normals": n_normals, "files": files}))
    return out_dir


SET_BOOKKEEPING = ("done.json", ".lock", MANIFEST)   # a synthesized set's files that are not its images


def damaged_set(folder: Path) -> list[str]:
    """The files of a finished synthesized set missing, changed or added since it was written."""
    return damaged_since_marker(folder, "done.json", SET_BOOKKEEPING)


def _shifted(data: TrainingData, offset: int) -> TrainingData:
    """The same pools, real defects numbered from ``offset`` (so chunks restore different ones)."""
    return TrainingData(data.normals, data.n_normals, lambda i: data.defects((i + offset) % data.n_defects),
                        data.labels, data.classes, data.normal_sampler.seed, normals_source=data.normals_source)


def synthesized_set_dir(synthesizer_run: str | Path, n_defects: int, n_normals: int, seed: int) -> Path:
    """The cached folder of one synthesizer's samples (keyed by its run and the counts)."""
    return cached_run_dir("table3_synthesized", {"generator_run": Path(synthesizer_run).name,
                                                 "defects": n_defects, "normals": n_normals}, seed=seed)


class SynthesizedSet(Dataset):
    """A folder written by :func:`write_synthesized_set`; items ``image``, ``labels``, ``source`` = 1."""

    def __init__(self, folder: str | Path, image_size: int | None = None, normalize: str | None = "imagenet"):
        self.folder = Path(folder)
        if not (self.folder / "done.json").is_file():
            raise FileNotFoundError(f"{self.folder}: no finished synthesized set (done.json missing)")
        with (self.folder / "labels.csv").open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            self.samples = [(row[0], [float(v) for v in row[1:]]) for row in reader]
        self.image_size, self.stats = image_size, resolve_normalize(normalize)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([lab for _, lab in self.samples])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        name, labels = self.samples[index]
        image = image_tensor(read_image(self.folder / name, "RGB"), self.image_size, self.stats)
        return {"image": image, "labels": torch.tensor(labels), "source": torch.tensor(SYNTHETIC)}


class RealSet(Dataset):
    """A CODEBRIM split with ``source`` = 0 on every item."""

    def __init__(self, root: str | Path, split: str, image_size: int, normalize: str | None = "imagenet"):
        self.data = CODEBRIM(root, split, image_size=image_size, normalize=normalize)

    @property
    def labels(self) -> torch.Tensor:
        return self.data.labels

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        item = self.data[index]
        return {"image": item["image"], "labels": item["labels"], "source": torch.tensor(REAL)}


class InMemory(Dataset):
    """Read a small data set once (images as float tensors) so epochs do not decode files again."""

    def __init__(self, dataset: Dataset):
        items = [dataset[i] for i in tqdm(range(len(dataset)), desc="reading", mininterval=2, leave=False)]
        self.tensors = {k: torch.stack([it[k] for it in items]) for k in ("image", "labels", "source")}

    @property
    def labels(self) -> torch.Tensor:
        return self.tensors["labels"]

    def __len__(self) -> int:
        return len(self.tensors["image"])

    def __getitem__(self, index: int) -> dict:
        return {k: v[index] for k, v in self.tensors.items()}


# ------------------------------------------------------------------------------------------
# Table 3
# ------------------------------------------------------------------------------------------
def _maybe_in_memory(dataset, image_size: int):
    return InMemory(dataset) if len(dataset) * 3 * image_size ** 2 * 4 <= IN_MEMORY_LIMIT else dataset


def capped(dataset, limit: int, seed: int):
    """A seeded random subset of ``limit`` samples (``limit`` 0 or larger than the set: the set)."""
    if not limit or limit >= len(dataset):
        return dataset
    keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:limit]
    return Subset(dataset, keep.tolist())


def real_splits(codebrim: DataSource, image_size: int) -> dict[str, object]:
    """CODEBRIM train/val/test with ``source`` = 0, ImageNet-normalised at ``image_size``."""
    return {split: _maybe_in_memory(RealSet(codebrim.root, split, image_size), image_size)
            for split in ("train", "val", "test")}


def synthesized_sets(ctx: RunContext | str, codebrim: DataSource, n_defects: int, n_normals: int,
                     image_size: int, device: str = "cpu", seed: int = 42, progress: bool = True
                     ) -> dict[str, SynthesizedSet]:
    """{augmentation: its synthesized set}, training the synthesizers first if needed."""
    data = None
    sets = {}
    for name, row in SYNTHESIZERS.items():
        run_dir = train_variant(ctx, codebrim, device=device, seed=seed, progress=progress, **flags_of(row))
        folder = synthesized_set_dir(run_dir, n_defects, n_normals, seed)
        with run_lock(folder, wait=True):
            ensure_current(folder, [__name__], what="table3_synthesized")  # its code and the generator's
            damaged = damaged_set(folder) if (folder / "done.json").is_file() else []
            if damaged:
                print(f"rebuilding the synthesized set {folder}: {listed(damaged)} damaged or missing")
                empty_folder(folder, keep=(".lock", MANIFEST))
            if not (folder / "done.json").is_file():
                data = data or load_training_data(table_config(ctx), codebrim, seed=seed)
                G = load_synthesizer(name, run_dir, row, device).generator
                write_synthesized_set(G, data, folder, n_defects, n_normals, seed=seed, device=device)
        sets[name] = _maybe_in_memory(SynthesizedSet(folder, image_size), image_size)
    return sets


def run_table3(ctx: RunContext | str, codebrim: DataSource, device: str = "cpu", seed: int = 42,
               backbones: tuple[str, ...] | None = None, weights: str | None = None, progress: bool = True,
               **overrides) -> list[DetectionResult]:
    """Every (backbone, augmentation) cell of Table 3 at the context's scale; ``overrides`` change the
    DetectionConfig (e.g. ``epochs``)."""
    cfg = as_context(ctx).config("detection", **overrides)
    real = real_splits(codebrim, cfg.image_size)
    n_def = cfg.n_synthesized
    n_norm = n_restored(n_def, real["train"].labels)
    synthetic = synthesized_sets(ctx, codebrim, n_def, n_norm, cfg.image_size, device, seed, progress)
    results = []
    for backbone in backbones or cfg.backbones:
        for augmentation in AUGMENTATIONS:
            extra = synthetic.get(augmentation)
            train_set = real["train"] if extra is None else ConcatDataset([real["train"], extra])
            train_set = capped(train_set, cfg.max_train_samples, seed)
            run_dir = cached_run_dir("detection", cfg, backbone=backbone, augmentation=augmentation,
                                     weights=weights, data=codebrim.key, seed=seed,
                                     synthesized=None if extra is None else n_def)
            with run_lock(run_dir, wait=True):  # a classifier of other code (its own, or its samples') is retrained
                ensure_current(run_dir, [__name__], what="detection")
                results.append(train_classifier(cfg, backbone, augmentation, train_set, real["val"], real["test"],
                                                run_dir, source_head=extra is not None, weights=weights,
                                                device=device, seed=seed, progress=progress))
    return results


TRIVIAL = "always the most frequent label set"


def trivial_accuracy(real: dict) -> tuple[float, str]:
    """The floor of Table 3: exact-match accuracy (%) on the test split of always predicting the
    training split's most frequent label set, and that set's class names."""
    accuracy, label_set = majority_label_set_accuracy(real["train"].labels, real["test"].labels)
    names = "+".join(c for c, on in zip(CODEBRIM_CLASSES, label_set) if on) or "no class"
    return 100 * accuracy, names


BACKBONE_NAMES = {"resnet34": "ResNet34", "densenet121": "DenseNet121", "resnet18": "ResNet18"}
# The paper's row a backbone is compared with: demo's ResNet18, the smallest of the paper's ResNet family,
# stands in for ResNet34 (config.py, the "detection" profile).
PAPER_NETWORK = {"ResNet18": "ResNet34"}


def results_frame(results: list[DetectionResult]) -> pd.DataFrame:
    """Table 3 in the paper's shape: ``network`` (the paper's row, :data:`PAPER_NETWORK`), ``backbone``
    (the network trained), ``augmentation, accuracy`` (%), plus val and epoch."""
    shown = [BACKBONE_NAMES.get(r.backbone, r.backbone) for r in results]
    return pd.DataFrame([{"network": PAPER_NETWORK.get(name, name), "backbone": name, "augmentation": r.augmentation,
                          "accuracy": 100 * r.test_accuracy, "val_accuracy": 100 * r.val_accuracy,
                          "best_epoch": r.best_epoch, "epochs_trained": r.epochs_trained}
                         for name, r in zip(shown, results)])


def classifiers_converged(results: list[DetectionResult], cfg) -> bool | str:
    """True when every cell's validation accuracy stopped improving: it stopped early (patience), or it
    reached the epoch cap with no better validation accuracy in its last ``patience`` epochs."""
    if not cfg.patience:
        return "the classifiers trained a fixed number of epochs, not until convergence"
    capped_runs = [r for r in results if r.epochs_trained >= cfg.epochs and r.best_epoch > cfg.epochs - cfg.patience]
    if capped_runs:
        return (f"{len(capped_runs)} of {len(results)} classifiers still improved at the {cfg.epochs}-epoch cap")
    return True


def synthesizers_converged(ctx: RunContext | str, runs: dict[str, Path] | None = None) -> bool | str:
    """Are Table 3's synthesizers trained? ``runs`` ({name: run folder}) are judged by the FID curves
    the Tables 1-2 chapters recorded in them (:func:`paper_repro.experiments.synthesizers.converged`)."""
    curves = {name: recorded_fid_curve(run) for name, run in (runs or {}).items()}
    return converged(ctx, curves)


def verdicts(frame: pd.DataFrame, trivial: float, classifiers_ready: bool | str,
             synthesizers_ready: bool | str) -> list[Verdict]:
    """Per network: the real-data classifier beats the trivial one (the table's floor), and the paper's
    claims: Defect-GAN's samples help (over "None" and over StarGAN + SPADE's). ``frame`` has one row
    per (network, augmentation, seed)."""
    t = "Table 3"
    paper = paper_table("defect_gan.table3").set_index(["network", "augmentation"])["accuracy"]
    out = []
    for network, part in frame.groupby("network", sort=False):
        trained = part["backbone"].iloc[0] if "backbone" in part else network
        network = network if trained == network else f"{trained} (the paper's {network} row)"
        acc = spreads(part, "augmentation", "accuracy")
        n = acc[NO_AUGMENTATION].n
        floor = Spread.of([trivial] * n)   # deterministic: the same number for every seed
        out.append(improvement(t, f"{network} trained on real crops beats always predicting the most frequent "
                               "label set", (NO_AUGMENTATION, acc[NO_AUGMENTATION]), (TRIVIAL, floor), True,
                               classifiers_ready, " pts", worse_is_constant=True))
        ready = synthesizers_ready if synthesizers_ready is not True else classifiers_ready
        for better, worse in (("Defect-GAN", NO_AUGMENTATION), ("Defect-GAN", "StarGAN + SPADE")):
            if better in acc and worse in acc:
                row = part["network"].iloc[0]
                said = (f"{network}: {better}'s samples beat {worse} ({paper[(row, better)]:.1f} vs "
                        f"{paper[(row, worse)]:.1f} in the paper)")
                effect = Effect.points(paper[(row, better)], paper[(row, worse)], True)
                out.append(improvement(t, said, (better, acc[better]), (worse, acc[worse]), True, ready, " pts", effect))
    return out


__all__ = ["NO_AUGMENTATION", "SYNTHESIZERS", "AUGMENTATIONS", "REAL", "SYNTHETIC", "n_restored",
           "write_synthesized_set", "synthesized_set_dir", "SynthesizedSet", "RealSet", "InMemory", "capped",
           "real_splits", "synthesized_sets", "run_table3", "BACKBONE_NAMES", "PAPER_NETWORK", "TRIVIAL", "trivial_accuracy", "results_frame",
           "classifiers_converged", "synthesizers_converged", "verdicts"]
