"""Training Defect-GAN (§3.1 objectives, §4.1 schedule) with the shared loop :func:`paper_repro.runs.loop.fit`.

One *iteration* is one critic update on one batch (B normal + B defect images); every
``n_critic``-th iteration the generator is updated too (StarGAN's convention; §4.1: "one generator
update per five discriminator updates"). Both cycles run in every update (see :mod:`.losses`).
The learning rate decays linearly from ``lr`` to ``lr_end`` over the run (:func:`learning_rate`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch

from paper_repro.config import get_config
from paper_repro.data.roots import DataSource
from paper_repro.defect_gan.data import TrainingData, load_training_data
from paper_repro.defect_gan.discriminator import Discriminator
from paper_repro.defect_gan.generator import Generator
from paper_repro.defect_gan.losses import discriminator_loss, generator_loss
from paper_repro.errors import UserError
from paper_repro.runs.cached import ensure_current
from paper_repro.runs.checkpoints import latest_checkpoint, load_weights
from paper_repro.runs.devices import Distributed, resolve_device, seed_everything
from paper_repro.runs.folders import cached_run_dir, config_from_run as read_config, run_lock
from paper_repro.runs.loop import TrainState, adam, fit, is_finished
from paper_repro.runs.precision import autocast, grad_scaler, optimizer_step, resolve_precision

ABLATION_FLAGS = ("scc", "ani", "lwc", "sc")


def make_config(scale: str, **overrides):
    """``get_config("defect_gan", scale)`` with ``overrides`` applied on top of the scale profile."""
    return get_config("defect_gan", scale, **overrides)


def learning_rate(step: int, cfg) -> float:
    """§4.1: "the learning rate starts at 2e-4 and is gradually decreased to 1e-6" - linearly here:
    lr(t) = lr + (lr_end - lr) * t / T for iteration t of T."""
    t = min(max(step, 0), cfg.iterations) / max(cfg.iterations, 1)
    return cfg.lr + (cfg.lr_end - cfg.lr) * t


def check_ablation(cfg) -> None:
    if cfg.sc and not cfg.lwc:
        raise UserError("ablation: SC (spatial constraints on the maps m) needs LWC, which makes the "
                        "maps; switch sc off too, as in Table 2")


def build_networks(cfg, num_classes: int) -> tuple[Generator, Discriminator]:
    check_ablation(cfg)
    G = Generator(num_classes, cfg.conv_dim, cfg.n_res_blocks, cfg.spade_hidden,
                  scc=cfg.scc, ani=cfg.ani, lwc=cfg.lwc, mask_init=cfg.mask_init, upsample=cfg.upsample)
    D = Discriminator(num_classes, cfg.image_size, cfg.d_conv_dim, cfg.d_repeat)
    return G, D


@torch.no_grad()
def sample_grid(G, normals: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Figs. 8-9: rows of normal n, defaced d = G(n, c), restored n̂ = G(d, 0).

    The injected noise is drawn from its own fixed seed, so grids of different steps are comparable
    and drawing them leaves the training's random stream (and thus exact resume) untouched."""
    with torch.random.fork_rng(devices=[normals.device] if normals.device.type == "cuda" else []):
        torch.manual_seed(seed)
        d = G(normals, labels).image
        n_hat = G(d, torch.zeros_like(labels)).image
    return torch.cat([normals, d, n_hat])


def generator_turn(step: int, n_critic: int) -> bool:
    """Whether iteration ``step`` (0-based) also updates the generator: every ``n_critic``-th one (§4.1)."""
    return (step + 1) % n_critic == 0


def update_critic(G, D, optimizer, n, d, c, target, cfg, precision, scaler=None) -> dict[str, float]:
    """One critic update: eq. (11) with WGAN-GP (§4.1), on normals ``n``, real defects ``d`` with labels
    ``c`` and target labels ``target`` for the defacement; returns the logged terms. ``scaler``: the
    float16 loss scaler of :func:`~paper_repro.runs.precision.grad_scaler` (None: a disabled one)."""
    with autocast(precision):
        loss, logs = discriminator_loss(G, D, n, d, c, target, cfg)
    optimizer_step(loss, optimizer, scaler if scaler is not None else grad_scaler(precision))
    return logs


def update_generator(G, D, optimizer, n, d, c, target, cfg, precision, scaler=None) -> dict[str, float]:
    """One generator update: eq. (12), both cycles; returns the logged terms (``scaler`` as above)."""
    with autocast(precision):
        loss, logs = generator_loss(G, D, n, d, c, target, cfg)
    optimizer_step(loss, optimizer, scaler if scaler is not None else grad_scaler(precision))
    return logs


def train_step(step: int, n, d, c, G, D, opt_g, opt_d, cfg, precision, scaler_g=None, scaler_d=None) -> dict[str, float]:
    """Iteration ``step``: the learning rate of the schedule, random target labels for the defacement (a
    permutation of the batch's real label vectors), a critic update, and on the generator's turn
    (:func:`generator_turn`) a generator update. Returns the logged values."""
    target = c[torch.randperm(len(c), device="cpu").to(c.device)]  # target defect labels for n -> d
    lr = learning_rate(step, cfg)
    for group in opt_d.param_groups + opt_g.param_groups:
        group["lr"] = lr
    logs = update_critic(G, D, opt_d, n, d, c, target, cfg, precision, scaler_d)
    if generator_turn(step, cfg.n_critic):
        logs.update(update_generator(G, D, opt_g, n, d, c, target, cfg, precision, scaler_g))
    return {"lr": lr, **logs}


def train(cfg, run_dir: str | Path, data: TrainingData, *, seed: int = 42, device: str = "cpu",
          resume: bool = False, progress: bool = True, stop_at: int | None = None,
          run_info: dict | None = None, wait: bool = False) -> Path:
    """Train (or, with ``resume``, continue) the run in ``run_dir`` up to ``cfg.iterations`` (or
    ``stop_at``, to simulate an interruption); returns ``run_dir``. Works unchanged under ``torchrun``.
    ``cfg.precision`` picks mixed precision (:mod:`paper_repro.runs.precision`)."""
    run_dir = Path(run_dir)
    dist = Distributed.from_env(device)
    device = dist.device(resolve_device(device))
    precision = resolve_precision(cfg.precision, device)
    seed_everything(seed + dist.rank)
    G, D = build_networks(cfg, data.num_classes)
    G, D = G.to(device), D.to(device)
    opt_g = adam(G.parameters(), cfg.lr, device, betas=cfg.betas, fused=False)
    opt_d = adam(D.parameters(), cfg.lr, device, betas=cfg.betas, fused=False)
    scaler_g, scaler_d = grad_scaler(precision), grad_scaler(precision)
    state = TrainState({"G": G, "D": D}, {"G": opt_g, "D": opt_d}, scalers={"G": scaler_g, "D": scaler_d})
    G_train, D_train = dist.wrap(G), dist.wrap(D)   # no BatchNorm in either (InstanceNorm, SPADE)
    per_rank = dist.per_rank_batch(cfg.batch_size)  # K processes share the paper's batch of 4
    fixed = data.fixed_normals(8).to(device)
    fixed_labels = data.labels[torch.arange(len(fixed)) % len(data.labels)].to(device)

    def iteration(step: int) -> dict[str, float]:
        batch = data.batch(step, per_rank, dist.rank, dist.world_size)
        return train_step(step, batch.normal.to(device), batch.defect.to(device), batch.labels.to(device),
                          G_train, D_train, opt_g, opt_d, cfg, precision, scaler_g, scaler_d)

    def sample() -> torch.Tensor:  # rows: normal, defaced, restored (Figs. 8-9), in [0, 1]
        return (sample_grid(G, fixed, fixed_labels) + 1) / 2

    info = {"paper": "defect_gan", "classes": list(data.classes), "seed": seed, "precision": precision.name,
            "normals": data.normals_source, **(run_info or {})}
    return fit(run_dir, state, iteration, total=cfg.iterations, config=cfg, run_info=info, seed=seed, dist=dist,
               resume=resume, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
               keep_last=cfg.keep_last, milestone_every=cfg.milestone_every, extra={"classes": list(data.classes)},
               sample=sample, sample_every=cfg.sample_every, sample_nrow=len(fixed), progress=progress,
               desc="Defect-GAN", postfix={"D": "D/total", "G": "G/total"}, stop_at=stop_at, wait=wait)


def config_from_run(run_dir: str | Path):
    """The DefectGANConfig a run was trained with, and its ``run.json`` (a pair)."""
    cfg, saved = read_config(run_dir, "defect_gan")
    if "mask_init" not in saved["config"]:  # runs from before the field existed: a bias-free map head
        cfg = dataclasses.replace(cfg, mask_init=None)
    if "upsample" not in saved["config"]:  # runs from before the field existed: StarGAN's transposed convs
        cfg = dataclasses.replace(cfg, upsample="transposed")
    return cfg, saved


def load_generator(run_dir: str | Path, device: str = "cpu",
                   checkpoint: str | Path | None = None) -> tuple[Generator, list[str]]:
    """The trained generator of a run (weights of its latest checkpoint, or of ``checkpoint``) and its
    class names."""
    cfg, saved = config_from_run(run_dir)
    last = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if last is None:
        raise UserError(f"{run_dir}: no checkpoint_<step>.safetensors in this run folder")
    classes = list(saved.get("classes") or [])
    G, _ = build_networks(cfg, len(classes))
    load_weights(last, {"G": G})
    return G.to(resolve_device(device)).eval(), classes


def trained_run(cfg, source: DataSource, *, seed: int = 42, device: str = "cpu", progress: bool = True,
                name: str = "defect_gan", relabel: Callable[[TrainingData], TrainingData] | None = None) -> Path:
    """The cached run of ``cfg`` on the CODEBRIM-layout ``source``, trained (or finished) on first use.

    Every chapter that asks for the same configuration, data and seed gets the same folder.
    ``relabel`` changes the training data's labels first (a variant trained under its own ``name``).
    """
    run_dir = cached_run_dir(name, cfg, data=source.key, seed=seed)
    with run_lock(run_dir, wait=True):  # another chapter (or GPU) may be training this very run
        code = [__name__] + ([relabel.__module__] if relabel is not None and relabel.__module__.startswith("paper_repro")
                             else [])
        ensure_current(run_dir, code, what=name)  # a run of other code is retrained, saying which file changed
        if not is_finished(run_dir, cfg.iterations):
            data = load_training_data(cfg, source, seed=seed)
            data = relabel(data) if relabel is not None else data
            train(cfg, run_dir, data, seed=seed, device=device, resume=True, progress=progress,
                  run_info={"data": source.key})
    return run_dir


__all__ = ["ABLATION_FLAGS", "make_config", "learning_rate", "build_networks", "generator_turn", "update_critic",
           "update_generator", "train_step", "sample_grid", "train",
           "config_from_run", "load_generator", "trained_run"]
