"""``python -m paper_repro dadnet export --run RUN --format onnx|torchscript --out FILE``.

Writes the run's whole detector as one graph (:mod:`paper_repro.dadnet.export`): uint8 images of the
run's size in, the anomaly map ``M_p`` and the image score out, checked against the eager model before
the file takes its name. ``register(sub)`` adds the action to the ``dadnet`` command's sub-parsers.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from paper_repro.cli import check_run_folder

FORMATS = ("onnx", "torchscript")  # paper_repro.dadnet.export.FORMATS, spelled here so --help loads no torch


def register(sub) -> None:
    ex = sub.add_parser("export", help="export a run's detector (preprocessing, both networks, M_p and the "
                        "image score) as one ONNX or TorchScript graph with a dynamic batch")
    ex.add_argument("--run", required=True, help="a DADNet run folder (its latest checkpoint is exported)")
    ex.add_argument("--format", required=True, choices=FORMATS,
                    help="onnx (needs the export extra: onnx, onnxruntime) or torchscript")
    ex.add_argument("--out", required=True, type=output_file,
                    help="the file to write (its folder must exist); replaced atomically if it exists")
    ex.set_defaults(func=_export)


def output_file(text: str) -> str:
    """A file to write: its folder exists and is writable, and the name is not a folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file name, got an empty one")
    path = Path(text).expanduser()
    folder = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected a file name such as {path / 'model.onnx'}")
    if not folder.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such folder {folder}; create it first")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: the folder {folder} is not writable")
    return text


def _export(args: argparse.Namespace) -> int:
    from paper_repro.dadnet.export import export_run

    check_run_folder(args.run, "dadnet")
    exported = export_run(args.run, args.format, args.out)
    print(f"exported {args.run} -> {exported.summary()}")
    return 0
