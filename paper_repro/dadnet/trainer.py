"""Training DADNet (§3.2) on the shared machinery of :mod:`paper_repro.training`.

Both networks train together on the same batches, with independent gradients: the reconstructive
network minimises L_rec (eq. 10) of ``R = recon(A)`` against the normal image I; the discriminative
network minimises the focal loss (eq. 12) of its mask prediction on ``concat(A, R)`` against M_g,
with R detached (or, with ``eval_mode_reconstruction``, R as the reconstructive network computes it at
inference). Each has its own Adam (lr 1e-4), decayed x0.1 at epochs 400 and 600 of 700.

A run folder holds ``run.json``, ``log.csv`` (one row per epoch) and
``checkpoint_<epoch>.safetensors``; training resumes from the last checkpoint exactly (the
pseudo-anomalies of epoch e are drawn from generators keyed by the seed and e).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from paper_repro import training as T
from paper_repro.config import get_config
from paper_repro.dadnet.losses import focal_loss, reconstruction_loss
from paper_repro.dadnet.networks import DADNet
from paper_repro.dadnet.pseudo import PseudoAnomalies, load_normals, sdgm_bank
from paper_repro.errors import UserError


def build_model(cfg, dram: bool = True) -> DADNet:
    return DADNet(cfg.recon_width, cfg.disc_width, dram=dram, gamma=cfg.dram_gamma)


def reconstruction_at_inference(recon: torch.nn.Module, anomalous: torch.Tensor) -> torch.Tensor:
    """R as evaluation computes it (batch-norm running statistics, no gradient); ``recon`` keeps its
    mode and its running statistics are not updated."""
    was_training = recon.training
    recon.eval()
    try:
        with torch.no_grad():
            return recon(anomalous)
    finally:
        recon.train(was_training)


def train_step(cfg, recon, disc, opts, scalers, image, anomalous, mask, amp: bool = False):
    """One optimisation step of both networks, independent gradients (§3.2); returns (L_rec, L_Focal).

    ``opts`` and ``scalers`` are keyed ``reconstructive`` and ``discriminative``.
    """
    with T.autocast(image.device, amp):
        reconstruction = recon(anomalous)
        loss_rec = reconstruction_loss(image, reconstruction.float(), cfg.lambda_ssim)   # eq. (10)
        if cfg.eval_mode_reconstruction:  # the R evaluation will give the discriminative net
            seen = reconstruction_at_inference(T.unwrap(recon), anomalous)
        else:                             # DRAEM's: the training-mode R, detached
            seen = reconstruction.detach()
        logits = disc(torch.cat([anomalous, seen], dim=1))
        loss_focal = focal_loss(logits.float(), mask, cfg.focal_beta, cfg.focal_delta)  # eq. (12)
    for name, loss in (("reconstructive", loss_rec), ("discriminative", loss_focal)):
        opts[name].zero_grad(set_to_none=True)
        scalers[name].scale(loss).backward()
        scalers[name].step(opts[name])
        scalers[name].update()
    return loss_rec, loss_focal


def data_root_for(data_root: str | Path | None, scale: str) -> Path:
    """The MVTec-layout set under ``data_root`` (the set itself, or a folder holding it beside
    CODEBRIM), or the bundled synthetic MVTec-layout set at ``scale``."""
    from paper_repro.data import bundled_root, find_dataset_root

    if data_root:
        return find_dataset_root(data_root, "mvtec")
    return bundled_root("mvtec", scale)


def make_dataset(cfg, root: Path, category: str, pseudo: str, sd_model: str = "tiny",
                 device: str | torch.device = "cpu", progress: bool = True) -> PseudoAnomalies:
    normals = load_normals(root, category, cfg.image_size)
    bank = None
    if pseudo == "sdgm":
        variants = max(1, -(-cfg.n_pseudo // len(normals))) if cfg.n_pseudo else 1
        bank = sdgm_bank(normals, category, model=sd_model, variants=variants,
                         n_prompts=cfg.prompts_per_category, steps=cfg.sd_steps,
                         strength=cfg.sd_strength, seed=cfg.seed, device=device, progress=progress)
    return PseudoAnomalies(normals, pseudo, seed=cfg.seed, bank=bank)


def train(cfg, run_dir: str | Path, data_root: str | Path | None, category: str, *,
          scale: str = "full", pseudo: str = "dgm", dram: bool = True, sd_model: str = "tiny",
          device: str = "cpu", resume: bool = False, amp: bool = True, progress: bool = True,
          stop_at: int | None = None) -> Path:
    """Train (or, with ``resume``, continue) the run in ``run_dir`` up to ``cfg.epochs`` epochs
    (``stop_at`` ends earlier, to simulate an interruption). Works unchanged under ``torchrun``."""
    run_dir = Path(run_dir)
    last = T.latest_checkpoint(run_dir)
    if last is not None and not resume:
        raise UserError(f"{run_dir}: already holds a training run ({last.name}); pass --resume to "
                        "continue it or choose another --out folder")
    dist = T.Distributed.from_env(device)
    device = dist.device(T.resolve_device(device))
    T.seed_everything(cfg.seed + dist.rank)
    root = data_root_for(data_root, scale)
    dataset = make_dataset(cfg, root, category, pseudo, sd_model, device, progress and dist.is_main)
    # one sampler for one or many processes: each rank reads its share, reshuffled per epoch
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    per_rank = max(1, cfg.batch_size // dist.world_size)
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=len(dataset) > per_rank)

    # channels-last weights and fused Adam: measured 0.35 -> 0.21 s a demo step on the CPU, same maths
    model = T.fast_layout(build_model(cfg, dram).to(device))
    opts = {name: T.adam(getattr(model, name).parameters(), cfg.lr, device)
            for name in ("reconstructive", "discriminative")}
    scheds = {name: torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.lr_milestones), cfg.lr_gamma)
              for name, opt in opts.items()}
    scalers = {name: T.grad_scaler(device, amp) for name in opts}
    state = dict(modules={"reconstructive": model.reconstructive, "discriminative": model.discriminative},
                 optimizers=opts, schedulers=scheds, scalers=scalers)
    epoch = 0
    if last is not None:
        epoch = T.load_checkpoint(last, **state)["step"]
    if dist.is_main:
        T.write_run_config(run_dir, cfg, category=category, pseudo=pseudo, dram=dram, scale=scale,
                           sd_model=sd_model if pseudo == "sdgm" else None,
                           data=str(data_root) if data_root else f"bundled-{scale}")
        log = T.CSVLog(run_dir / "log.csv", resume_step=epoch if last is not None else None)
    recon, disc = dist.wrap(model.reconstructive), dist.wrap(model.discriminative)
    end = min(cfg.epochs, stop_at if stop_at is not None else cfg.epochs)
    bar = tqdm(range(epoch, end), initial=epoch, total=end, desc=f"DADNet {category}",
               disable=not (progress and dist.is_main), mininterval=2)
    for epoch in bar:
        model.train()
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        tic, sums, n = time.perf_counter(), {"loss_rec": 0.0, "loss_focal": 0.0}, 0
        for batch in loader:
            loss_rec, loss_focal = train_step(cfg, recon, disc, opts, scalers, batch["image"].to(device),
                                              batch["anomalous"].to(device), batch["mask"].to(device), amp)
            sums["loss_rec"] += loss_rec.item()
            sums["loss_focal"] += loss_focal.item()
            n += 1
        for sched in scheds.values():
            sched.step()
        done = epoch + 1
        means = {k: float(dist.all_reduce_mean(torch.tensor(v / max(n, 1)))) for k, v in sums.items()}
        if dist.is_main:
            log.log(done, lr=opts["reconstructive"].param_groups[0]["lr"],
                    sec=time.perf_counter() - tic, **means)
            bar.set_postfix(rec=f"{means['loss_rec']:.3f}", focal=f"{means['loss_focal']:.4f}")
        if done % cfg.checkpoint_every == 0 or done == end:
            if dist.is_main:
                T.save_checkpoint(T.checkpoint_path(run_dir, done), step=done, **state,
                                  extra={"category": category, "pseudo": pseudo, "dram": dram})
            dist.barrier()
    bar.close()
    return run_dir


def config_from_run(run_dir: str | Path):
    """The DADNetConfig and ``run.json`` of a run folder."""
    return T.config_from_run(run_dir, "dadnet")


def load_model(run_dir: str | Path, device: str = "cpu") -> tuple[DADNet, object, dict]:
    """The trained model of a run (its latest checkpoint), in eval mode, with its config and run.json."""
    cfg, saved = config_from_run(run_dir)
    last = T.latest_checkpoint(run_dir)
    if last is None:
        raise UserError(f"{run_dir}: no checkpoint_<epoch>.safetensors in this run folder")
    model = build_model(cfg, saved.get("dram", True))
    T.load_weights(last, {"reconstructive": model.reconstructive, "discriminative": model.discriminative})
    return T.fast_layout(model.to(T.resolve_device(device))).eval(), cfg, saved


def is_finished(run_dir: str | Path, cfg) -> bool:
    return T.latest_checkpoint(run_dir) == T.checkpoint_path(run_dir, cfg.epochs)


def pretrained_or_train(scale: str, category: str, pseudo: str = "dgm", dram: bool = True,
                        data_root: str | Path | None = None, device: str = "cpu",
                        progress: bool = True, **overrides) -> Path:
    """The one cached run per (scale, category, pseudo source, DRAM, data): trained on first use,
    reused by every chapter after."""
    cfg = get_config("dadnet", scale, **overrides)
    run_dir = T.cached_run_dir("dadnet", cfg, category=category, pseudo=pseudo, dram=dram,
                               data=str(data_root or f"bundled-{scale}"))
    if not is_finished(run_dir, cfg):
        train(cfg, run_dir, data_root, category, scale=scale, pseudo=pseudo, dram=dram, device=device,
              resume=True, progress=progress)
    return run_dir
