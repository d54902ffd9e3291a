"""``dadnet export`` (issue 32): the whole detector in one ONNX or TorchScript graph, with parity.

A tiny finished DADNet run is made through the CLI as tests/bad_inputs_support.py makes its artefacts
(``data synth`` in the MVTec layout, ``dadnet train --scale smoke --epochs 1``, on the CPU) and exported
to both formats. The exported files run (ONNX Runtime on the CPU, ``torch.jit.load``) on the run's test
images in batches of 1 and of 3, and must give the anomaly maps and image scores ``dadnet eval`` gives
(:func:`paper_repro.dadnet.evaluate.evaluate`) within :data:`ATOL`. Bad inputs end in one line, no
traceback, nothing written.

Until ``paper_repro/commands/dadnet.py`` registers the action, the command runs under a parser built
here the way ``paper_repro.cli.build_parser`` builds its own (``cli.main`` handles the errors).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from paper_repro import cli
from paper_repro.commands import dadnet_export
from paper_repro.dadnet import export
from paper_repro.dadnet.evaluate import evaluate, image_scores, predict, score_kernel
from paper_repro.dadnet.networks import DADNet
from paper_repro.dadnet.trainer import load_model
from paper_repro.data.io import image_tensor, read_image

ATOL = 1e-4  # on M_p and on the image score, both in [0, 1]
REPO = Path(__file__).resolve().parent.parent


def export_parser() -> cli.OneLineParser:
    """``python -m paper_repro dadnet export ...`` alone, registered as commands/dadnet.py will register it."""
    parser = cli.OneLineParser(prog="python -m paper_repro")
    commands = parser.add_subparsers(dest="command", required=True)
    dadnet = commands.add_parser("dadnet")
    dadnet_export.register(dadnet.add_subparsers(dest="dadnet_command", required=True))
    return parser


def run_export(monkeypatch, *argv) -> int:
    monkeypatch.setattr(cli, "build_parser", export_parser)
    return cli.main(["dadnet", "export", *map(str, argv)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished DADNet run (32 px, widths 8/8, one epoch) and a finished Defect-GAN run."""
    root = tmp_path_factory.mktemp("export")
    threads = torch.get_num_threads()
    try:
        for argv in (
            ("data", "synth", "--out", root / "mvtec", "--layout", "mvtec", "--categories", "tile", "--size", "32",
             "--n-train", "4", "--n-test", "2"),
            ("dadnet", "train", "--data", root / "mvtec", "--category", "tile", "--scale", "smoke", "--epochs", "1",
             "--out", root / "dd_run"),
            ("data", "synth", "--out", root / "codebrim", "--layout", "codebrim", "--size", "32", "--n-train", "12",
             "--n-test", "3"),
            ("defect-gan", "train", "--data", root / "codebrim", "--scale", "smoke", "--iterations", "2", "--out",
             root / "dg_run", "--threads", "1", "--normals-source", "background-recrop"),
        ):
            assert cli.main([str(a) for a in argv]) == 0, argv
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module")
def eager(runs):
    """What ``dadnet eval`` computes on the run's test split: inputs, M_p and scores."""
    _, pred = evaluate(runs / "dd_run", progress=False, write=False)
    return pred


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """Both formats, exported through the command; ``{format: path}``."""
    out = tmp_path_factory.mktemp("exported")
    paths = {"onnx": out / "tile.onnx", "torchscript": out / "tile.pt"}
    with pytest.MonkeyPatch.context() as mp:
        for fmt, path in paths.items():
            assert run_export(mp, "--run", runs / "dd_run", "--format", fmt, "--out", path) == 0
    return paths


def as_uint8(images: torch.Tensor) -> torch.Tensor:
    """The loaders' [0, 1] floats back to the 8-bit levels they were read from (exactly: x = k / 255)."""
    out = (images * 255).round().to(torch.uint8)
    assert torch.allclose(out.float() / 255, images, atol=0, rtol=0)
    return out


@pytest.mark.parametrize("fmt", export.FORMATS)
@pytest.mark.parametrize("batch", [1, 3])
def test_exported_detector_matches_dadnet_eval(fmt, batch, eager, exported, capsys):
    images = as_uint8(eager["image"])
    assert len(images) >= 4  # batches of 3: full ones and a remainder
    maps, scores = zip(*(export.run_exported(exported[fmt], fmt, images[i:i + batch])
                         for i in range(0, len(images), batch)))
    maps, scores = torch.cat(maps), torch.cat(scores)
    assert maps.shape == eager["pred"].shape and maps.dtype == torch.float32
    assert scores.shape == eager["score"].shape == (len(images),)
    map_diff = float((maps - eager["pred"]).abs().max())
    score_diff = float((scores - eager["score"]).abs().max())
    assert map_diff <= ATOL and score_diff <= ATOL, (map_diff, score_diff)
    assert eager["pred"].std() > 0  # a real map, not a constant the check would pass trivially
    with capsys.disabled():
        print(f"\n{fmt}, batch {batch}: {len(images)} test images, max |difference| map {map_diff:.2e}, "
              f"score {score_diff:.2e} (tolerance {ATOL:g})")


def test_the_onnx_graph_names_its_inputs_outputs_and_dynamic_batch(exported):
    model = onnx.load(str(exported["onnx"]))
    onnx.checker.check_model(model)
    (inp,) = model.graph.input
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    assert [o.name for o in model.graph.output] == ["anomaly_map", "score"]
    assert all(o.type.tensor_type.shape.dim[0].dim_param == "batch" for o in model.graph.output)
    # the image score's mean filter is in the graph, as evaluate.image_scores applies it
    (pool,) = [n for n in model.graph.node if n.op_type == "AveragePool"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pool.attribute}
    k = score_kernel(32)
    assert list(attrs["kernel_shape"]) == [k, k] and list(attrs["strides"]) == [1, 1]
    assert attrs.get("count_include_pad", 0) == 0 and list(attrs["pads"]) == [k // 2] * 4
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["image_size"] == "32" and meta["score_kernel"] == str(k) and meta["category"] == "tile"
    assert meta["checkpoint"].startswith("checkpoint_") and meta["paper"] == "dadnet"


def test_the_torchscript_file_carries_its_metadata(exported):
    extra = {"metadata.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        torch.jit.load(str(exported["torchscript"]), _extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    assert meta["image_size"] == "32" and meta["score_kernel"] == str(score_kernel(32))
    assert meta["category"] == "tile" and meta["input"].startswith("images: uint8")


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_a_larger_window_and_a_map_with_contrast_match_too(fmt, tmp_path):
    """At 96 px the score's window is 9 px (3 px at 32), so the mean filter's borders matter more. A
    random model's logits are rescaled so that M_p ranges over [0, 1] on these images, not a flat 0.5."""
    torch.manual_seed(0)
    model = DADNet(4, 4).eval()
    images = export.check_batch(96, 2, seed=5)
    images[..., :48] //= 8  # a dark left half
    with torch.no_grad():  # logit difference: mean 0, spread 3 on these images
        _, logits = model(images.float() / 255)
        diff = logits[:, 1] - logits[:, 0]
        gain, out = 3 / float(diff.std()), model.discriminative.out
        out.weight.mul_(gain)
        out.bias.mul_(gain)
        out.bias[1] -= gain * float(diff.mean())
    detector = export.Detector(model, 96)
    assert detector.kernel == score_kernel(96) == 9
    path, map_diff, score_diff = export.export_detector(detector, fmt, tmp_path / f"d.{fmt}")
    assert max(map_diff, score_diff) <= export.PARITY_ATOL
    maps, scores = export.run_exported(path, fmt, images)
    with torch.no_grad():
        want_maps, _ = detector(images)
    want_scores = image_scores(want_maps)  # evaluate's default: the kernel from the map's size
    assert want_maps.std() > 0.1 and want_maps.min() < 0.1 and want_maps.max() > 0.9
    assert torch.allclose(maps, want_maps, atol=ATOL) and torch.allclose(scores, want_scores, atol=ATOL)


def test_the_command_and_the_module_agree_on_the_formats():
    assert dadnet_export.FORMATS == export.FORMATS


# The README's "Export a detector" snippet: the exported ONNX file run with onnxruntime, NumPy and Pillow
# alone, resizing as the package's loaders do (Pillow's bilinear filter). It prints "path<TAB>score" lines
# and writes each map as an 8-bit PNG (map_<k>.png) in the working folder.
STANDALONE = """\
import sys
import numpy as np, onnxruntime as ort
from PIL import Image

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
size = session.get_inputs()[0].shape[-1]                                # the run's image size S
images = [Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR) for p in sys.argv[2:]]
batch = np.stack([np.asarray(im, dtype=np.uint8).transpose(2, 0, 1) for im in images])  # (B, 3, S, S)
maps, scores = session.run(["anomaly_map", "score"], {"images": batch})  # (B, 1, S, S), (B,)
for k, (path, score) in enumerate(zip(sys.argv[2:], scores)):
    print(f"{path}\\t{score:.6f}\\tmap_{k}.png")                        # the image score, and M_p as a PNG
    Image.fromarray((maps[k, 0] * 255).round().astype(np.uint8)).save(f"map_{k}.png")
"""


def test_the_onnx_file_runs_without_the_package(runs, exported, tmp_path):
    """The snippet, in a fresh interpreter that never imports paper_repro, on the run's test images and
    on two of them enlarged to 45 px (so the resize matters): the eager scores and maps of ``predict``,
    fed as the loaders feed it (``read_image``, ``image_tensor``)."""
    test_dir = runs / "mvtec" / "tile" / "test"
    paths = sorted(test_dir.rglob("*.png"))[:4]
    for k, path in enumerate(paths[:2]):
        big = tmp_path / "big" / f"big{k}.png"
        big.parent.mkdir(exist_ok=True)
        Image.open(path).resize((45, 45), Image.BICUBIC).save(big)
        paths.append(big)
    script = tmp_path / "run_detector.py"
    script.write_text(STANDALONE + "assert 'paper_repro' not in sys.modules and 'torch' not in sys.modules\n")
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, str(script), str(exported["onnx"]), *map(str, paths)], cwd=work,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    got = {Path(p): float(v) for p, v, _ in rows}
    model, cfg, _ = load_model(runs / "dd_run")
    items = [{"image": image_tensor(read_image(p), cfg.image_size), "mask": torch.zeros(1, 32, 32), "label": 0}
             for p in paths]
    want = predict(model, items, batch_size=3, progress=False)
    assert list(got) == paths
    assert np.allclose(list(got.values()), want["score"].numpy(), atol=ATOL, rtol=0)
    for (_, _, name), pred in zip(rows, want["pred"]):
        saved = np.asarray(Image.open(work / name), dtype=np.float32)
        assert saved.shape == (32, 32) and np.abs(saved - pred[0].numpy() * 255).max() <= 0.5 + 1e-3


# ---- bad inputs: one line each, no traceback, nothing written -------------------------------------
def refused(capsys, rc: int, *words: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("case", ["defect-gan run", "no run", "no checkpoint", "folder missing", "out is a folder",
                                  "unknown format"])
def test_bad_inputs_end_in_one_line_and_write_nothing(case, runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    args = {"--run": runs / "dd_run", "--format": "onnx", "--out": out}
    words: tuple[str, ...] = ()
    if case == "defect-gan run":
        args["--run"], words = runs / "dg_run", ("Defect-GAN run folder", "expected a DADNet run folder")
    elif case == "no run":
        args["--run"], words = tmp_path / "nowhere", ("no such folder",)
    elif case == "no checkpoint":
        bare = tmp_path / "bare_run"
        bare.mkdir()
        (bare / "run.json").write_bytes((runs / "dd_run" / "run.json").read_bytes())
        args["--run"], words = bare, ("no checkpoint",)
    elif case == "folder missing":
        out = args["--out"] = tmp_path / "missing" / "model.onnx"
        words = ("--out", "no such folder")
    elif case == "out is a folder":
        out = args["--out"] = out.parent
        words = ("--out", "is a folder")
    elif case == "unknown format":
        args["--format"], words = "tflite", ("--format", "invalid choice", "tflite")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc = run_export(monkeypatch, *(str(v) for pair in args.items() for v in pair))
    refused(capsys, rc, *words)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, not even a temporary file
    assert not (out.exists() and out.is_file())


def test_a_failed_export_leaves_the_previous_file_and_no_half_file(runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "model.pt"
    out.write_bytes(b"the file a colleague exported yesterday")
    monkeypatch.setattr(export, "PARITY_ATOL", -1.0)  # every export now fails its parity check, after writing
    rc = run_export(monkeypatch, "--run", runs / "dd_run", "--format", "torchscript", "--out", out)
    refused(capsys, rc, "not written", "differs from the eager one")
    assert out.read_bytes() == b"the file a colleague exported yesterday"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_missing_onnx_names_the_extra(runs, tmp_path):
    """Without onnx and onnxruntime (blocked in a fresh interpreter), one line naming the extra."""
    script = (
        "import sys\n"
        "sys.modules['onnx'] = sys.modules['onnxruntime'] = None\n"
        "from paper_repro import cli\n"
        "from paper_repro.commands import dadnet_export\n"
        "def parser():\n"
        "    p = cli.OneLineParser(prog='python -m paper_repro')\n"
        "    dadnet = p.add_subparsers(dest='command', required=True).add_parser('dadnet')\n"
        "    dadnet_export.register(dadnet.add_subparsers(dest='dadnet_command', required=True))\n"
        "    return p\n"
        "cli.build_parser = parser\n"
        "sys.exit(cli.main(['dadnet', 'export'] + sys.argv[1:]))\n")
    out = tmp_path / "model.onnx"
    proc = subprocess.run([sys.executable, "-c", script, "--run", str(runs / "dd_run"), "--format", "onnx",
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "onnx and onnxruntime" in lines[0] and "pip install 'paper-repro[export]'" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []

