"""DADNet vs anomalib's DRAEM torch model: one training step and inference, 256 px, batch 8.

Both models get the same U-Net widths (``--recon-width/--disc-width``; the papers' 128/64 take about
a minute and a half per step on a 2-core CPU, so the default is the ``demo`` profile's widths).
DADNet's step is :func:`paper_repro.dadnet.trainer.train_step` (two Adams, L_rec eq. 10, focal eq. 12, DRAM on);
DRAEM's is anomalib's ``DraemModel`` with its ``DraemLoss`` and one Adam. Both run with the trainer's
machinery (channels-last weights, fused Adam; ``--plain`` for PyTorch's defaults). Prints seconds and
the ratio DADNet / DRAEM (below 1: DADNet faster). Needs ``pip install anomalib`` (the benchmark extra).

    python benchmarks/bench_dadnet.py [--size 256 --batch 8 --recon-width 8 --disc-width 8 --repeats 3 --plain]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from paper_repro.config import get_config
from paper_repro.dadnet.trainer import build_model, train_step
from paper_repro.runs.loop import adam, fast_layout
from paper_repro.runs.precision import grad_scaler

sys.path.insert(0, str(Path(__file__).parent))
from timing import timed  # noqa: E402



def prepare(model, plain: bool):
    """The model and an Adam factory, as the trainer sets them up (or PyTorch's defaults)."""
    if plain:
        return model, lambda params: torch.optim.Adam(params, 1e-4)
    return fast_layout(model), lambda params: adam(params, 1e-4, "cpu")


def dadnet_fns(x, mask, rw, dw, plain):
    cfg = get_config("dadnet", "full", recon_width=rw, disc_width=dw)  # DRAM on, training-mode R
    model, adam = prepare(build_model(cfg), plain)
    names = ("reconstructive", "discriminative")
    opts = {name: adam(getattr(model, name).parameters()) for name in names}
    scalers = {name: grad_scaler("cpu") for name in names}

    def step():
        model.train()
        train_step(cfg, model.reconstructive, model.discriminative, opts, scalers, x, x, mask)

    @torch.no_grad()
    def infer():
        model.eval()
        model(x)

    return model, step, infer


def draem_fns(x, mask, rw, dw, plain):
    from anomalib.models.image.draem.loss import DraemLoss
    from anomalib.models.image.draem.torch_model import (DiscriminativeSubNetwork, DraemModel,
                                                         ReconstructiveSubNetwork)

    model = DraemModel()
    model.reconstructive_subnetwork = ReconstructiveSubNetwork(base_width=rw)
    model.discriminative_subnetwork = DiscriminativeSubNetwork(in_channels=6, out_channels=2, base_width=dw)
    model, adam = prepare(model, plain)
    loss_fn = DraemLoss()
    opt = adam(model.parameters())

    def step():
        model.train()
        r, pred = model(x)
        loss = loss_fn(x, r, mask, pred)
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer():
        model.eval()
        model(x)

    return model, step, infer


def main() -> None:
    demo = get_config("dadnet", "demo")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--recon-width", type=int, default=demo.recon_width)
    ap.add_argument("--disc-width", type=int, default=demo.disc_width)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plain", action="store_true",
                    help="contiguous weights and for-loop Adam (PyTorch's defaults)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size)
    mask = (torch.rand(args.batch, 1, args.size, args.size) > 0.9).float()
    print(f"torch {torch.__version__} · {args.threads} threads · {args.size} px · batch {args.batch} · "
          f"widths {args.recon_width}/{args.disc_width} · "
          + ("PyTorch defaults" if args.plain else "channels-last, fused Adam"))
    rows = {}
    for name, make in (("DADNet", dadnet_fns), ("anomalib DRAEM", draem_fns)):
        model, step, infer = make(x, mask, args.recon_width, args.disc_width, args.plain)
        params = sum(p.numel() for p in model.parameters())
        rows[name] = (timed(step, args.repeats), timed(infer, args.repeats), params)
        print(f"{name:15s} train step {rows[name][0]:7.3f} s   inference {rows[name][1]:7.3f} s   "
              f"params {params / 1e6:6.2f} M")
    (ts, ti, _), (rs, ri, _) = rows["DADNet"], rows["anomalib DRAEM"]
    print(f"ratio DADNet / DRAEM: train step {ts / rs:.2f}x, inference {ti / ri:.2f}x")


if __name__ == "__main__":
    main()
