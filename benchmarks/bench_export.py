"""The exported detector vs the eager one: seconds per image at 256 px on this CPU, one thread.

The detector is ``dadnet export``'s graph (:class:`paper_repro.dadnet.export.Detector`: uint8 images
-> M_p and the image score) around a DADNet of the ``demo`` profile's widths (``--recon-width/
--disc-width``; the papers' 128/64 take seconds an image), randomly initialised and laid out as a
trained run loads (channels-last). It runs eagerly as ``dadnet eval`` runs it, then as the ONNX file
under ONNX Runtime (CPU provider) and as the TorchScript file (``torch.jit.load``), each written by
:func:`~paper_repro.dadnet.export.export_detector` (so each also passed its parity check). Prints a
table of seconds per image (median over repeats of one batch, after a warm-up) and the ratio to eager.
Needs the export extra (``pip install 'paper-repro[export]'``).

    python benchmarks/bench_export.py [--size 256 --batch 4 --recon-width 8 --disc-width 8 --repeats 3 --threads 1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import onnxruntime
import torch

from paper_repro.config import get_config
from paper_repro.dadnet.export import INPUT_NAME, OUTPUT_NAMES, Detector, check_batch, export_detector
from paper_repro.dadnet.trainer import build_model
from paper_repro.runs.loop import fast_layout

sys.path.insert(0, str(Path(__file__).parent))
from timing import timed  # noqa: E402


def main() -> None:
    demo = get_config("dadnet", "demo")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--recon-width", type=int, default=demo.recon_width)
    ap.add_argument("--disc-width", type=int, default=demo.disc_width)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_config("dadnet", "full", image_size=args.size, recon_width=args.recon_width,
                     disc_width=args.disc_width)
    detector = Detector(fast_layout(build_model(cfg)).eval(), args.size)
    images = check_batch(args.size, args.batch, seed=7)
    print(f"torch {torch.__version__} · onnxruntime {onnxruntime.__version__} · {args.threads} thread(s) · "
          f"{args.size} px · batch {args.batch} · widths {args.recon_width}/{args.disc_width} · "
          f"score kernel {detector.kernel}")

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, *onnx_diff = export_detector(detector, "onnx", Path(tmp) / "detector.onnx")
        ts_path, *ts_diff = export_detector(detector, "torchscript", Path(tmp) / "detector.pt")
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            scripted = torch.jit.load(str(ts_path))
        feed = {INPUT_NAME: images.numpy()}

        @torch.no_grad()
        def eager():
            detector(images)

        @torch.no_grad()
        def torchscript():
            scripted(images)

        rows = [("eager (dadnet eval)", timed(eager, args.repeats), None),
                ("ONNX Runtime", timed(lambda: session.run(list(OUTPUT_NAMES), feed), args.repeats), onnx_diff),
                ("TorchScript", timed(torchscript, args.repeats), ts_diff)]
    base = rows[0][1]
    print(f"{'':20s} {'s / image':>10s} {'vs eager':>9s}   parity (max |diff| map, score)")
    for name, seconds, diff in rows:
        parity = "-" if diff is None else f"{diff[0]:.1e}, {diff[1]:.1e}"
        print(f"{name:20s} {seconds / args.batch:10.4f} {seconds / base:8.2f}x   {parity}")


if __name__ == "__main__":
    main()
