"""Ready for the first GPU: every trainer's step at the papers' ``full`` geometry, timed, on this machine.

For each trainer (Defect-GAN's WGAN-GP step with n_critic, DADNet's step of both networks, Table 3's
classifier) it builds the networks of the ``full`` profile, feeds random images of the papers' size and
batch, runs a warm-up step and then ``--steps`` timed steps in the configured precision (``auto``: bf16 on
a GPU that has it, fp32 on the CPU; ``--precision`` to choose), and prints images per second and the share
of the device's peak it reaches: the step's FLOPs (PyTorch's flop formulas, counted once) over its time, against
the best throughput of a large matrix product in the same precision measured first on the same device
(the practical peak, so no table of vendor numbers is needed).

With several GPUs it also runs each trainer under DistributedDataParallel with NCCL, one process per GPU,
each taking its share of the paper's batch (as ``torchrun`` training does), and prints the group's
images per second. ``--processes N`` forces N processes on the CPU over gloo (how the test checks the
distributed path without a GPU).

    python benchmarks/gpu_check.py                 # < 10 minutes on one GPU
    python benchmarks/gpu_check.py --steps 1       # the CPU, at full geometry: says it found no GPU
    python benchmarks/gpu_check.py --scale smoke --processes 2   # the test: every path in seconds
"""
from __future__ import annotations

import argparse
import os
import socket
import time
from dataclasses import dataclass

import torch
import torch.multiprocessing as mp
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from paper_repro.config import get_config
from paper_repro.dadnet import trainer as dadnet_trainer
from paper_repro.defect_gan import trainer as gan_trainer
from paper_repro.defect_gan.classifier import DefectClassifier, loss_terms
from paper_repro.runs.devices import Distributed
from paper_repro.runs.loop import adam, fast_layout, sgd
from paper_repro.runs.precision import Precision, autocast, grad_scaler, optimizer_step, resolve_precision

TRAINERS = ("defect_gan", "dadnet", "classifier")


@dataclass
class Timing:
    trainer: str
    images: int            # images one step of this process consumes
    seconds: float         # per step
    flops: float           # per step (forward and backward), 0 when not counted

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds


class CountFlops(TorchDispatchMode):
    """FLOPs of every operator PyTorch's flop counter has a formula for (matrix products, convolutions,
    attention), counted at dispatch. FlopCounterMode's module tracking cannot follow the double backward of
    WGAN-GP's gradient penalty, so this counts the same formulas without it."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, precision: Precision, n: int = 4096, repeats: int = 10) -> float:
    """FLOP/s of the best of ``repeats`` n x n matrix products under ``precision``'s autocast."""
    n = n if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    with autocast(precision):
        a @ b
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            a @ b
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def defect_gan_step(scale: str, device: torch.device, precision: Precision, dist: Distributed, cfg=None,
                    num_classes: int = 5):
    """One generator turn of the ``defect_gan`` profile at ``scale`` (or of ``cfg``), and its images."""
    cfg = cfg or get_config("defect_gan", scale, precision=precision.name)
    G, D = (m.to(device) for m in gan_trainer.build_networks(cfg, num_classes))
    opt_g = adam(G.parameters(), cfg.lr, device, betas=cfg.betas, fused=False)
    opt_d = adam(D.parameters(), cfg.lr, device, betas=cfg.betas, fused=False)
    G_train, D_train = dist.wrap(G), dist.wrap(D)
    b, s = dist.per_rank_batch(cfg.batch_size), cfg.image_size
    n, d = torch.rand(b, 3, s, s, device=device) * 2 - 1, torch.rand(b, 3, s, s, device=device) * 2 - 1
    c = (torch.rand(b, num_classes, device=device) > 0.5).float()
    scalers = (grad_scaler(precision), grad_scaler(precision))
    step = {"k": 0}

    def run():   # one generator turn: n_critic critic updates and one generator update
        for _ in range(cfg.n_critic):
            gan_trainer.train_step(step["k"], n, d, c, G_train, D_train, opt_g, opt_d, cfg, precision, *scalers)
            step["k"] += 1
    return run, b * cfg.n_critic


def dadnet_step(scale: str, device: torch.device, precision: Precision, dist: Distributed, cfg=None,
                dram: bool = True):
    """One step of both DADNet networks of the ``dadnet`` profile at ``scale`` (or of ``cfg``), and its images."""
    cfg = cfg or get_config("dadnet", scale, precision=precision.name)
    model = fast_layout(dadnet_trainer.build_model(cfg, dram=dram).to(device))
    opts = {name: adam(getattr(model, name).parameters(), cfg.lr, device) for name in ("reconstructive", "discriminative")}
    scalers = {name: grad_scaler(precision) for name in opts}
    recon = dist.wrap(model.reconstructive, sync_batchnorm=True)
    disc = dist.wrap(model.discriminative, sync_batchnorm=True)
    b, s = dist.per_rank_batch(cfg.batch_size), cfg.image_size
    image, anomalous = torch.rand(b, 3, s, s, device=device), torch.rand(b, 3, s, s, device=device)
    mask = (torch.rand(b, 1, s, s, device=device) > 0.9).float()
    model.train()
    return (lambda: dadnet_trainer.train_step(cfg, recon, disc, opts, scalers, image, anomalous, mask, precision)), b


def classifier_step(scale: str, device: torch.device, precision: Precision, dist: Distributed, cfg=None,
                    backbone: str | None = None):
    """One step of Table 3's classifier (``backbone``, default the profile's first) at ``scale`` (or of ``cfg``)."""
    cfg = cfg or get_config("detection", scale)
    model = dist.wrap(fast_layout(DefectClassifier(backbone or cfg.backbones[0], 6, None, True, 1.0).to(device)))
    optimizer = sgd(model.parameters(), cfg.lr, device, momentum=0.9)
    scaler = grad_scaler(precision)
    b, s = dist.per_rank_batch(cfg.batch_size), cfg.image_size
    batch = {"image": torch.rand(b, 3, s, s, device=device), "labels": torch.rand(b, 6, device=device).round(),
             "source": torch.rand(b, device=device).round()}

    def run():
        with autocast(precision):
            loss, _ = loss_terms(model, batch, device)
        optimizer_step(loss, optimizer, scaler)
    return run, b


STEPS = {"defect_gan": defect_gan_step, "dadnet": dadnet_step, "classifier": classifier_step}


def time_trainer(name: str, scale: str, device: torch.device, precision: Precision, steps: int, dist: Distributed,
                 count_flops: bool = True) -> Timing:
    torch.manual_seed(0)
    run, images = STEPS[name](scale, device, precision, dist)
    flops = 0.0
    if count_flops:
        counter = CountFlops()
        with counter:
            run()   # also the warm-up
        flops = float(counter.total)
    else:
        run()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        run()
    _sync(device)
    return Timing(name, images, (time.perf_counter() - start) / steps, flops)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_worker(rank: int, world: int, port: int, scale: str, device_type: str, precision_name: str, steps: int,
                  trainers: list[str], results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist = Distributed.from_env(device_type)
    device = dist.device(device_type)
    precision = resolve_precision(precision_name, device)
    try:
        for name in trainers:
            timing = time_trainer(name, scale, device, precision, steps, dist, count_flops=False)
            if rank == 0:
                results[name] = (timing.images * world, timing.seconds)
    finally:
        dist.close()


def group_check(world: int, scale: str, device_type: str, precision_name: str, steps: int, trainers: list[str]) -> dict:
    """Images per second of each trainer over ``world`` processes (one per GPU, NCCL; or gloo on the CPU)."""
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_group_worker, args=(world, _free_port(), scale, device_type, precision_name, steps, trainers, results),
                 nprocs=world, join=True)
        return dict(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full", choices=["smoke", "demo", "full"],
                        help="the profiles' geometry (default full, the papers'; smoke checks every path in seconds)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per trainer after a warm-up (default 5)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    parser.add_argument("--processes", type=int, default=None,
                        help="also time N processes under DDP (default: one per GPU when there are several)")
    args = parser.parse_args(argv)

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = torch.device("cuda", 0) if gpus else torch.device("cpu")
    precision = resolve_precision(args.precision, device)
    if gpus:
        print(f"found {gpus} GPU(s): {torch.cuda.get_device_name(0)}; precision {precision.name}")
    else:
        print(f"found no GPU: timing the trainers' steps on the CPU ({torch.get_num_threads()} threads), "
              f"precision {precision.name}, {args.scale} geometry; on a GPU this checks the configured precision and "
              "NCCL as well")
    peak = matmul_peak(device, precision)
    print(f"practical peak (matrix product, {precision.name}): {peak / 1e12:.2f} TFLOP/s")
    for name in args.trainers:
        t = time_trainer(name, args.scale, device, precision, args.steps, Distributed())
        share = t.flops / t.seconds / peak if t.flops else float("nan")
        print(f"{name:>10}: {t.images_per_second:8.2f} images/s, {t.seconds * 1000:9.1f} ms a step of {t.images} images, "
              f"{t.flops / 1e9:8.1f} GFLOP a step, {100 * share:5.1f} % of the peak")
    world = args.processes if args.processes is not None else (gpus if gpus > 1 else 0)
    if world > 1:
        kind = "NCCL" if gpus else "gloo on the CPU"
        results = group_check(world, args.scale, "cuda" if gpus else "cpu", args.precision, args.steps, args.trainers)
        for name in args.trainers:
            images, seconds = results[name]
            print(f"{name:>10}: {images / seconds:8.2f} images/s over {world} processes (DDP, {kind})")
    elif gpus <= 1:
        print("one device: DDP not timed (pass --processes N to time N processes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
