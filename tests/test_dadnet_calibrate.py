"""``dadnet calibrate``: thresholds chosen by a stated rule on a team's images, stored in the run, used by
``predict --threshold auto``.

The rules are checked against computations made here from ``dadnet eval``'s own predictions: the
``1 - rate`` quantile of the good images' scores and pixels, and the F1-optimal cut found by trying
every threshold (brute force).
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bad_inputs_support import digest
from dadnet_predict_support import assert_one_line_error, build_tiny_run, copy_run, defect_gan_run, run_cli
from paper_repro.dadnet.evaluate import evaluate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("dadnet_calibrate"))


@pytest.fixture(scope="module")
def eval_predictions(tiny):
    """``dadnet eval``'s predictions on the tile test split (2 good and 10 defective images)."""
    return evaluate(tiny.run, progress=False, write=False)[1]


@pytest.fixture
def run(tiny, tmp_path) -> Path:
    return copy_run(tiny.run, tmp_path / "run")


@pytest.fixture
def bad_folder(tiny, tmp_path) -> Path:
    """The test split's defective images in their own folder, one sub-folder per defect type; their
    masks are tile/ground_truth/<type>/<stem>_mask.png, which mirrors it."""
    bad = tmp_path / "bad"
    for kind in (p for p in (tiny.tile / "test").iterdir() if p.name != "good"):
        shutil.copytree(kind, bad / kind.name)
    return bad


def best_f1_by_brute_force(scores: torch.Tensor, truth: torch.Tensor) -> tuple[float, dict[float, float]]:
    """The largest F1 of ``scores >= t`` over every distinct score t, and the F1 of each t."""
    scores, truth = scores.reshape(-1).double(), truth.reshape(-1).round().bool()
    f1_of = {}
    for t in torch.unique(scores).tolist():
        flagged = scores >= t
        tp, fp, fn = (int((flagged & truth).sum()), int((flagged & ~truth).sum()), int((~flagged & truth).sum()))
        f1_of[t] = 2 * tp / (2 * tp + fp + fn)
    return max(f1_of.values()), f1_of


def test_good_only_picks_the_false_alarm_quantile(tiny, run, eval_predictions, capsys):
    rc, stdout, lines = run_cli(capsys, "dadnet", "calibrate", "--run", run, "--good", tiny.tile / "test/good",
                                "--false-alarm-rate", "0.05")
    assert rc == 0 and lines == []
    stored = json.loads((run / "thresholds.json").read_text())
    good = eval_predictions["label"] == 0
    expected_image = np.quantile(eval_predictions["score"][good].double().numpy(), 0.95)
    expected_pixel = np.quantile(eval_predictions["pred"][good].double().numpy().ravel(), 0.95)
    assert stored["image"]["rule"] == stored["pixel"]["rule"] == "false_alarm_rate"
    assert stored["image"]["threshold"] == pytest.approx(expected_image, abs=1e-7)
    assert stored["pixel"]["threshold"] == pytest.approx(expected_pixel, abs=1e-7)
    assert stored["image"]["n_normal"] == 2 and stored["pixel"]["n_normal"] == 2 * 32 * 32
    assert "5.00% false-alarm rate on 2 normal images" in stdout and "too few" in stdout


def test_bad_and_masks_pick_the_f1_optimal_thresholds(tiny, run, bad_folder, eval_predictions, capsys):
    rc, stdout, lines = run_cli(capsys, "dadnet", "calibrate", "--run", run, "--good", tiny.tile / "test/good",
                                "--bad", bad_folder, "--masks", tiny.tile / "ground_truth")
    assert rc == 0 and lines == []
    stored = json.loads((run / "thresholds.json").read_text())
    for level, scores, truth in (("image", eval_predictions["score"], eval_predictions["label"]),
                                 ("pixel", eval_predictions["pred"], eval_predictions["mask"])):
        best, f1_of = best_f1_by_brute_force(scores, truth)
        entry = stored[level]
        assert entry["rule"] == "f1_optimal"
        assert entry["f1"] == pytest.approx(best, abs=1e-9)
        assert f1_of[entry["threshold"]] == pytest.approx(best, abs=1e-9)  # a threshold that reaches it
    assert stored["image"]["n_normal"] == 2 and stored["image"]["n_defective"] == 10
    assert stored["checkpoint"] == "checkpoint_00000001.safetensors" and stored["masks"].endswith("ground_truth")
    assert "F1-optimal over 2 normal and 10 defective images" in stdout


def test_bad_without_masks_sets_the_image_threshold_only_by_f1(tiny, run, bad_folder, eval_predictions, capsys):
    rc, _, _ = run_cli(capsys, "dadnet", "calibrate", "--run", run, "--good", tiny.tile / "test/good",
                       "--bad", bad_folder)
    stored = json.loads((run / "thresholds.json").read_text())
    assert rc == 0
    assert stored["image"]["rule"] == "f1_optimal" and stored["pixel"]["rule"] == "false_alarm_rate"
    assert stored["pixel"]["false_alarm_rate"] == 0.01


def test_predict_auto_uses_the_stored_thresholds(tiny, run, bad_folder, tmp_path, capsys):
    run_cli(capsys, "dadnet", "calibrate", "--run", run, "--good", tiny.tile / "test/good", "--bad", bad_folder,
            "--masks", tiny.tile / "ground_truth")
    stored = json.loads((run / "thresholds.json").read_text())
    out = tmp_path / "out"
    rc, stdout, lines = run_cli(capsys, "dadnet", "predict", "--run", run, "--images", tiny.tile / "test",
                                "--out", out)
    assert rc == 0 and lines == []
    first = stdout.splitlines()[0]
    assert first.startswith(f"thresholds from {run / 'thresholds.json'} (calibrated {stored['created']}")
    assert "F1-optimal" in first and f"{stored['image']['threshold']:.4g}" in first
    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    image_cut, pixel_cut = stored["image"]["threshold"], stored["pixel"]["threshold"]
    for row in rows:
        assert float(row["image_threshold"]) == image_cut and float(row["pixel_threshold"]) == pixel_cut
        assert row["decision"] == ("anomalous" if float(row["image_score"]) >= image_cut else "normal")
        probability = np.asarray(Image.open(out / row["map"]), dtype=np.float64) / 65535
        flagged = np.asarray(Image.open(out / row["mask"])) == 255
        clear = np.abs(probability - pixel_cut) > 1e-4  # away from the 16-bit rounding of the cut
        assert np.array_equal(flagged[clear], (probability >= pixel_cut)[clear])


def test_stale_calibration_is_named(tiny, run, capsys):
    run_cli(capsys, "dadnet", "calibrate", "--run", run, "--good", tiny.tile / "test/good")
    shutil.copy(run / "checkpoint_00000001.safetensors", run / "checkpoint_00000002.safetensors")
    rc, stdout, _ = run_cli(capsys, "dadnet", "predict", "--run", run, "--images", tiny.tile / "test/good",
                            "--out", run.parent / "out")
    assert rc == 0 and "latest checkpoint is now checkpoint_00000002.safetensors: calibrate again" in stdout


# ---- bad inputs: one line, the run folder untouched -------------------------------------------------
BAD_INPUTS = {
    "masks-without-bad": (("--masks", "{masks}"), ("--masks", "--bad")),
    "rate-zero": (("--false-alarm-rate", "0"), ("--false-alarm-rate", "between 0 and 1")),
    "rate-one": (("--false-alarm-rate", "1"), ("--false-alarm-rate",)),
    "rate-nan": (("--false-alarm-rate", "nan"), ("--false-alarm-rate", "nan")),
    "empty-good": (("--good", "{empty}"), ("no images found",)),
    "bad-mask-missing": (("--bad", "{bad}", "--masks", "{empty}"), ("has no mask", "_mask.png")),
    "bad-mask-wrong-size": (("--bad", "{bad}", "--masks", "{small_masks}"), ("mask is 8x8", "same size")),
    "unreadable-good-image": (("--good", "{broken}"), ("cannot read image",)),
    "defect-gan-run": (("--run", "{dg_run}"), ("defect-gan run folder",)),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_leaves_the_run(case, tiny, run, bad_folder, tmp_path, capsys):
    extra, words = BAD_INPUTS[case]
    (tmp_path / "empty").mkdir()
    small_masks = tmp_path / "small_masks"
    for image in bad_folder.rglob("*.png"):
        target = small_masks / image.relative_to(bad_folder).with_name(f"{image.stem}_mask.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8)).save(target)
    broken = tmp_path / "broken"
    shutil.copytree(tiny.tile / "test/good", broken)
    (broken / "zz.png").write_bytes(b"\x89PNG truncated")
    places = {"masks": tiny.tile / "ground_truth", "empty": tmp_path / "empty", "bad": bad_folder,
              "small_masks": small_masks, "broken": broken, "dg_run": defect_gan_run(tmp_path / "dg_run")}
    argv = {"--run": str(run), "--good": str(tiny.tile / "test/good")}
    argv.update(zip(extra[::2], (value.format(**places) for value in extra[1::2])))
    before = digest(run)

    rc, _, lines = run_cli(capsys, "dadnet", "calibrate", *[x for pair in argv.items() for x in pair])

    assert_one_line_error(rc, lines, *words)
    assert digest(run) == before and not (run / "thresholds.json").exists()


def test_an_f1_optimal_cut_that_flags_every_image_says_so():
    """With many more defective than normal images F1 can prefer flagging everything; the line says so."""
    import torch

    from paper_repro.dadnet.calibrate import describe_rule, f1_optimal, flags_everything

    # 2 normal images scoring among 8 defective ones: any cut that spares a normal image misses defects
    scores = torch.tensor([0.30, 0.50, 0.20, 0.25, 0.35, 0.40, 0.45, 0.55, 0.60, 0.65])
    truth = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    entry = f1_optimal(scores, truth)
    assert entry["threshold"] <= scores.min().item() and entry["recall"] == 1 and entry["precision"] == pytest.approx(0.8)
    assert flags_everything(entry) and "flags every one of them" in describe_rule(entry, "images")
    separable = f1_optimal(torch.tensor([0.1, 0.2, 0.6, 0.7]), torch.tensor([0, 0, 1, 1]))
    assert not flags_everything(separable) and "flags every" not in describe_rule(separable, "images")
