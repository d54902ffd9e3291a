"""A trained DADNet as one portable graph: images in, anomaly map ``M_p`` and image score out (issue 32).

The graph is the detector ``dadnet eval`` runs (:mod:`paper_repro.dadnet.evaluate`), with nothing left
for the caller but reading the images and resizing them to the run's size ``S``:

    images       uint8 (B, 3, S, S), RGB, NCHW; B is free (dynamic batch)
    x            = images / 255                   the loaders' scaling (data.io.image_tensor); DADNet
                                                  normalises no further
    R, logits    = DADNet(x)                      R = recon(x), logits = disc(concat(x, R))   (§2.2)
    anomaly_map  = M_p = softmax(logits)[:, 1:2]  (B, 1, S, S), in [0, 1]     (networks.predicted_mask)
    score        = max of the k x k mean of M_p   (B,), k = score_kernel(S)   (evaluate.image_scores)

Resizing stays outside: the loaders resize with Pillow's antialiased bilinear filter, which no graph
operator reproduces, so a caller resizes the same way (``Image.resize((S, S), Image.BILINEAR)``) and
gets the map and score ``dadnet eval`` would give.

Two formats. ONNX (opset :data:`OPSET`) is written by PyTorch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``, deprecated since torch 2.9 but present in the pinned 2.14):
the default ``torch.export``-based exporter needs ``onnxscript`` and ``onnx-ir`` besides ``onnx``; tried
with them, it gave the same outputs (6e-8 apart) and took ~14x longer to export, and this model
(convolutions, bilinear upsampling, a softmax and a pooling, no control flow) needs nothing the older
exporter lacks. TorchScript is
``torch.jit.trace`` of the same module (:class:`Detector`). Both carry the run's size, score kernel,
category and checkpoint as metadata. Every file is checked before it takes its name: loaded back (ONNX
Runtime on the CPU, ``torch.jit.load``), run on a check batch of a size other than the one it was
traced with, and compared with the eager model within :data:`PARITY_ATOL`; it is written atomically,
so a failed export leaves no file.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from paper_repro.dadnet.evaluate import anomaly_maps, image_scores, score_kernel
from paper_repro.dadnet.networks import DADNet
from paper_repro.dadnet.trainer import load_model
from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import CHECKPOINT_PATTERN, atomic_write, latest_checkpoint

# ONNX and its runtime are the `export` extra: imported here when present, asked for when used.
try:
    import onnx
    import onnxruntime
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    onnx = onnxruntime = None

FORMATS = ("onnx", "torchscript")
INPUT_NAME = "images"
OUTPUT_NAMES = ("anomaly_map", "score")
OPSET = 17
PARITY_ATOL = 1e-4     # largest |exported - eager| accepted on M_p and on the score (both in [0, 1])
TRACE_BATCH, CHECK_BATCH = 2, 3   # traced with one batch size, checked with another: the batch is dynamic
INSTALL_HINT = "pip install 'paper-repro[export]'"


class Detector(nn.Module):
    """uint8 images ``(B, 3, S, S)`` -> ``(M_p (B, 1, S, S), score (B,))``, as ``dadnet eval`` scores them."""

    def __init__(self, model: DADNet, image_size: int):
        super().__init__()
        self.model = model.eval()
        self.image_size = image_size
        self.kernel = score_kernel(image_size)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.float() / 255.0                          # the loaders' [0, 1] scaling
        _, pred = anomaly_maps(self.model, x)               # R, then M_p, as `dadnet eval` computes them
        return pred, image_scores(pred, self.kernel)        # the image score: max of the mean-filtered M_p


@dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote, and how closely the file reproduces the eager model."""
    path: Path
    format: str
    image_size: int
    kernel: int
    epoch: int
    bytes: int
    map_difference: float     # max |M_p exported - M_p eager| on the check batch
    score_difference: float   # max |score exported - score eager|

    def summary(self) -> str:
        s = self.image_size
        return (f"{self.path} ({self.format}, {self.bytes / 1e6:.1f} MB, checkpoint of epoch {self.epoch})\n"
                f"  {INPUT_NAME} uint8 (B, 3, {s}, {s}) RGB -> {OUTPUT_NAMES[0]} (B, 1, {s}, {s}), "
                f"{OUTPUT_NAMES[1]} (B,) (max of the {self.kernel}x{self.kernel} mean of the map)\n"
                f"  parity with the eager model on {CHECK_BATCH} check images: max |difference| map "
                f"{difference_text(self.map_difference)}, score {difference_text(self.score_difference)} "
                f"(accepted: {difference_text(PARITY_ATOL)})")


def difference_text(value: float) -> str:
    """A small difference as ``6.0e-8`` (one decimal, the exponent as it is read: no ``e-08``)."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def require_onnx() -> None:
    """One line naming the extra when onnx or onnxruntime is missing."""
    missing = [name for name, module in (("onnx", onnx), ("onnxruntime", onnxruntime)) if module is None]
    if missing:
        raise UserError(f"ONNX export needs {' and '.join(missing)}, not installed here: {INSTALL_HINT}")


def check_batch(image_size: int, n: int = CHECK_BATCH, seed: int = 0) -> torch.Tensor:
    """``n`` random uint8 images: the parity check's input (the same model on the same numbers)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, image_size, image_size), generator=generator, dtype=torch.uint8)


def write_onnx(detector: Detector, path: str | Path, metadata: dict[str, str]) -> None:
    """The ONNX graph of ``detector`` with a dynamic batch axis, checked by ``onnx.checker``."""
    require_onnx()
    buffer = io.BytesIO()
    example = check_batch(detector.image_size, TRACE_BATCH, seed=1)
    with warnings.catch_warnings():  # the legacy exporter's deprecation notices (see the module docstring)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(detector, (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)})
    graph = onnx.load_from_string(buffer.getvalue())
    graph.doc_string = "DADNet detector (paper_repro): " + json.dumps(metadata)
    onnx.helper.set_model_props(graph, metadata)
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))


def write_torchscript(detector: Detector, path: str | Path, metadata: dict[str, str]) -> None:
    """``torch.jit.trace`` of ``detector``, with ``metadata.json`` among its extra files."""
    example = check_batch(detector.image_size, TRACE_BATCH, seed=1)
    with torch.no_grad(), warnings.catch_warnings():  # torch.jit's deprecation notices
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(detector, (example,), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"metadata.json": json.dumps(metadata)})


def run_onnx(path: str | Path, images: torch.Tensor, threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an exported ONNX detector with ONNX Runtime on the CPU: ``(anomaly_map, score)``."""
    require_onnx()
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    maps, scores = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()})
    return torch.from_numpy(maps), torch.from_numpy(scores)


@torch.no_grad()
def run_torchscript(path: str | Path, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an exported TorchScript detector: ``(anomaly_map, score)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        detector = torch.jit.load(str(path), map_location="cpu")
    maps, scores = detector(images)
    return maps, scores


def run_exported(path: str | Path, fmt: str, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return run_onnx(path, images) if fmt == "onnx" else run_torchscript(path, images)


def export_detector(detector: Detector, fmt: str, out: str | Path,
                    metadata: dict[str, str] | None = None) -> tuple[Path, float, float]:
    """Write ``detector`` as ``fmt`` to ``out`` atomically, after checking the file against the eager
    model on :func:`check_batch`; returns ``(path, max map difference, max score difference)``."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_onnx()
    detector = detector.cpu().eval()
    metadata = {"image_size": str(detector.image_size), "score_kernel": str(detector.kernel),
                "input": f"{INPUT_NAME}: uint8 (B, 3, S, S) RGB", "outputs": ", ".join(OUTPUT_NAMES),
                **(metadata or {})}
    images = check_batch(detector.image_size)
    with torch.no_grad():
        want = detector(images)
    differences: list[float] = []

    def write(tmp: str) -> None:
        (write_onnx if fmt == "onnx" else write_torchscript)(detector, tmp, metadata)
        got = run_exported(tmp, fmt, images)
        differences[:] = [float((g - w).abs().max()) for g, w in zip(got, want)]
        if max(differences) > PARITY_ATOL:
            raise UserError(f"{out}: not written: the exported {fmt} model differs from the eager one by "
                            f"{difference_text(max(differences))} (more than {difference_text(PARITY_ATOL)})")

    path = atomic_write(out, write)
    return path, differences[0], differences[1]


def export_run(run_dir: str | Path, fmt: str, out: str | Path) -> Exported:
    """Export the latest checkpoint of the DADNet run ``run_dir`` (see the module docstring)."""
    if fmt == "onnx":
        require_onnx()  # before anything is loaded
    model, cfg, saved = load_model(run_dir, "cpu")
    checkpoint = latest_checkpoint(run_dir)
    epoch = int(CHECKPOINT_PATTERN.search(checkpoint.name).group(1))
    detector = Detector(model, cfg.image_size)
    metadata = {"paper": "dadnet", "run": Path(os.path.abspath(run_dir)).name, "checkpoint": checkpoint.name,
                "category": str(saved.get("category")), "dram": str(saved.get("dram", True))}
    path, map_diff, score_diff = export_detector(detector, fmt, out, metadata)
    return Exported(path, fmt, cfg.image_size, detector.kernel, epoch, path.stat().st_size, map_diff, score_diff)


__all__ = ["FORMATS", "INPUT_NAME", "OUTPUT_NAMES", "OPSET", "PARITY_ATOL", "INSTALL_HINT", "Detector",
           "Exported", "difference_text", "require_onnx", "check_batch", "write_onnx", "write_torchscript", "run_onnx",
           "run_torchscript", "run_exported", "export_detector", "export_run"]
