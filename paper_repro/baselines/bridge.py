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
(``D`` images, ``M`` masks, ``prompt`` = defect class, ``index`` = normal image) so DADNet's own
:class:`paper_repro.dadnet.pseudo.PseudoAnomalies` composes them (eq. 6) exactly as it composes SDGM's.
The generator works at its own resolution; its output d and map m_d are resized to DADNet's.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from paper_repro import training as T
from paper_repro.dadnet.masks import random_mask, resize_mask, sample_rng

SOURCES = ("DGM", "SDGM", "Defect-GAN in M_g", "Defect-GAN own maps")
PLACEMENTS = {"Defect-GAN in M_g": "mask", "Defect-GAN own maps": "own"}


def default_category(data_root) -> str:
    """``concrete`` on the bundled set (the surface Defect-GAN learns its defects on, CODEBRIM-like);
    on real MVTec AD, which has no concrete, ``tile``."""
    return "concrete" if data_root is None else "tile"


@torch.no_grad()
def defect_gan_bank(G, normals: torch.Tensor, placement: str = "mask", variants: int = 1, seed: int = 42,
                    gan_size: int | None = None, batch_size: int = 16,
                    progress: bool = True) -> dict[str, torch.Tensor]:
    """Defect-GAN pseudo-anomalies for every normal image (``(N, 3, S, S)`` in [0, 1]), ``variants`` times.

    ``placement="mask"``: control ``c x M_g`` and label M_g; ``"own"``: control ``c`` everywhere and
    label ``m_d > 0.5``. ``c`` is one defect class per sample, drawn uniformly. Returns the
    :func:`paper_repro.dadnet.pseudo.sdgm_bank` format: ``D`` (uint8), ``M`` (uint8), ``prompt``
    (the class index), ``index``."""
    from paper_repro.defect_gan.control import synthesize

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
                progress: bool = True) -> dict[str, torch.Tensor]:
    """:func:`defect_gan_bank` of the generator of ``generator_run`` (its latest checkpoint), cached."""
    from safetensors.torch import load_file, save_file

    from paper_repro.config import cache_dir
    from paper_repro.defect_gan.trainer import config_from_run, load_generator

    last = T.latest_checkpoint(generator_run)
    key = T.config_hash(dict(generator=Path(generator_run).name, checkpoint=last.name if last else None,
                             placement=placement, seed=seed, n=len(normals), size=normals.shape[-1],
                             normals=float(normals.double().sum())))
    path = cache_dir() / "bridge" / f"{placement}-{key}.safetensors"
    if path.is_file():
        return load_file(str(path))
    G, _ = load_generator(generator_run, device)
    cfg, _ = config_from_run(generator_run)
    bank = defect_gan_bank(G, normals, placement, seed=seed, gan_size=cfg.image_size, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in bank.items()}, str(tmp))
    tmp.replace(path)
    return bank


@contextlib.contextmanager
def _dataset_from_bank(bank: dict[str, torch.Tensor]):
    """Adapter (see the module docstring of :mod:`paper_repro.baselines`): DADNet's ``train`` builds
    its data set with ``trainer.make_dataset`` and knows only DGM and SDGM. For the duration of one
    call, ``make_dataset`` returns DADNet's own :class:`PseudoAnomalies` over ``bank`` instead."""
    from paper_repro.dadnet import trainer
    from paper_repro.dadnet.pseudo import PseudoAnomalies, load_normals

    original = trainer.make_dataset

    def from_bank(cfg, root, category, pseudo, sd_model="tiny", device="cpu", progress=True):
        return PseudoAnomalies(load_normals(root, category, cfg.image_size), "sdgm", seed=cfg.seed, bank=bank)

    trainer.make_dataset = from_bank
    try:
        yield
    finally:
        trainer.make_dataset = original


def train_on_defect_gan(scale: str, category: str, placement: str, generator_run: Path,
                        data_root: str | Path | None = None, device: str = "cpu", seed: int = 42,
                        progress: bool = True, **overrides) -> Path:
    """DADNet (DRAM on) trained on Defect-GAN pseudo-anomalies; a cached run like
    :func:`paper_repro.dadnet.trainer.pretrained_or_train`'s, keyed also by the generator run."""
    from paper_repro.config import get_config
    from paper_repro.dadnet import trainer
    from paper_repro.dadnet.pseudo import load_normals

    cfg = get_config("dadnet", scale, **{**overrides, "seed": seed})
    run_dir = T.cached_run_dir("dadnet-bridge", cfg, category=category, placement=placement,
                               generator=Path(generator_run).name, data=str(data_root or f"bundled-{scale}"))
    if trainer.is_finished(run_dir, cfg):
        return run_dir
    normals = load_normals(trainer.data_root_for(data_root, scale), category, cfg.image_size)
    bank = cached_bank(generator_run, normals, placement, seed, device, progress)
    with _dataset_from_bank(bank):
        trainer.train(cfg, run_dir, data_root, category, scale=scale, pseudo="sdgm", dram=True,
                      sd_model=f"defect-gan:{placement}:{Path(generator_run).name}", device=device,
                      resume=True, progress=progress)
    return run_dir


def generator_run(scale: str, codebrim_root: str | Path | None = None, device: str = "cpu", seed: int = 42,
                  progress: bool = True) -> Path:
    """The Defect-GAN run the Defect-GAN chapters share (trained on first use)."""
    from paper_repro.defect_gan.trainer import pretrained_or_train

    return pretrained_or_train(scale, codebrim_root, device=device, seed=seed, progress=progress)


def source_run(source: str, scale: str, category: str, data_root=None, device: str = "cpu", seed: int = 42,
               generator: Path | None = None, progress: bool = True, **overrides) -> Path:
    """The trained detector of one pseudo-anomaly ``source`` (one of :data:`SOURCES`)."""
    from paper_repro.dadnet.trainer import pretrained_or_train

    if source in ("DGM", "SDGM"):
        return pretrained_or_train(scale, category, pseudo=source.lower(), dram=True, data_root=data_root,
                                   device=device, progress=progress, **{**overrides, "seed": seed})
    if generator is None:
        raise ValueError(f"source {source!r} needs the Defect-GAN run (generator=...)")
    return train_on_defect_gan(scale, category, PLACEMENTS[source], generator, data_root, device, seed,
                               progress, **overrides)


def training_samples(source: str, scale: str, category: str, data_root=None, seed: int = 42,
                     generator: Path | None = None, n: int = 4, **overrides) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` pseudo-anomalies ``(A, label)`` of ``source`` as the detector sees them in training."""
    from paper_repro.config import get_config
    from paper_repro.dadnet import trainer
    from paper_repro.dadnet.pseudo import PseudoAnomalies, load_normals

    cfg = get_config("dadnet", scale, **{**overrides, "seed": seed})
    root = trainer.data_root_for(data_root, scale)
    if source == "DGM":
        data = PseudoAnomalies(load_normals(root, category, cfg.image_size), "dgm", seed=seed, p_anomaly=1.0)
    elif source == "SDGM":
        data = trainer.make_dataset(cfg, root, category, "sdgm", progress=False)
        data.p_anomaly = 1.0
    else:
        normals = load_normals(root, category, cfg.image_size)
        bank = cached_bank(generator, normals, PLACEMENTS[source], seed, progress=False)
        data = PseudoAnomalies(normals, "sdgm", seed=seed, bank=bank, p_anomaly=1.0)
    return [(data[i]["anomalous"], data[i]["mask"]) for i in range(min(n, len(data)))]


def compare_sources(scale: str, category: str, runs: int = 1, data_root=None, device: str = "cpu",
                    seed: int = 42, generator: Path | None = None, progress: bool = True,
                    **overrides) -> tuple["pd.DataFrame", dict[str, dict[str, torch.Tensor]]]:
    """Train (or reuse) the detector of every source, run ``r`` with seed ``seed + r``, and score it on
    the category's test split with the one scoring path (DADNet's 0.5 cut of M_p). Returns one row per
    (source, run) and the first run's predictions per source."""
    import pandas as pd

    from paper_repro.baselines.scoring import score_predictions
    from paper_repro.dadnet.evaluate import evaluate

    rows, predictions = [], {}
    for run in range(runs):
        for source in SOURCES:
            run_dir = source_run(source, scale, category, data_root, device, seed + run, generator,
                                 progress, **overrides)
            _, pred = evaluate(run_dir, data_root, category, device=device, progress=False)
            rows.append({"source": source, "run": run, **score_predictions(pred, 0.5)})
            if run == 0:
                predictions[source] = pred
    return pd.DataFrame(rows), predictions
