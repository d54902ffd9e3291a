"""What the Defect-GAN chapters look at: the shared trained run, normal images seen and unseen in
training, defective test images, and red boxes for spatial control (Fig. 6). Chapters call these
instead of re-writing them."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
from matplotlib.patches import Rectangle

from paper_repro.config import DefectGANConfig
from paper_repro.data.codebrim import CODEBRIM
from paper_repro.data.pool import NormalPool
from paper_repro.defect_gan.control import control_map, synthesize
from paper_repro.defect_gan.generator import Generator
from paper_repro.defect_gan.trainer import config_from_run, load_generator, trained_run
from paper_repro.evaluation.artifacts import DEFAULT_FACTOR, ArtifactVerdict, nyquist_share
from paper_repro.evaluation.fid import in_domain_extractor


def chapter_run(ctx, progress: bool = True) -> Path:
    """The one trained run every Defect-GAN chapter at ``ctx.scale`` shares (trained on first use)."""
    return trained_run(ctx.config("defect_gan"), ctx.data("codebrim"), seed=ctx.seed,
                       device=str(ctx.device), progress=progress)


class ChapterModel(NamedTuple):
    run: Path
    generator: Generator
    classes: list[str]
    config: DefectGANConfig


def chapter_model(ctx, progress: bool = True) -> ChapterModel:
    """The shared run (:func:`chapter_run`), its generator on the chapter's device, its class names and
    its configuration; prints one line saying which run it is."""
    run = chapter_run(ctx, progress)
    G, classes = load_generator(run, ctx.device)
    cfg, _ = config_from_run(run)
    print(f"run {run.name}: {cfg.iterations} iterations at {cfg.image_size} px on {ctx.data_label}, "
          f"classes {', '.join(classes)}")
    return ChapterModel(run, G, classes, cfg)


def _codebrim(ctx, size: int, split: str) -> CODEBRIM:
    return CODEBRIM(ctx.data("codebrim").root, split, image_size=size)


def split_images(ctx, size: int, n: int, defective: bool, split: str = "test"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` CODEBRIM images of ``split`` (``test``: never seen in training), normal or defective,
    in [-1, 1], with their labels over the 5 defect classes."""
    data = _codebrim(ctx, size, split)
    labels = data.labels[:, 1:]
    picks = torch.nonzero((labels.sum(1) > 0) == defective).flatten()[:n].tolist()
    return torch.stack([data[i]["image"] * 2 - 1 for i in picks]), labels[picks]


def unseen_backgrounds(size: int, per_family: int = 2, seed: int = 42,
                       families: tuple[str, ...] = ("metal", "wood", "tile", "leather")
                       ) -> tuple[torch.Tensor, list[str]]:
    """Normal surfaces of *other* materials than the training concrete (Fig. 4, rows 6-8)."""
    images, names = [], []
    for family in families:
        pool = NormalPool(None, per_family, size, seed + 1000, family=family)
        images += [pool[i]["image"] * 2 - 1 for i in range(per_family)]
        names += [family] * per_family
    return torch.stack(images), names


def draw_box(ax, box, color: str = "red") -> None:
    """Outline ``box = (x0, y0, x1, y1)`` (pixels) on a matplotlib axis, as the red boxes of Fig. 6."""
    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1.2))


def _reference_images(ctx, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every crop of the test and train splits (test first) in [0, 1], with labels over the 5 defect classes."""
    test, train = _codebrim(ctx, size, "test"), _codebrim(ctx, size, "train")
    images = torch.stack([d[i]["image"] for d in (test, train) for i in range(len(d))])
    return images, torch.cat([test.labels[:, 1:], train.labels[:, 1:]])


@torch.no_grad()
def _painted(ctx, G: Generator, classes: list[str], size: int, normals: torch.Tensor, name: str) -> torch.Tensor:
    """``name`` asked for over the whole of each normal image (in [-1, 1]), fixed noise; on the CPU, in [-1, 1]."""
    device = next(G.parameters()).device
    torch.manual_seed(ctx.seed)
    return synthesize(G, normals.to(device), control_map([name], classes, size).to(device)).image.cpu()


@torch.no_grad()
def artifact_check(ctx, G: Generator, classes: list[str], size: int, n: int = 40,
                   factor: float = DEFAULT_FACTOR) -> pd.DataFrame:
    """Is the generator painting a checkerboard? Per class, the Nyquist share
    (:func:`paper_repro.evaluation.artifacts.nyquist_share`) of its defects of that class, asked for over
    the whole image on ``n`` normal images (test split first, then train; fixed noise), beside the share
    of the real crops of that class (both splits), their ratio and the verdict at ``factor``; a last row
    compares the real normal crops with the real defects. One row per class."""
    images, labels = _reference_images(ctx, size)
    normals = images[labels.sum(1) == 0][:n] * 2 - 1
    rows = []
    for k, name in enumerate(classes):
        fake = _painted(ctx, G, classes, size, normals, name)
        verdict = ArtifactVerdict(name, nyquist_share(fake), nyquist_share(images[labels[:, k] > 0]), factor)
        rows.append(_verdict_row(verdict, "generated"))
    real = ArtifactVerdict("(normal crops)", nyquist_share(images[labels.sum(1) == 0]),
                           nyquist_share(images[labels.sum(1) > 0]), factor)
    rows.append(_verdict_row(real, "real"))
    return pd.DataFrame(rows).set_index("class")


def recognition_check(ctx, G: Generator, classes: list[str], size: int, n: int = 40,
                      progress: bool = True) -> pd.DataFrame:
    """Does each class look like itself? An independent judge, the in-domain classifier (the head of the FID
    extractor, :func:`paper_repro.evaluation.fid.in_domain_extractor`, trained on the real crops' labels
    only), reads the ``n`` normal images defaced with each class (as :func:`artifact_check` paints them)
    and the real crops of that class. Per class: the share it labels with the asked class
    (probability > 0.5), the same share on the real crops, and the share of defaced images it still calls
    normal (no class > 0.5). A class the judge recognises on real crops but not on the painted ones is
    not yet painted as itself."""
    judge = in_domain_extractor(ctx.data("codebrim"), size, ctx, ctx.seed, progress=progress)  # may train
    with torch.no_grad():
        return _recognition_rows(judge, ctx, G, classes, size, n)


@torch.no_grad()
def _recognition_rows(judge, ctx, G: Generator, classes: list[str], size: int, n: int) -> pd.DataFrame:
    images, labels = _reference_images(ctx, size)
    normals = images[labels.sum(1) == 0][:n] * 2 - 1
    real_p = torch.sigmoid(judge.logits(images))[:, 1:]
    rows = []
    for k, name in enumerate(classes):
        fake_p = torch.sigmoid(judge.logits((_painted(ctx, G, classes, size, normals, name) + 1) / 2))[:, 1:]
        real_k = labels[:, k] > 0
        rows.append({"class": name, "painted, called this class": float((fake_p[:, k] > 0.5).float().mean()),
                     "real crops, called this class": float((real_p[real_k, k] > 0.5).float().mean()),
                     "painted, called normal": float((fake_p.max(1).values <= 0.5).float().mean()),
                     "real crops of the class": int(real_k.sum())})
    return pd.DataFrame(rows).set_index("class")


def recognition_summary(table: pd.DataFrame) -> str:
    """One sentence on :func:`recognition_check`'s table: which classes the judge recognises as often in the
    painted images as in the real crops (at least half as often)."""
    painted, real = table["painted, called this class"], table["real crops, called this class"]
    judged = real > 0  # a class the judge never recognises on real crops cannot be judged
    recognised = judged & (painted >= 0.5 * real)
    parts = [f"recognised as often as at least half the real crops: {', '.join(table.index[recognised]) or 'none'}",
             f"not yet: {', '.join(table.index[judged & ~recognised]) or 'none'}"]
    if (~judged).any():
        parts.append(f"not judged (the classifier misses the real crops too): {', '.join(table.index[~judged])}")
    return "Painted classes " + "; ".join(parts) + "."


def _verdict_row(v: ArtifactVerdict, kind: str) -> dict:
    return {"class": v.name, "images": kind, "Nyquist share": v.share, "real defects' share": v.reference,
            "ratio": v.ratio, f"within {v.factor:g}x": v.artifact_free}


def artifact_summary(table: pd.DataFrame) -> str:
    """One sentence on :func:`artifact_check`'s table: are the generated samples free of the period-2 lattice?"""
    generated = table[table["images"] == "generated"]
    column = next(c for c in table.columns if c.startswith("within "))
    ok = generated[column].astype(bool)
    bar = column.removeprefix("within ")
    worst = generated["ratio"].max()
    if ok.all():
        return (f"Artifact-free by the Nyquist measure: every class is within {bar} of the real defects' share "
                f"(at most {worst:.1f}x).")
    return (f"Not artifact-free by the Nyquist measure: {', '.join(generated.index[~ok])} "
            f"{'is' if (~ok).sum() == 1 else 'are'} above {bar} the real defects' share (up to {worst:.1f}x).")


CHANGED = 0.1  # a pixel counts as changed when one of its channels moved by more than this (in [0, 1])


def changed_share(before: torch.Tensor, after: torch.Tensor, threshold: float = CHANGED) -> float:
    """The share of pixels a generator changed: ``before`` and ``after`` are (N, C, H, W) in [0, 1]; a
    pixel counts when its largest channel change exceeds ``threshold``."""
    return float(((after - before).abs().amax(dim=1) > threshold).float().mean())


def change_summary(shares: dict[str, float], iterations: int) -> str:
    """What each generator did to its inputs, in words, from :func:`changed_share` per method: under 1 %
    of the pixels is "almost nothing", over half "most of the image"."""
    parts = []
    for name, share in shares.items():
        what = ("almost nothing" if share < 0.01 else "most of the image" if share > 0.5 else "a part of the image")
        parts.append(f"{name} changed {100 * share:.1f} % of the pixels ({what})")
    return (f"After {iterations:,} iterations, by more than {CHANGED} in [0, 1] units: " + "; ".join(parts) + ".")

