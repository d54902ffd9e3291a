"""Training Defect-GAN (§3.1 objectives, §4.1 schedule) on the shared machinery of
:mod:`paper_repro.training` (checkpoints, exact resume, DDP, AMP, CSV log, cached runs).

One *iteration* is one critic update on one batch (B normal + B defect images); every
``n_critic``-th iteration the generator is updated too (StarGAN's convention; §4.1: "one generator
update per five discriminator updates"). Both cycles run in every update (see :mod:`.losses`).
The learning rate decays linearly from ``lr`` to ``lr_end`` over the run (:func:`learning_rate`).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from paper_repro import training as T
from paper_repro.config import get_config
from paper_repro.defect_gan.data import TrainingData
from paper_repro.defect_gan.discriminator import Discriminator
from paper_repro.defect_gan.generator import Generator
from paper_repro.defect_gan.losses import LossWeights, discriminator_loss, generator_loss
from paper_repro.errors import UserError

ABLATION_FLAGS = ("scc", "ani", "lwc", "sc")
CODE_VERSION = 1  # part of the cached-run key: bump when a change makes old trained runs stale


def make_config(scale: str, **overrides):
    """``get_config("defect_gan", scale)`` with ``overrides`` applied on top of the scale profile."""
    return dataclasses.replace(get_config("defect_gan", scale), **overrides)


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
                  scc=cfg.scc, ani=cfg.ani, lwc=cfg.lwc, mask_init=cfg.mask_init)
    D = Discriminator(num_classes, cfg.image_size, cfg.d_conv_dim, cfg.d_repeat)
    return G, D


def _optimizer(module, cfg):
    return torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))


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


def train(cfg, run_dir: str | Path, data: TrainingData, device: str = "cpu", seed: int = 42,
          resume: bool = True, amp: bool = True, progress: bool = True,
          stop_at: int | None = None) -> Path:
    """Train (or resume) the run in ``run_dir`` up to ``cfg.iterations`` (or ``stop_at``, to
    simulate an interruption); returns ``run_dir``. Works unchanged under ``torchrun``."""
    run_dir = Path(run_dir)
    dist = T.Distributed.from_env(device)
    device = dist.device(T.resolve_device(device))
    T.seed_everything(seed + dist.rank)
    G, D = build_networks(cfg, data.num_classes)
    G, D = G.to(device), D.to(device)
    opt_g, opt_d = _optimizer(G, cfg), _optimizer(D, cfg)
    scaler_g, scaler_d = T.grad_scaler(device, amp), T.grad_scaler(device, amp)
    state = dict(modules={"G": G, "D": D}, optimizers={"G": opt_g, "D": opt_d},
                 scalers={"G": scaler_g, "D": scaler_d})
    step, last = 0, T.latest_checkpoint(run_dir) if resume else None
    if last is not None:
        step = T.load_checkpoint(last, **state)["step"]
        if dist.enabled:  # each process continues its own noise stream
            torch.manual_seed(seed + dist.rank + 7919 * step)
    if dist.is_main:
        T.write_run_config(run_dir, cfg, classes=list(data.classes), seed=seed)
        log = T.CSVLog(run_dir / "log.csv", resume_step=step if last is not None else None)
    G_train, D_train = dist.wrap(G), dist.wrap(D)
    weights = LossWeights.from_config(cfg)
    fixed = data.fixed_normals(8).to(device)
    fixed_labels = data.labels[torch.arange(len(fixed)) % len(data.labels)].to(device)
    end = min(cfg.iterations, stop_at if stop_at is not None else cfg.iterations)
    bar = tqdm(range(step, end), initial=step, total=end, desc="Defect-GAN",
               disable=not (progress and dist.is_main), mininterval=2)
    g_logs: dict[str, float] = {}
    tic = time.perf_counter()
    for step in bar:
        batch = data.batch(step, cfg.batch_size, dist.rank, dist.world_size)
        n, d, c = batch.normal.to(device), batch.defect.to(device), batch.labels.to(device)
        target = c[torch.randperm(len(c), device="cpu").to(device)]  # target defect labels for n -> d
        lr = learning_rate(step, cfg)
        for group in opt_d.param_groups + opt_g.param_groups:
            group["lr"] = lr
        # Critic update (eq. 11 with WGAN-GP).
        opt_d.zero_grad(set_to_none=True)
        with T.autocast(device, amp):
            loss_d, d_logs = discriminator_loss(G_train, D_train, n, d, c, target, weights)
        scaler_d.scale(loss_d).backward()
        scaler_d.step(opt_d)
        scaler_d.update()
        # Generator update every n_critic iterations (eq. 12).
        if (step + 1) % cfg.n_critic == 0:
            opt_g.zero_grad(set_to_none=True)
            with T.autocast(device, amp):
                loss_g, g_logs = generator_loss(G_train, D_train, n, d, c, target, weights)
            scaler_g.scale(loss_g).backward()
            scaler_g.step(opt_g)
            scaler_g.update()
        done = step + 1
        if dist.is_main and (done % cfg.log_every == 0 or done == end):
            log.log(done, lr=lr, sec=time.perf_counter() - tic, **d_logs, **g_logs)
            bar.set_postfix(D=f"{d_logs['D/total']:.2f}", G=f"{g_logs.get('G/total', float('nan')):.2f}")
        if dist.is_main and (done % cfg.sample_every == 0 or done == end):
            grid = sample_grid(G, fixed, fixed_labels)
            T.save_image_grid(grid, run_dir / "samples" / f"step_{done:08d}.png", nrow=len(fixed))
        if done % cfg.checkpoint_every == 0 or done == end:
            if dist.is_main:
                T.save_checkpoint(T.checkpoint_path(run_dir, done), step=done, **state,
                                  extra={"classes": list(data.classes)})
            dist.barrier()
    bar.close()
    return run_dir


def config_from_run(run_dir: str | Path):
    """The DefectGANConfig a run was trained with, and its ``run.json`` (a pair)."""
    cfg, saved = T.config_from_run(run_dir, "defect_gan")
    if "mask_init" not in saved["config"]:  # runs from before the field existed: a bias-free map head
        cfg = dataclasses.replace(cfg, mask_init=None)
    return cfg, saved


def load_generator(run_dir: str | Path, device: str = "cpu") -> tuple[Generator, list[str]]:
    """The trained generator of a run (weights of its latest checkpoint) and its class names."""
    cfg, saved = config_from_run(run_dir)
    last = T.latest_checkpoint(run_dir)
    if last is None:
        raise UserError(f"{run_dir}: no checkpoint_<step>.safetensors in this run folder")
    classes = list(saved.get("classes") or [])
    G, _ = build_networks(cfg, len(classes))
    T.load_weights(last, {"G": G})
    return G.to(T.resolve_device(device)).eval(), classes


def is_finished(run_dir: str | Path, cfg) -> bool:
    return T.latest_checkpoint(run_dir) == T.checkpoint_path(run_dir, cfg.iterations)


def pretrained_or_train(scale: str, data_root: str | Path | None = None, device: str = "cpu",
                        seed: int = 42, progress: bool = True, **overrides) -> Path:
    """The run folder of the model trained at ``scale`` on ``data_root`` (bundled data if None),
    training it first (or finishing it) if needed. Every chapter calls this, so they share one run."""
    from paper_repro.defect_gan.data import load_training_data

    cfg = make_config(scale, **overrides)
    run_dir = T.cached_run_dir("defect_gan", cfg, data=str(data_root or f"bundled-{scale}"), seed=seed,
                               code=CODE_VERSION)
    if not is_finished(run_dir, cfg):
        data = load_training_data(cfg, data_root, scale=scale, seed=seed)
        train(cfg, run_dir, data, device=device, seed=seed, resume=True, progress=progress)
    return run_dir
