"""The bridge experiment neither paper ran: DADNet's two-stage detector (§2.2-2.3) trained on
pseudo-anomalies from three sources, same budget and seed, tested on the same real defects.

- ``DGM``: noise / foreign texture in a random mask M_g (DADNet's ablation baseline, Fig. 7b).
- ``SDGM``: diffusion inpainting inside M_g (DADNet eq. 1-6).
- ``Defect-GAN in M_g``: Defect-GAN (Zhang et al. 2021) defaces the normal image with the control
  map ``A = c x M_g`` (its spatial & categorical control), and the result enters through the same
  random mask, ``A = compose(I, d, M_g)`` - DADNet's eq. (6) with the GAN in place of the diffusion model.
- ``Defect-GAN own maps``: Defect-GAN defaces the whole image (``A = c`` everywhere) and its own learned
  map m_d (eq. 1-2), binarised at 0.5, is the label: ``A = compose(I, d, [m_d > 0.5])``.

Both Defect-GAN sources are written in the format of :func:`paper_repro.dadnet.pseudo.sdgm_bank`
(``D`` images, ``M`` masks, ``prompt`` = defect class, ``index`` = normal image) and handed to DADNet's
own trainer as a :class:`paper_repro.dadnet.pseudo.PseudoAnomalies` over that bank, which composes
them (eq. 6) exactly as it composes SDGM's. The generator works at its own resolution; its output d
and map m_d are resized to DADNet's. Every detector trains on the ``dadnet_tables`` profile.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from paper_repro.context import RunContext
from paper_repro.dadnet.evaluate import evaluate
from paper_repro.dadnet.masks import random_mask, resize_mask, sample_rng
from paper_repro.dadnet.pseudo import PseudoAnomalies, load_normals
from paper_repro.dadnet.trainer import pseudo_anomalies, train, trained_run
from paper_repro.data.roots import DataSource
from paper_repro.defect_gan.control import synthesize
from paper_repro.defect_gan.trainer import config_from_run, load_generator
from paper_repro.evaluation.scoring import score_predictions
from paper_repro.experiments.detectors import dadnet_config
from paper_repro.runs.cached import cached_tensors, ensure_current
from paper_repro.runs.checkpoints import latest_checkpoint
from paper_repro.runs.folders import cached_run_dir, run_lock
from paper_repro.runs.loop import is_finished
from paper_repro.runs.progress import tqdm

SOURCES = ("DGM", "SDGM", "Defect-GAN in M_g", "Defect-GAN own maps")
PLACEMENTS = {"Defect-GAN in M_g": "mask", "Defect-GAN own maps": "own"}


def default_category(data: DataSource) -> str:
    """``tile``, on the bundled set and on real MVTec AD alike: the category of Table 4's ablation, so the
    DGM and SDGM detectors here are that table's own runs (same profile and seeds: shared, not
    retrained), and only the two Defect-GAN sources train detectors of their own. ``data`` is kept
    for callers that pick by data set."""
    return "tile"


@torch.no_grad()
def defect_gan_bank(G, normals: torch.Tensor, placement: str = "mask", variants: int = 1, seed: int = 42,
                    gan_size: int | None = None, batch_size: int = 16,
                    progress: bool = True) -> dict[str, torch.Tensor]:
    """Defect-GAN pseudo-anomalies for every normal image (``(N, 3, S, S)`` in [0, 1]), ``variants`` times.

    ``placement="mask"``: control ``c x M_g`` and label M_g; ``"own"``: control ``c`` everywhere and
    label ``m_d > 0.5``. ``c`` is one defect class per sample, drawn uniformly. Returns the
    :func:`paper_repro.dadnet.pseudo.sdgm_bank` format: ``D`` (uint8), ``M`` (uint8), ``prompt``
    (the class index), ``index``."""
    if placement not in ("mask", "own"):
        raise ValueError(f"unknown placement {placement!r}: expected 'mask' or 'own'")
    device = next(G.parameters()).device
    size = normals.shape[-1]
    gan_size = gan_size or size
    jobs = [(v, i) for v in range(variants) for i in range(len(normals))]
    out: dict[str, list[torch.Tensor]] = {"D": [], "M": [], "prompt": [], "index": []}
    for start in tqdm(range(0, len(jobs), batch_size), desc=f"Defect-GAN ({placement})", disable=not progress):
        batch = jobs[start:start + batch_size]
        rngs = [sample_rng(seed, 7, v, i) for v, i in batch]
        classes = torch.tensor([int(rng.integers(G.num_classes)) for rng in rngs])
        onehot = F.one_hot(classes, G.num_classes).float()
        small = F.interpolate(normals[[i for _, i in batch]], size=gan_size, mode="bilinear",
                              antialias=True, align_corners=False) * 2 - 1     # the GAN's [-1, 1]
        if placement == "mask":
            masks = torch.stack([random_mask(size, rng) for rng in rngs])       # M_g at DADNet's size
            control = onehot[:, :, None, None] * resize_mask(masks, gan_size)
            d = synthesize(G, small.to(device), control.to(device)).image
        else:
            out_g = synthesize(G, small.to(device), onehot.to(device))
            d = out_g.image
            m = F.interpolate(out_g.mask.float().cpu(), size=size, mode="bilinear", align_corners=False)
            masks = (m > 0.5).float()                                           # m_d as the label
        d = F.interpolate(d.float().cpu(), size=size, mode="bilinear", align_corners=False)
        out["D"].append((((d + 1) / 2).clamp(0, 1) * 255).round().to(torch.uint8))
        out["M"].append(masks.to(torch.uint8))
        out["prompt"].append(classes)
        out["index"].append(torch.tensor([i for _, i in batch]))
    return {k: torch.cat(v) for k, v in out.items()}


def cached_bank(generator_run: Path, normals: torch.Tensor, placement: str, seed: int, device: str = "cpu",
                progress: bool = True, variants: int = 1) -> dict[str, torch.Tensor]:
    """:func:`defect_gan_bank` of the generator of ``generator_run`` (its latest checkpoint), cached."""
    last = latest_checkpoint(generator_run)
    key = dict(generator=Path(generator_run).name, checkpoint=last.name if last else None, placement=placement,
               seed=seed, n=len(normals), size=normals.shape[-1], normals=float(normals.double().sum()),
               variants=variants)

    def compute() -> dict[str, torch.Tensor]:
        G, _ = load_generator(generator_run, device)
        cfg, _ = config_from_run(generator_run)
        return defect_gan_bank(G, normals, placement, variants=variants, seed=seed, gan_size=cfg.image_size,
                               progress=progress)

    return cached_tensors("bridge", key, compute, modules=[__name__])   # the bank's code and the generator's


def bank_anomalies(generator_run: Path, normals: torch.Tensor, placement: str, seed: int, device: str = "cpu",
                   progress: bool = True, p_anomaly: float = 0.5, variants: int = 1) -> PseudoAnomalies:
    """DADNet's training inputs over the Defect-GAN bank of one placement (``mask`` or ``own``),
    ``variants`` images per normal image, like SDGM's bank."""
    bank = cached_bank(generator_run, normals, placement, seed, device, progress, variants)
    return PseudoAnomalies(normals, seed=seed, bank=bank, p_anomaly=p_anomaly,
                           source=f"defect-gan:{placement}:{Path(generator_run).name}")


def train_on_defect_gan(ctx: RunContext | str, category: str, placement: str, generator_run: Path, data: DataSource,
                        device: str = "cpu", seed: int = 42, progress: bool = True) -> Path:
    """DADNet (DRAM on) trained on Defect-GAN pseudo-anomalies; a cached run like
    :func:`paper_repro.dadnet.trainer.trained_run`'s, keyed also by the generator run."""
    cfg = dadnet_config(ctx, seed)
    run_dir = cached_run_dir("dadnet-bridge", cfg, category=category, placement=placement,
                             generator=Path(generator_run).name, data=data.key)
    with run_lock(run_dir, wait=True):  # two chapters asking for it train it once
        ensure_current(run_dir, [__name__], what="dadnet-bridge")  # its code and the generator's
        if not is_finished(run_dir, cfg.epochs):
            normals = load_normals(data.root, category, cfg.image_size, cfg.train_limit)
            dataset = bank_anomalies(generator_run, normals, placement, seed, device, progress,
                                     variants=cfg.sdgm_variants)
            train(cfg, run_dir, dataset, dram=True, device=device, resume=True, progress=progress,
                  run_info={"category": category, "data": data.key, "data_root": str(data.root)})
    return run_dir


def source_run(source: str, ctx: RunContext | str, category: str, data: DataSource, device: str = "cpu", seed: int = 42,
               generator: Path | None = None, progress: bool = True) -> Path:
    """The trained detector of one pseudo-anomaly ``source`` (one of :data:`SOURCES`)."""
    if source in ("DGM", "SDGM"):
        return trained_run(dadnet_config(ctx, seed), data, category, pseudo=source.lower(), dram=True,
                           device=device, progress=progress)
    if generator is None:
        raise ValueError(f"source {source!r} needs the Defect-GAN run (generator=...)")
    return train_on_defect_gan(ctx, category, PLACEMENTS[source], generator, data, device, seed, progress)


def training_samples(source: str, ctx: RunContext | str, category: str, data: DataSource, seed: int = 42,
                     generator: Path | None = None, n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` pseudo-anomalies ``(A, label)`` of ``source`` as the detector sees them in training."""
    cfg = dadnet_config(ctx, seed)
    if source in ("DGM", "SDGM"):
        dataset = pseudo_anomalies(cfg, data.root, category, source.lower(), progress=False)
    else:
        normals = load_normals(data.root, category, cfg.image_size, cfg.train_limit)
        dataset = bank_anomalies(generator, normals, PLACEMENTS[source], seed, progress=False,
                                 variants=cfg.sdgm_variants)
    dataset.p_anomaly = 1.0
    return [(dataset[i]["anomalous"], dataset[i]["mask"]) for i in range(min(n, len(dataset)))]


def compare_sources(ctx: RunContext | str, category: str, data: DataSource, runs: int = 1, device: str = "cpu",
                    seed: int = 42, generator: Path | None = None,
                    progress: bool = True) -> tuple[pd.DataFrame, dict[str, dict[str, torch.Tensor]]]:
    """Train (or reuse) the detector of every source, run ``r`` with seed ``seed + r``, and score it on
    the category's test split with the one scoring path (DADNet's 0.5 cut of M_p). Returns one row per
    (source, run) and the first run's predictions per source."""
    rows, predictions = [], {}
    # the detectors only this experiment trains first: the DGM and SDGM ones are Table 4's, which a
    # chapter running beside this one may still be training (their locks are then met last, if at all)
    for run in range(runs):
        for source in SOURCES:
            if source not in ("DGM", "SDGM"):
                source_run(source, ctx, category, data, device, seed + run, generator, progress)
    for run in range(runs):
        for source in SOURCES:
            run_dir = source_run(source, ctx, category, data, device, seed + run, generator, progress)
            _, pred = evaluate(run_dir, None, category, device=device, progress=False)
            rows.append({"source": source, "run": run, **score_predictions(pred, 0.5)})
            if run == 0:
                predictions[source] = pred
    return pd.DataFrame(rows), predictions


__all__ = ["SOURCES", "PLACEMENTS", "default_category", "defect_gan_bank", "cached_bank", "bank_anomalies",
           "train_on_defect_gan", "source_run", "training_samples", "compare_sources"]
