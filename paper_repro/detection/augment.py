"""Defect-GAN §4.2's training sets: CODEBRIM's real crops, plus synthesized defects and restored
normal samples, each sample tagged with its *source* (0 real, 1 synthesized) for f_src.

"Defect-GAN synthesizes 50,000 defect samples to augment the training data ... restored normal
samples are added as well to avoid data imbalance." Here a synthesizer (a trained generator)
writes ``n`` defects d = G(n, c), with targets c drawn from the real defects' labels, and as many
restored normals n̂ = G(d_real, 0) as keep the real set's normal : defect ratio. They are written
once as PNG files (with ``labels.csv``) in a cached folder and read back like any data set.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from paper_repro import training as T
from paper_repro.data import CODEBRIM, CODEBRIM_CLASSES
from paper_repro.defect_gan.control import write_image
from paper_repro.defect_gan.data import TrainingData
from paper_repro.detection.synthesizers import deface, restore

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
        images, targets = deface(G, data, count, seed=seed + start, device=device, batch_size=batch_size)
        for k, (image, target) in enumerate(zip(images, targets)):
            name = f"defects/syn_{start + k:06d}.png"
            write_image(image * 2 - 1, out_dir / name)
            rows.append([name, 0.0, *target.tolist()])
    for start in range(0, n_normals, 1024):
        count = min(1024, n_normals - start)
        images = restore(G, _shifted(data, start), count, seed=seed + 7919 + start, device=device,
                         batch_size=batch_size)
        for k, image in enumerate(images):
            name = f"background/restored_{start + k:06d}.png"
            write_image(image * 2 - 1, out_dir / name)
            rows.append([name, 1.0] + [0.0] * (len(CODEBRIM_CLASSES) - 1))
    with (out_dir / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", *CODEBRIM_CLASSES], *rows])
    (out_dir / "done.json").write_text(json.dumps({"defects": n_defects, "normals": n_normals}))
    return out_dir


def _shifted(data: TrainingData, offset: int) -> TrainingData:
    """The same pools, real defects numbered from ``offset`` (so chunks restore different ones)."""
    return TrainingData(data.normals, data.n_normals, lambda i: data.defects((i + offset) % data.n_defects),
                        data.labels, data.classes, data.normal_sampler.seed)


def synthesized_set_dir(synthesizer_run: str | Path, n_defects: int, n_normals: int, seed: int) -> Path:
    """The cached folder of one synthesizer's samples (keyed by its run and the counts)."""
    return T.cached_run_dir("table3_synthesized", {"generator_run": Path(synthesizer_run).name,
                                                   "defects": n_defects, "normals": n_normals}, seed=seed)


class SynthesizedSet(Dataset):
    """A folder written by :func:`write_synthesized_set`; items ``image``, ``labels``, ``source`` = 1."""

    def __init__(self, folder: str | Path, image_size: int | None = None, normalize: str | None = "imagenet"):
        from paper_repro.data.io import resolve_normalize

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
        from paper_repro.data.io import image_tensor, read_image

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
        from tqdm.auto import tqdm

        items = [dataset[i] for i in tqdm(range(len(dataset)), desc="reading", mininterval=2, leave=False)]
        self.tensors = {k: torch.stack([it[k] for it in items]) for k in ("image", "labels", "source")}

    @property
    def labels(self) -> torch.Tensor:
        return self.tensors["labels"]

    def __len__(self) -> int:
        return len(self.tensors["image"])

    def __getitem__(self, index: int) -> dict:
        return {k: v[index] for k, v in self.tensors.items()}


__all__ = ["REAL", "SYNTHETIC", "n_restored", "write_synthesized_set", "synthesized_set_dir",
           "SynthesizedSet", "RealSet", "InMemory"]
