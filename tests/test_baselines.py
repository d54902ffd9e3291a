"""The baselines of DADNet's Tables 1-3: one scoring path, anomalib models on the project's loaders,
published numbers as data, runs averaged."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch

from paper_repro.baselines import anomalib_models
from paper_repro.baselines.anomalib_models import METHODS
from paper_repro.config import SCALES, get_config
from paper_repro.data.roots import DataSource
from paper_repro.evaluation import metrics, scoring
from paper_repro.experiments import dadnet_table4, dadnet_tables_1_3, detectors
from paper_repro.results import RunInfo
from paper_repro.results.papers import DADNET_CATEGORIES
from paper_repro.results.published import ANOMALIB_README, README_SECTIONS, _README_DIR

HAS_ANOMALIB = importlib.util.find_spec("anomalib") is not None
needs_anomalib = pytest.mark.skipif(not HAS_ANOMALIB, reason="anomalib is not installed (pip install '.[baselines]')")


def fake_predictions(seed: int, n: int = 8, size: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    label = torch.tensor([0, 1] * (n // 2))
    mask = torch.zeros(n, 1, size, size)
    mask[label == 1, :, 4:9, 4:9] = 1
    pred = (0.6 * mask + 0.4 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)
    return {"score": pred.flatten(1).amax(1), "pred": pred, "label": label, "mask": mask}


def test_every_column_goes_through_the_same_metric_functions(monkeypatch):
    """Each baseline's and DADNet's predictions reach the evaluation metrics' image_auroc, pixel_auroc and
    pixel_f1 - the functions DADNet's own evaluation uses - and nothing else scores them."""
    preds = {m: fake_predictions(i) for i, m in enumerate((*METHODS, "DADNet"))}
    monkeypatch.setattr(dadnet_tables_1_3, "dadnet_predictions", lambda *a, **k: preds["DADNet"])
    monkeypatch.setattr(dadnet_tables_1_3, "baseline_predictions", lambda cfg, *a, **k: preds[cfg.method])
    returned: dict[str, list[float]] = {"image_auroc": [], "pixel_auroc": [], "pixel_f1": []}
    for name in returned:
        original = getattr(metrics, name)

        def recording(*args, _name=name, _original=original, **kwargs):
            value = _original(*args, **kwargs)
            returned[_name].append(value)
            return value

        monkeypatch.setattr(metrics, name, recording)
    frame = dadnet_tables_1_3.comparison("smoke", DataSource(Path("unused"), "unused", "mvtec", True), runs=1,
                                         progress=False)
    assert sorted(frame["method"]) == sorted(preds)
    # pixel_f1 is called three times a method: the one rule, the one rule with good images, the method's own rule
    returned["pixel_f1"] = returned["pixel_f1"][0::3]
    for name, values in returned.items():
        assert len(values) == len(preds)  # one call per column, for every method alike
        # every number in the table is what paper_repro.metrics returned, row by row
        assert list(frame[name]) == pytest.approx([100 * v for v in values])
    # DADNet's row: every map cut by the one rule; its own rule (0.5 on M_p, DADNet's own evaluation) beside
    ours = frame[frame["method"] == "DADNet"].iloc[0]
    one = scoring.score_predictions(preds["DADNet"], scoring.ONE_RULE)
    own = scoring.score_predictions(preds["DADNet"], 0.5)
    for key in ("image_auroc", "pixel_auroc", "pixel_f1", "pixel_ap", "pixel_f1_max", "pixel_f1_with_good"):
        assert ours[key] == pytest.approx(one[key])
    assert ours["pixel_f1_own_rule"] == pytest.approx(own["pixel_f1"])


def test_f1_adaptive_threshold_maximises_pixel_f1():
    maps = torch.tensor([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    masks = torch.tensor([0, 0, 0, 1, 1, 1])
    cut = scoring.f1_adaptive_threshold(maps, masks)
    assert cut == pytest.approx(0.4)
    assert metrics.pixel_f1(maps[None], masks[None], threshold=cut) == pytest.approx(1.0)
    assert scoring.threshold_for("DADNet") == 0.5 and scoring.threshold_for("Baseline+DGM") == 0.5
    assert scoring.threshold_for("PaDiM") == "f1_adaptive"


def test_score_predictions_in_percent_and_threshold_rules():
    pred = fake_predictions(0)
    values = scoring.score_predictions(pred, 0.5, own_threshold="f1_adaptive")
    assert set(values) == {*scoring.METRICS, *scoring.EXTRA_METRICS}
    assert values["image_auroc"] == pytest.approx(100.0) and values["pixel_auroc"] == pytest.approx(100.0)
    # raw scores far outside [0, 1] (e.g. Mahalanobis distances): normalised first, so torchmetrics does
    # not squash them with a sigmoid into ties at 1.0
    scaled = {**pred, "pred": pred["pred"] * 400 + 50, "score": pred["score"] * 400 + 50}
    adaptive = scoring.score_predictions(scaled, "f1_adaptive")
    assert adaptive["pixel_f1"] == pytest.approx(100.0)
    assert adaptive["pixel_auroc"] == pytest.approx(100.0) and adaptive["image_auroc"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="f1_adaptive"):
        scoring.score_predictions(scaled, 0.5)


def test_runs_are_averaged_with_an_average_row():
    frame = pd.DataFrame([
        {"method": "PaDiM", "category": "tile", "run": 0, "image_auroc": 80.0, "pixel_auroc": 90.0, "pixel_f1": 10.0},
        {"method": "PaDiM", "category": "tile", "run": 1, "image_auroc": 90.0, "pixel_auroc": 92.0, "pixel_f1": 20.0},
        {"method": "PaDiM", "category": "wood", "run": 0, "image_auroc": 70.0, "pixel_auroc": 80.0, "pixel_f1": 30.0},
        {"method": "PaDiM", "category": "wood", "run": 1, "image_auroc": 70.0, "pixel_auroc": 80.0, "pixel_f1": 30.0},
    ])
    means = detectors.mean_over_runs(frame).set_index("category")
    assert means.loc["tile", "image_auroc"] == pytest.approx(85.0)
    assert means.loc["average", "image_auroc"] == pytest.approx(77.5)
    assert detectors.spread_over_runs(frame).iloc[0]["image_auroc"] == pytest.approx(2.5)


def test_tables_keep_the_papers_rows_and_add_this_run_and_the_readme():
    frame = pd.DataFrame([{"method": m, "category": "tile", "run": 0, "image_auroc": 50.0, "pixel_auroc": 60.0,
                           "pixel_f1": 5.0} for m in (*METHODS, "DADNet")])
    tables = dadnet_tables_1_3.side_by_side_tables(frame, RunInfo("smoke", "bundled", "cpu"),
                                                   get_config("baselines", "smoke"))
    t1 = tables["image_auroc"]
    assert list(t1.columns) == ["category", "method", "paper", "anomalib README", "README backbone", "this run",
                                "source"]
    assert len(t1) == 9 * 5  # eight categories and the average, five methods, in the paper's order
    row = t1[(t1["category"] == "tile") & (t1["method"] == "STFPM")].iloc[0]
    assert (row["paper"], row["anomalib README"], row["this run"]) == (94.9, 94.9, 50.0)
    assert "scale=smoke" in t1.attrs["run_info"]
    wide = dadnet_tables_1_3.wide(t1)
    assert wide.loc["tile", ("DADNet", "this run")] == 50.0


def test_ablation_rows_are_the_papers_four():
    rows = dadnet_table4.ABLATION
    assert [e for e, _, _ in rows] == ["Baseline+DGM", "Baseline+SDGM", "Baseline+DGM+DRAM", "DADNet"]
    frame = pd.DataFrame([{"experiment": e, "method": e, "category": "tile", "run": 0, "image_auroc": 70.0,
                           "pixel_auroc": 80.0, "pixel_f1": 9.0} for e, _, _ in rows])
    tables = dadnet_table4.table4(frame, RunInfo("smoke", "bundled", "cpu"))
    assert list(tables["pixel_f1"]["paper"]) == [25.4, 60.9, 67.9, 70.2]
    assert list(tables["pixel_f1"]["this run"]) == [9.0] * 4


def test_plans_cover_every_scale_and_full_is_the_paper():
    assert all(get_config("baselines", scale) for scale in SCALES)
    full = get_config("baselines", "full")
    assert full.categories == DADNET_CATEGORIES and full.pretrained
    assert detectors.dadnet_config("full") == get_config("dadnet", "full")
    assert detectors.default_runs("full") == 3 == get_config("dadnet", "full").runs
    assert detectors.dadnet_config("smoke") == get_config("dadnet", "smoke")  # smoke shares DADNet's own runs


def _readme_tables(text: str) -> dict[str, list[list[str]]]:
    out, section = {}, None
    for line in text.splitlines():
        if line.startswith("### "):
            section = line[4:].strip()
        elif section and line.startswith("|"):
            out.setdefault(section, []).append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def _name(backbone: str) -> str:
    return backbone.replace("-", "").replace(" ", "").lower()  # "Wide ResNet50" in FastFlow's README


@needs_anomalib
def test_published_numbers_match_the_installed_anomalib_readmes():
    root = Path(importlib.util.find_spec("anomalib").origin).parent / "models" / "image"
    for (method, backbone, metric), values in ANOMALIB_README.items():
        tables = _readme_tables((root / _README_DIR[method] / "README.md").read_text())
        rows = tables[README_SECTIONS[metric]]
        header = [h.lower().replace(" ", "_") for h in rows[0]]
        if "carpet" in header:  # categories as columns, one row per backbone
            row = next(r for r in rows[2:] if _name(r[0]) == _name(backbone))
            readme = [float(row[header.index(c)]) for c in DADNET_CATEGORIES]
        else:  # categories as rows, one column per backbone
            col = [_name(h) for h in rows[0]].index(_name(backbone))
            by_cat = {r[0].lower(): float(r[col]) for r in rows[2:]}
            readme = [by_cat[c] for c in DADNET_CATEGORIES]
        assert list(values) == pytest.approx([round(100 * v, 1) for v in readme], abs=1e-9), (method, backbone, metric)


def test_paper_columns_that_equal_the_readme_are_found():
    from paper_repro.results.published import matches_paper
    from paper_repro.results import paper_table

    found = matches_paper(paper_table("dadnet.table1"), "image_auroc").set_index(["method", "backbone"])
    assert found.loc[("FastFlow", "ResNet-18"), "equal_categories"] == 8
    assert found.loc[("STFPM", "ResNet-18"), "equal_categories"] == 8
    assert found.loc[("PaDiM", "ResNet-18"), "equal_categories"] < 8


@needs_anomalib
@pytest.mark.parametrize("method", ["FastFlow", "PaDiM", "RD", "STFPM"])
def test_anomalib_baseline_trains_and_predicts_on_the_project_loader(method, tmp_path):

    torch.manual_seed(0)
    n, size = 4, 32

    class Items(torch.utils.data.Dataset):
        def __init__(self, defective: bool):
            self.defective = defective

        def __len__(self):
            return n

        def __getitem__(self, i):
            image = torch.rand(3, size, size)
            mask = torch.zeros(1, size, size)
            if self.defective and i % 2:
                mask[:, 8:16, 8:16] = 1
                image = image * (1 - mask)
            return {"image": image, "mask": mask, "label": int(self.defective and i % 2)}

    cfg = anomalib_models.BaselineConfig(method, image_size=size, batch_size=2, epochs=1, pretrained=False)
    model = anomalib_models.build(cfg)
    anomalib_models.fit(model, cfg, Items(False), progress=False)
    pred = anomalib_models.predict(model, Items(True), batch_size=2, progress=False)
    assert pred["pred"].shape == (n, 1, size, size) and pred["score"].shape == (n,)
    assert torch.isfinite(pred["pred"]).all() and torch.isfinite(pred["score"]).all()
    values = scoring.score_predictions(pred, "f1_adaptive")
    assert all(0 <= v <= 100 for v in values.values())


@needs_anomalib
def test_stfpm_builds_offline_and_backbone_weights_load_from_a_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    from paper_repro.errors import UserError

    anomalib_models.build(anomalib_models.BaselineConfig("STFPM", image_size=32, pretrained=False))   # no download attempted
    weights = timm.create_model("resnet18", pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp_path / "r18.safetensors"))
    model = anomalib_models.build(anomalib_models.BaselineConfig("PaDiM", image_size=32, pretrained=str(tmp_path / "r18.safetensors")))
    loaded = model.feature_extractor.feature_extractor.state_dict()
    assert torch.equal(loaded["conv1.weight"], weights["conv1.weight"])
    assert "weights from r18.safetensors" in anomalib_models.BaselineConfig("PaDiM", pretrained="x/r18.safetensors").describe_backbone()
    with pytest.raises(UserError, match="not found"):
        anomalib_models.build(anomalib_models.BaselineConfig("PaDiM", image_size=32, pretrained=str(tmp_path / "missing.pth")))


def test_cli_tables_passes_runs_and_writes_the_three_tables(monkeypatch, tmp_path, capsys):
    import argparse

    from paper_repro.commands import baselines as cli

    calls = {}

    def fake_comparison(ctx, data, runs, methods, device, seed, pretrained):
        calls.update(scale=ctx.scale, runs=runs, methods=methods, pretrained=pretrained)
        return pd.DataFrame([{"method": m, "category": "tile", "run": r, "image_auroc": 50.0 + r,
                              "pixel_auroc": 60.0, "pixel_f1": 5.0} for m in methods for r in range(runs)])

    monkeypatch.setattr(dadnet_tables_1_3, "comparison", fake_comparison)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["baselines", "tables", "--scale", "smoke", "--runs", "3", "--methods", "PaDiM,DADNet",
                              "--pretrained", "none", "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert calls == {"scale": "smoke", "runs": 3, "methods": ["PaDiM", "DADNet"], "pretrained": False}
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"dadnet_table{i}_baselines.{ext}" for i in (1, 2, 3) for ext in ("csv", "md", "json"))
    table1 = pd.read_csv(tmp_path / "dadnet_table1_baselines.csv")
    assert table1[(table1.category == "tile") & (table1.method == "PaDiM")]["this run"].item() == 51.0  # mean of 3
    assert "runs=3" in capsys.readouterr().out
