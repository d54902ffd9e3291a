"""Training DADNet (§3.2) with the shared loop :func:`paper_repro.runs.loop.fit`.

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

from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from paper_repro.config import sd_model_for
from paper_repro.dadnet.losses import focal_loss, reconstruction_loss
from paper_repro.dadnet.networks import DADNet, predicted_mask
from paper_repro.dadnet.pseudo import PseudoAnomalies, load_normals, sdgm_bank
from paper_repro.data.roots import DataSource
from paper_repro.errors import UserError
from paper_repro.runs.cached import ensure_current
from paper_repro.runs.checkpoints import latest_checkpoint, load_weights
from paper_repro.runs.devices import Distributed, resolve_device, seed_everything, unwrap
from paper_repro.runs.folders import cached_run_dir, config_from_run as read_config, run_lock
from paper_repro.runs.loop import TrainState, adam, fast_layout, fit, is_finished
from paper_repro.runs.precision import Precision, autocast, grad_scaler, optimizer_step, resolve_precision

PSEUDO_SOURCES = ("dgm", "sdgm")


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


def train_step(cfg, recon, disc, opts, scalers, image, anomalous, mask, precision: Precision | None = None):
    """One optimisation step of both networks, independent gradients (§3.2); returns (L_rec, L_Focal).

    ``opts`` and ``scalers`` are keyed ``reconstructive`` and ``discriminative``; ``precision`` (default
    fp32) is the autocast both forward passes run under.
    """
    with autocast(precision or Precision("fp32", image.device.type)):
        reconstruction = recon(anomalous)
        loss_rec = reconstruction_loss(image, reconstruction.float(), cfg.lambda_ssim)   # eq. (10)
        if cfg.eval_mode_reconstruction:  # the R evaluation will give the discriminative net
            seen = reconstruction_at_inference(unwrap(recon), anomalous)
        else:                             # DRAEM's: the training-mode R, detached
            seen = reconstruction.detach()
        logits = disc(torch.cat([anomalous, seen], dim=1))
        loss_focal = focal_loss(logits.float(), mask, cfg.focal_beta, cfg.focal_delta)  # eq. (12)
    for name, loss in (("reconstructive", loss_rec), ("discriminative", loss_focal)):
        optimizer_step(loss, opts[name], scalers[name])
    return loss_rec, loss_focal


def pseudo_anomalies(cfg, root: Path, category: str, pseudo: str, sd_model: str | None = None,
                     device: str | torch.device = "cpu", progress: bool = True) -> PseudoAnomalies:
    """The training inputs of ``category`` of the MVTec-layout set at ``root``
    (:func:`pseudo_anomalies_of` its ``train/good`` images)."""
    normals = load_normals(root, category, cfg.image_size, cfg.train_limit)
    return pseudo_anomalies_of(cfg, normals, category, pseudo, sd_model, device, progress)


def pseudo_anomalies_of(cfg, normals: torch.Tensor, category: str, pseudo: str, sd_model: str | None = None,
                        device: str | torch.device = "cpu", progress: bool = True) -> PseudoAnomalies:
    """The training inputs made from ``normals``: DGM's, or SDGM's made with the checkpoint
    :func:`sd_model_for` names (``cfg.sdgm_variants`` images per normal image; ``category`` picks the prompts)."""
    if pseudo not in PSEUDO_SOURCES:
        raise UserError(f"unknown pseudo-anomaly source {pseudo!r}: expected one of {', '.join(PSEUDO_SOURCES)}")
    if pseudo == "dgm":
        return PseudoAnomalies(normals, seed=cfg.seed)
    model = sd_model_for(cfg, sd_model)
    bank = sdgm_bank(normals, category, model=model, variants=cfg.sdgm_variants, n_prompts=cfg.prompts_per_category,
                     steps=cfg.sd_steps, strength=cfg.sd_strength, seed=cfg.sdgm_bank_seed, device=device,
                     progress=progress)
    return PseudoAnomalies(normals, seed=cfg.seed, bank=bank, source=f"sdgm:{model}")


def train(cfg, run_dir: str | Path, dataset: PseudoAnomalies, *, dram: bool = True, device: str = "cpu",
          resume: bool = False, progress: bool = True, stop_at: int | None = None,
          run_info: dict | None = None, wait: bool = False) -> Path:
    """Train (or, with ``resume``, continue) the run in ``run_dir`` on ``dataset`` up to ``cfg.epochs``
    epochs (``stop_at`` ends earlier, to simulate an interruption). Works unchanged under ``torchrun``.
    ``run_info`` (category, data, ...) is recorded in ``run.json``; ``cfg.precision`` picks mixed precision."""
    run_dir = Path(run_dir)
    dist = Distributed.from_env(device)
    device = dist.device(resolve_device(device))
    precision = resolve_precision(cfg.precision, device)
    seed_everything(cfg.seed + dist.rank)
    # one sampler for one or many processes: each rank reads its share, reshuffled per epoch
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    per_rank = dist.per_rank_batch(cfg.batch_size)  # K processes share the paper's batch of 8
    loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=len(dataset) > per_rank)

    # channels-last weights and fused Adam: measured 0.35 -> 0.21 s a demo step on the CPU, same maths
    model = fast_layout(build_model(cfg, dram).to(device))
    opts = {name: adam(getattr(model, name).parameters(), cfg.lr, device)
            for name in ("reconstructive", "discriminative")}
    scheds = {name: torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.lr_milestones), cfg.lr_gamma)
              for name, opt in opts.items()}
    scalers = {name: grad_scaler(precision) for name in opts}
    state = TrainState({"reconstructive": model.reconstructive, "discriminative": model.discriminative},
                       opts, scheds, scalers)
    # BatchNorm over the whole batch on K GPUs, as on the paper's one (SyncBatchNorm; on the CPU, per process)
    recon, disc = dist.wrap(model.reconstructive, sync_batchnorm=True), dist.wrap(model.discriminative, sync_batchnorm=True)
    info = {"paper": "dadnet", "pseudo": dataset.source, "dram": dram, "precision": precision.name,
            **(run_info or {})}
    n_shown = min(4, len(dataset))

    def epoch(index: int) -> dict[str, float]:
        model.train()
        dataset.set_epoch(index)
        sampler.set_epoch(index)
        sums, n = {"loss_rec": 0.0, "loss_focal": 0.0}, 0
        for batch in loader:
            loss_rec, loss_focal = train_step(cfg, recon, disc, opts, scalers, batch["image"].to(device),
                                              batch["anomalous"].to(device), batch["mask"].to(device), precision)
            sums["loss_rec"] += loss_rec.item()
            sums["loss_focal"] += loss_focal.item()
            n += 1
        for sched in scheds.values():
            sched.step()
        means = {k: float(dist.all_reduce_mean(torch.tensor(v / max(n, 1)))) for k, v in sums.items()}
        return {"lr": opts["reconstructive"].param_groups[0]["lr"], **means}

    def sample() -> torch.Tensor:  # rows: A, R, M_p, M_g of a few training inputs (in [0, 1])
        return pseudo_anomaly_grid(model, dataset, n_shown, device)

    return fit(run_dir, state, epoch, total=cfg.epochs, config=cfg, run_info=info, seed=cfg.seed, dist=dist,
               resume=resume, checkpoint_every=cfg.checkpoint_every, keep_last=cfg.keep_last,
               milestone_every=cfg.milestone_every,
               extra={k: info[k] for k in ("category", "pseudo", "dram") if k in info}, sample=sample,
               sample_every=cfg.checkpoint_every, sample_nrow=n_shown, progress=progress,
               desc=f"DADNet {info.get('category', '')}".strip(),
               postfix={"rec": "loss_rec", "focal": "loss_focal"}, stop_at=stop_at, wait=wait)


@torch.no_grad()
def pseudo_anomaly_grid(model: DADNet, dataset: PseudoAnomalies, n: int, device) -> torch.Tensor:
    """Rows of A, R, M_p and M_g for the first ``n`` training images (anomalous draws of a fixed epoch),
    drawn without touching the training's random streams or the networks' modes."""
    items = PseudoAnomalies(dataset.normals[:n], seed=dataset.seed, bank=dataset.bank, p_anomaly=1.0)
    anomalous = torch.stack([items[i]["anomalous"] for i in range(n)])
    masks = torch.stack([items[i]["mask"] for i in range(n)])
    was_training = model.training
    model.eval()
    try:
        reconstruction, logits = model(anomalous.to(device))
    finally:
        model.train(was_training)
    maps = [predicted_mask(logits).cpu().expand(-1, 3, -1, -1), masks.expand(-1, 3, -1, -1)]
    return torch.cat([anomalous, reconstruction.float().cpu().clamp(0, 1), *maps])


def config_from_run(run_dir: str | Path):
    """The DADNetConfig and ``run.json`` of a run folder."""
    return read_config(run_dir, "dadnet")


def load_model(run_dir: str | Path, device: str = "cpu") -> tuple[DADNet, object, dict]:
    """The trained model of a run (its latest checkpoint), in eval mode, with its config and run.json."""
    cfg, saved = config_from_run(run_dir)
    last = latest_checkpoint(run_dir)
    if last is None:
        raise UserError(f"{run_dir}: no checkpoint_<epoch>.safetensors in this run folder")
    model = build_model(cfg, saved.get("dram", True))
    load_weights(last, {"reconstructive": model.reconstructive, "discriminative": model.discriminative})
    return fast_layout(model.to(resolve_device(device))).eval(), cfg, saved


def trained_run(cfg, source: DataSource, category: str, *, pseudo: str = "dgm", dram: bool = True,
                sd_model: str | None = None, device: str = "cpu", progress: bool = True) -> Path:
    """The one cached run per (configuration, category, pseudo-anomaly source, SDGM checkpoint, DRAM,
    data): trained on first use, reused by every chapter after."""
    sd = sd_model_for(cfg, sd_model) if pseudo == "sdgm" else None
    run_dir = cached_run_dir("dadnet", cfg, category=category, pseudo=pseudo, dram=dram, data=source.key,
                             sd_model=sd)
    with run_lock(run_dir, wait=True):  # another chapter (or GPU) may be training this very run
        ensure_current(run_dir, [__name__], what="dadnet")  # a run of other code is retrained, naming the file
        if not is_finished(run_dir, cfg.epochs):
            dataset = pseudo_anomalies(cfg, source.root, category, pseudo, sd, device, progress)
            train(cfg, run_dir, dataset, dram=dram, device=device, resume=True, progress=progress,
                  run_info={"category": category, "data": source.key, "data_root": str(source.root),
                            "sd_model": sd})
    return run_dir


__all__ = ["PSEUDO_SOURCES", "build_model", "reconstruction_at_inference", "train_step",
           "pseudo_anomalies", "pseudo_anomalies_of", "train", "pseudo_anomaly_grid", "config_from_run", "load_model",
           "trained_run"]
