"""What the Defect-GAN chapters look at: the shared trained run, normal images seen and unseen in
training, defective test images, and red boxes for spatial control (Fig. 6). Chapters call these
instead of re-writing them."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from matplotlib.patches import Rectangle

from paper_repro.config import DefectGANConfig, get_config
from paper_repro.data.codebrim import CODEBRIM
from paper_repro.data.pool import NormalPool
from paper_repro.defect_gan.generator import Generator
from paper_repro.defect_gan.trainer import config_from_run, load_generator, trained_run


def chapter_run(ctx, progress: bool = True) -> Path:
    """The one trained run every Defect-GAN chapter at ``ctx.scale`` shares (trained on first use)."""
    return trained_run(get_config("defect_gan", ctx.scale), ctx.data("codebrim"), seed=ctx.seed,
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
