"""DADNet's Tables 1-4: every model is judged converged on the table's own metrics at its milestones
(DADNet's checkpoints, the baselines' epochs), by a Newey-West slope, never by the budget alone."""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
import torch

from paper_repro.baselines.anomalib_models import BaselineConfig, milestone_epochs
from paper_repro.config import get_config
from paper_repro.dadnet.evaluate import first_of_each_type, predict
from paper_repro.dadnet.trainer import build_model
from paper_repro.data.mvtec import MVTecAD
from paper_repro.data.roots import DataSource
from paper_repro.evaluation.scoring import METRICS
from paper_repro.experiments import dadnet_table4, dadnet_tables_1_3, detectors
from paper_repro.runs.checkpoints import checkpoint_path, save_checkpoint
from paper_repro.runs.folders import write_run_config

needs_anomalib = pytest.mark.skipif(importlib.util.find_spec("anomalib") is None,
                                    reason="anomalib is not installed (pip install '.[baselines]')")


def noisy(level: float, slope: float, epochs, seed: int = 0, sd: float = 1.0) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(e, level + slope * i + rng.gauss(0, sd)) for i, e in enumerate(epochs)]


DEMO_EPOCHS = range(6, 37, 6)


def test_a_rising_auroc_curve_is_still_improving_and_a_flat_noisy_one_passes():
    flat = noisy(90.0, 0.0, DEMO_EPOCHS, sd=1.5)
    rising = noisy(60.0, 6.0, DEMO_EPOCHS, seed=1)
    assert detectors.metric_curves_converged({"image_auroc": {"DADNet/tile/seed 42": flat}}) is True
    reason = detectors.metric_curves_converged({"image_auroc": {"DADNet/tile/seed 42": flat,
                                                                "Baseline+DGM/tile/seed 43": rising}})
    assert reason.startswith("image AUROC of Baseline+DGM/tile/seed 43 still rose")
    assert "epochs 18-36" in reason and "Newey-West" in reason   # the last half of six milestones
    # a metric that falls with more training is no reason to train longer (higher is better)
    assert detectors.metric_curves_converged({"pixel_f1": {"DADNet/tile/seed 42": noisy(60, -6, DEMO_EPOCHS)}}) is True


def test_too_few_milestones_are_not_converged_and_say_so():
    """Smoke's two epochs give two milestones: named, too few to judge (not a pass by budget)."""
    reason = detectors.metric_curves_converged({"image_auroc": {"DADNet/tile/seed 42": [(1, 50.0), (2, 70.0)]},
                                                "pixel_f1": {"STFPM/tile/seed 42": [(1, 3.0)]}})
    assert reason == ("DADNet/tile/seed 42 logged 2 values of image AUROC, too few to judge a trend (need 4) "
                      "(and 1 other curve of the table's models)")


def test_the_loss_is_judged_after_the_metrics():
    flat = {"image_auroc": {"DADNet/tile/seed 42": noisy(90.0, 0.0, DEMO_EPOCHS)}}
    falling = {"DADNet/tile/seed 42": [10.0 * 0.9 ** epoch for epoch in range(36)]}
    assert "L_Focal of DADNet/tile/seed 42 still fell" in detectors.metric_curves_converged(flat, falling)
    assert detectors.metric_curves_converged(flat, {"DADNet/tile/seed 42": [1.0 + 0.01 * (e % 2) for e in range(36)]})


def test_milestones_per_scale():
    """Demo keeps a checkpoint every 4 of 16 epochs (four milestones), full every 100 of 700 (seven);
    a baseline is measured after every epoch up to ten, else every tenth of its epochs."""
    def milestones(scale):
        cfg = get_config("dadnet_tables", scale)
        return [s for s in range(cfg.checkpoint_every, cfg.epochs + 1, cfg.checkpoint_every)
                if s % cfg.milestone_every == 0 or s == cfg.epochs]
    assert milestones("demo") == [4, 8, 12, 16]
    assert milestones("full") == [100, 200, 300, 400, 500, 600, 700]
    assert milestones("smoke") == [1, 2]
    assert milestone_epochs(5) == [1, 2, 3, 4, 5] and milestone_epochs(1) == [1]
    assert milestone_epochs(500) == list(range(50, 501, 50)) and milestone_epochs(200)[:2] == [20, 40]


@pytest.fixture(scope="module")
def tile(synthesized):
    root = synthesized("mvtec", categories=["tile"], size=32, n_train=4, n_test=2)
    return DataSource(root, "test-tile", "mvtec", True)


def fake_dadnet_run(folder: Path, steps) -> Path:
    """A DADNet run folder of random weights: ``run.json`` and one checkpoint per step (epochs 4,
    a milestone every 2 epochs)."""
    cfg = get_config("dadnet", "smoke", image_size=32, recon_width=4, disc_width=4, epochs=4, milestone_every=2)
    write_run_config(folder, cfg, paper="dadnet", dram=True, category="tile")
    for step in steps:
        torch.manual_seed(step)
        model = build_model(cfg)
        save_checkpoint(checkpoint_path(folder, step), step=step,
                        modules={"reconstructive": model.reconstructive, "discriminative": model.discriminative})
    return folder


def test_dadnet_metrics_are_measured_at_each_milestone_checkpoint_and_cached(tile, tmp_path, monkeypatch):
    run = fake_dadnet_run(tmp_path / "dadnet-fake", [2, 3, 4])    # 3 is no milestone
    measured = detectors.dadnet_milestone_metrics(run, tile, "tile")
    assert measured["milestone_epochs"].tolist() == [2, 4]
    assert measured["milestone_metrics"].shape == (2, len(METRICS))
    # each row is the table's own scoring of that checkpoint's predictions on the test split
    cfg = get_config("dadnet", "smoke", image_size=32, recon_width=4, disc_width=4)
    torch.manual_seed(4)
    model = build_model(cfg)
    test = first_of_each_type(MVTecAD(tile.root, "tile", "test", image_size=32), cfg.test_limit)
    expected = detectors.table_metrics(predict(model, test, progress=False))
    assert measured["milestone_metrics"][1].tolist() == pytest.approx(expected, abs=1e-4)
    # a second chapter reads them back: nothing is predicted again
    monkeypatch.setattr(detectors, "dadnet_predict", lambda *a, **k: pytest.fail("measured again"))
    again = detectors.dadnet_milestone_metrics(run, tile, "tile")
    assert torch.equal(again["milestone_metrics"], measured["milestone_metrics"])


@needs_anomalib
def test_a_baseline_records_one_metric_row_per_milestone_epoch(tile):
    cfg = BaselineConfig("STFPM", image_size=32, batch_size=2, epochs=3, pretrained=False)
    outputs = detectors.baseline_outputs(cfg, "tile", tile, progress=False, train_limit=4)
    assert outputs["milestone_epochs"].tolist() == [1, 2, 3]
    rows = outputs["milestone_metrics"]
    assert rows.shape == (3, len(METRICS)) and bool(((rows >= 0) & (rows <= 100)).all())
    # the last milestone is the model the table scores
    assert rows[-1].tolist() == pytest.approx(detectors.table_metrics(outputs), abs=1e-4)
    pred = detectors.baseline_predictions(cfg, "tile", tile, progress=False, train_limit=4)
    assert not set(detectors.CURVE_KEYS) & set(pred) and torch.equal(pred["pred"], outputs["pred"])


def flat_curves(names, seeds=(42, 43)) -> dict[str, list[tuple[int, float]]]:
    return {f"{name}/tile/seed {seed}": noisy(80.0, 0.0, range(1, 7), seed=seed) for name in names for seed in seeds}


def test_tables_1_3_name_the_baseline_whose_curve_still_rises(monkeypatch):
    asked = []

    def baseline_curves(ctx, data, method, categories, runs, seed, metric, device="cpu", pretrained=None):
        asked.append(method)
        curves = flat_curves([method])
        if method == "RD" and metric == "pixel_f1":
            curves["RD/tile/seed 43"] = noisy(20.0, 5.0, range(1, 7))
        return curves

    monkeypatch.setattr(dadnet_tables_1_3, "dadnet_metric_curves", lambda *a, **k: flat_curves(["DADNet"]))
    monkeypatch.setattr(dadnet_tables_1_3, "baseline_metric_curves", baseline_curves)
    monkeypatch.setattr(dadnet_tables_1_3, "dadnet_loss_curves",
                        lambda *a, **k: {"DADNet/tile/seed 42": [1.0, 1.1] * 18})
    reason = dadnet_tables_1_3.converged("demo", None, runs=2)
    assert reason.startswith("pixel F1 of RD/tile/seed 43 still rose")
    assert set(asked) == {"FastFlow", "RD", "STFPM"}   # PaDiM's one-pass fit has no curve


def test_table4_names_the_row_whose_curve_still_rises(monkeypatch):
    def curves(ctx, data, categories, runs, variants, seed, metric, device="cpu"):
        names = [detectors.variant_name(pseudo, dram) for pseudo, dram in variants]
        found = flat_curves(names)
        if metric == "image_auroc":
            found["Baseline+SDGM/tile/seed 42"] = noisy(70.0, 4.0, range(6, 37, 6))
        return found

    monkeypatch.setattr(dadnet_table4, "dadnet_metric_curves", curves)
    monkeypatch.setattr(dadnet_table4, "dadnet_loss_curves", lambda *a, **k: {"DADNet/tile/seed 42": [1.0, 1.1] * 18})
    assert dadnet_table4.converged("demo", None, runs=2).startswith("image AUROC of Baseline+SDGM/tile/seed 42 still rose")
    assert [detectors.variant_name(p, d) for _, p, d in dadnet_table4.ABLATION] == \
        [name for name, _, _ in dadnet_table4.ABLATION]
