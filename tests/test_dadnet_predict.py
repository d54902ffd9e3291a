"""``dadnet predict``: a folder of a team's images -> scores.csv, 16-bit maps, masks and overlays.

Checked on a tiny finished run: every file found gets a row (an unreadable one with its reason, exit 1,
one line), outputs at each image's own size under names mirroring the folders, scores identical to
``dadnet eval``'s, and every bad input one line with the run and earlier outputs untouched.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_inputs_support import digest
from dadnet_predict_support import (assert_one_line_error, build_tiny_run, copy_run, defect_gan_run, run_cli)
from paper_repro.dadnet.evaluate import predict
from paper_repro.dadnet.predict import output_names, predict_images
from paper_repro.dadnet.trainer import load_model
from paper_repro.data.image_folder import ImageFolder
from paper_repro.data.mvtec import MVTecAD


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("dadnet_predict"))


def write_mixed_folder(folder: Path, source: Path) -> dict[str, tuple[int, int]]:
    """Images of every kind the loaders accept, in nested folders, plus one unreadable file; returns the
    readable ones' relative paths and sizes."""
    picture = Image.open(source).convert("RGB")
    sizes = {"a/x.png": (32, 32), "a/x.jpg": (32, 32), "b/c/x.png": (48, 24), "gray.png": (50, 40),
             "b/rgba.png": (70, 30), "b/deep16.png": (45, 33)}
    for name, size in sizes.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
    picture.save(folder / "a/x.png")
    picture.save(folder / "a/x.jpg", quality=95)
    picture.resize(sizes["b/c/x.png"]).save(folder / "b/c/x.png")
    picture.convert("L").resize(sizes["gray.png"]).save(folder / "gray.png")
    picture.convert("RGBA").resize(sizes["b/rgba.png"]).save(folder / "b/rgba.png")
    levels = np.asarray(picture.convert("L").resize(sizes["b/deep16.png"]), dtype=np.uint16) * 257
    Image.fromarray(levels).save(folder / "b/deep16.png")
    assert Image.open(folder / "b/deep16.png").mode == "I;16"
    (folder / "a/broken.png").write_bytes(b"not a PNG at all")
    return sizes


def read_rows(out: Path) -> dict[str, dict]:
    with open(out / "scores.csv", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def test_predict_writes_every_image_and_lists_the_unreadable_one(tiny, tmp_path, capsys):
    images, out = tmp_path / "images", tmp_path / "out"
    sizes = write_mixed_folder(images, tiny.tile / "test/crack/000.png")
    rc, stdout, lines = run_cli(capsys, "dadnet", "predict", "--run", tiny.run, "--images", images, "--out", out)

    assert_one_line_error(rc, lines, "1 of 7 images could not be read", "broken.png", "scores.csv", code=1)
    assert "default threshold 0.5" in stdout  # no calibration: the paper's cut, said in one line
    rows = read_rows(out)
    assert set(rows) == {str(images / name) for name in [*sizes, "a/broken.png"]}
    broken = rows[str(images / "a/broken.png")]
    assert broken["status"] == "failed" and "cannot read image" in broken["reason"]
    written = set()
    for name, (width, height) in sizes.items():
        row = rows[str(images / name)]
        assert row["status"] == "ok" and row["reason"] == ""
        assert (int(row["width"]), int(row["height"])) == (width, height)
        assert row["decision"] == ("anomalous" if float(row["image_score"]) >= 0.5 else "normal")
        assert float(row["image_threshold"]) == float(row["pixel_threshold"]) == 0.5
        anomaly_map, mask, overlay = (Image.open(out / row[key]) for key in ("map", "mask", "overlay"))
        assert anomaly_map.mode == "I;16" and mask.mode == "L" and overlay.mode == "RGB"
        assert anomaly_map.size == mask.size == overlay.size == (width, height)
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        written.add(row["map"])
    # same-named images in different folders, and x.png beside x.jpg, do not collide
    assert {"maps/b/c/x.png", "maps/a/x.png.png", "maps/a/x.jpg.png"} <= written
    assert len(written) == len(sizes)


def test_outputs_mirror_relative_paths():
    names = output_names([Path("a/x.png"), Path("a/x.jpg"), Path("b/x.png"), Path("y.tif")])
    assert names == [Path("a/x.png.png"), Path("a/x.jpg.png"), Path("b/x.png"), Path("y.png")]


def test_scores_are_those_of_dadnet_eval(tiny, tmp_path):
    """The MVTec test split through eval's path (MVTecAD + evaluate.predict) and through predict give
    the same image scores, bit for bit; so do a folder of grayscale, RGBA and 16-bit images."""
    model, cfg, _ = load_model(tiny.run)
    test = MVTecAD(tiny.mvtec, "tile", split="test", image_size=cfg.image_size)
    eval_scores = predict(model, test, cfg.batch_size, progress=False)["score"].tolist()
    rows = predict_images(tiny.run, tiny.tile / "test", tmp_path / "out", progress=False, announce=lambda _: None)
    by_path = {row["path"]: row["image_score"] for row in rows}
    assert [by_path[str(path)] for path, _, _ in test.samples] == eval_scores

    images = tmp_path / "mixed"
    write_mixed_folder(images, tiny.tile / "test/good/000.png")
    (images / "a/broken.png").unlink()
    folder_scores = predict(model, ImageFolder(images, cfg.image_size), cfg.batch_size, progress=False)["score"]
    rows = predict_images(tiny.run, images, tmp_path / "out2", progress=False, announce=lambda _: None)
    assert [row["image_score"] for row in rows] == folder_scores.tolist()


def test_one_image_and_a_threshold(tiny, tmp_path, capsys):
    image = tiny.tile / "test/good/001.png"
    rc, stdout, lines = run_cli(capsys, "dadnet", "predict", "--run", tiny.run, "--images", image,
                                "--out", tmp_path / "out", "--threshold", "0", "--batch-size", "1")
    assert rc == 0 and lines == []
    assert "threshold 0 (--threshold)" in stdout and "1 image, 1 anomalous" in stdout
    row = read_rows(tmp_path / "out")[str(image)]
    assert row["decision"] == "anomalous" and row["mask"] == "masks/001.png"
    assert np.asarray(Image.open(tmp_path / "out" / row["mask"])).min() == 255  # every pixel >= 0


def test_outputs_inside_the_images_folder_are_not_scored_again(tiny, tmp_path):
    images = Path(shutil.copytree(tiny.tile / "test/good", tmp_path / "images"))
    for _ in range(2):
        rows = predict_images(tiny.run, images, images / "results", progress=False, announce=lambda _: None)
    assert [Path(row["path"]).name for row in rows] == ["000.png", "001.png"]


# ---- bad inputs: one line, nothing lost --------------------------------------------------------------
BAD_INPUTS = {
    # id: (how to change a valid argv, words the one line must hold)
    "empty-folder": (lambda a, p: {**a, "--images": p["empty"]}, ("no images found",)),
    "no-such-path": (lambda a, p: {**a, "--images": p["tmp"] / "nowhere"}, ("no such file or folder",)),
    "defect-gan-run": (lambda a, p: {**a, "--run": p["dg_run"]}, ("defect-gan run folder", "expected a dadnet")),
    "run-without-checkpoint": (lambda a, p: {**a, "--run": p["no_checkpoint"]}, ("no checkpoint",)),
    "damaged-thresholds": (lambda a, p: {**a, "--run": p["damaged"]}, ("thresholds.json", "calibrate again")),
    "threshold-negative": (lambda a, p: {**a, "--threshold": "-0.1"}, ("--threshold", "-0.1")),
    "threshold-above-one": (lambda a, p: {**a, "--threshold": "1.5"}, ("--threshold", "from 0 to 1")),
    "threshold-nan": (lambda a, p: {**a, "--threshold": "nan"}, ("--threshold", "nan")),
    "threshold-inf": (lambda a, p: {**a, "--threshold": "inf"}, ("--threshold", "inf")),
    "threshold-word": (lambda a, p: {**a, "--threshold": "high"}, ("--threshold", "high")),
    "batch-size-zero": (lambda a, p: {**a, "--batch-size": "0"}, ("--batch-size", "at least 1")),
    "out-is-a-file": (lambda a, p: {**a, "--out": p["file"]}, ("--out", "is a file")),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_loses_nothing(case, tiny, tmp_path, capsys):
    change, words = BAD_INPUTS[case]
    places = {"tmp": tmp_path, "empty": tmp_path / "empty", "dg_run": defect_gan_run(tmp_path / "dg_run"),
              "file": tmp_path / "notes.txt"}
    places["empty"].mkdir()
    places["file"].write_text("a user's notes\n")
    if case == "run-without-checkpoint":
        places["no_checkpoint"] = copy_run(tiny.run, tmp_path / "no_checkpoint")
        for checkpoint in places["no_checkpoint"].glob("checkpoint_*"):
            checkpoint.unlink()
    if case == "damaged-thresholds":
        places["damaged"] = copy_run(tiny.run, tmp_path / "damaged")
        (places["damaged"] / "thresholds.json").write_text('{"image": {"threshold": NaN}}')
    out = tmp_path / "out"  # an earlier prediction, which a refused one must leave as it was
    predict_images(tiny.run, tiny.tile / "test/good", out, progress=False, announce=lambda _: None)
    argv = {"--run": tiny.run, "--images": tiny.tile / "test/crack", "--out": out}
    argv = change(argv, places)
    guarded = [out, tiny.run, places["file"], argv["--run"]]
    before = [digest(path) for path in guarded]

    rc, _, lines = run_cli(capsys, "dadnet", "predict", *[str(x) for pair in argv.items() for x in pair])

    assert_one_line_error(rc, lines, *words)
    assert [digest(path) for path in guarded] == before
