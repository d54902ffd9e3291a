"""Defect-GAN Table 3's classifier: one SGD training step per batch size, per optimiser and memory layout.

The step is the trainer's (:func:`paper_repro.defect_gan.classifier.loss_terms`: BCE over the six labels
plus the source head through the GRL), on random images at ``--size`` (the ``demo`` profile's 40 px by
default). Prints milliseconds a step and a sample for each batch size with PyTorch's SGD, the fused SGD
the trainer uses (:func:`paper_repro.runs.loop.sgd`) and the fused SGD with channels-last weights. An
epoch's cost is its samples times the per-sample time, so a larger batch is cheaper per epoch when its
per-sample time is lower.

    python benchmarks/bench_classifier.py [--size 40 --batches 16 32 --backbone resnet34 --repeats 10]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from paper_repro.defect_gan.classifier import DefectClassifier, loss_terms
from paper_repro.runs.loop import fast_layout, sgd

sys.path.insert(0, str(Path(__file__).parent))
from timing import timed  # noqa: E402

VARIANTS = ("plain SGD", "fused SGD", "fused SGD, channels-last")


def step_fn(backbone: str, batch_size: int, size: int, variant: str):
    torch.manual_seed(0)
    model = DefectClassifier(backbone, 6, None, True, 1.0)
    if "channels-last" in variant:
        model = fast_layout(model)
    optimizer = (torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9) if variant == "plain SGD"
                 else sgd(model.parameters(), 1e-2, "cpu", momentum=0.9))
    batch = {"image": torch.randn(batch_size, 3, size, size), "labels": torch.rand(batch_size, 6).round(),
             "source": torch.rand(batch_size).round()}
    if "channels-last" in variant:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)

    def step():
        loss, _ = loss_terms(model, batch, "cpu")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"{args.backbone}, {args.size} px, {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    for batch_size in args.batches:
        for variant in VARIANTS:
            seconds = timed(step_fn(args.backbone, batch_size, args.size, variant), args.repeats)
            print(f"batch {batch_size:>3}  {variant:<26} {1000 * seconds:7.0f} ms a step "
                  f"{1000 * seconds / batch_size:6.1f} ms a sample")


if __name__ == "__main__":
    main()
