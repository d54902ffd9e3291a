"""DADNet's comparison (Tables 1-3) and ablation (Table 4), run and tabulated beside the paper.

Each scale has a :class:`Plan`: which categories, how DADNet's shared runs are sized, how long the
baselines train, which backbones. Every method's predictions go through
:func:`paper_repro.baselines.scoring.score_predictions`; runs ``r = 0 .. runs-1`` use seed
``seed + r`` and the tables show their mean (the paper averages three runs, §3.4.1).

DADNet's runs come from :func:`paper_repro.dadnet.trainer.pretrained_or_train` (cached by config, so
chapters with the same plan share them); a baseline's predictions are cached under
``cache_dir()/runs/baseline-<hash>/``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch

from paper_repro import training as T
from paper_repro.baselines import anomalib_models as A
from paper_repro.baselines.scoring import EXTRA_METRICS, METRICS, score_predictions, threshold_for
from paper_repro.config import get_config

# DADNet's Table 4 rows: (experiment, pseudo-anomaly source, DRAM on).
ABLATION = (
    ("Baseline+DGM", "dgm", False),
    ("Baseline+SDGM", "sdgm", False),
    ("Baseline+DGM+DRAM", "dgm", True),
    ("DADNet", "sdgm", True),
)
TABLE_OF_METRIC = {"image_auroc": "dadnet.table1", "pixel_auroc": "dadnet.table2", "pixel_f1": "dadnet.table3"}
METRIC_TITLES = {"image_auroc": "image AUROC (%)", "pixel_auroc": "pixel AUROC (%)", "pixel_f1": "pixel F1, eq. (20) (%)",
                 "pixel_ap": "pixel AP (%)", "pixel_f1_max": "pixel F1-max (%)"}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the results chapters run at one scale."""

    categories: tuple[str, ...]                 # Tables 1-3
    ablation_categories: tuple[str, ...]        # Table 4 (averaged over these)
    dadnet: dict[str, Any]                      # overrides of get_config("dadnet", scale)
    baseline_epochs: dict[str, int]             # per trained baseline (PaDiM makes one pass)
    backbones: dict[str, str]                   # per baseline
    pretrained: bool                            # ImageNet backbones (True needs the weights)
    baseline_batch: int = 8


_R18 = {m: "resnet18" for m in A.METHODS}
PLANS: dict[str, Plan] = {
    # CI: one category, DADNet's own smoke profile (32 px, 2 epochs), one baseline epoch.
    "smoke": Plan(categories=("tile",), ablation_categories=("tile",), dadnet={},
                  baseline_epochs={"FastFlow": 1, "RD": 1, "STFPM": 1}, backbones=_R18, pretrained=False,
                  baseline_batch=4),
    # The book on a laptop CPU: the DADNet demo's categories at 64 px; DADNet 12 epochs of 20 steps (the
    # 400/600-of-700 decay points scaled to 7 and 10). About a minute per DADNet run on 2 quiet cores;
    # at the paper's lr 1e-4 DGM+DRAM reached ~80 image AUROC on tile by then (measured: 64.6 / 80.6 /
    # 86.0 at 5 / 10 / 15 epochs before any decay); the demo profile's lr 1e-3 learns faster.
    "demo": Plan(categories=get_config("dadnet", "demo").categories, ablation_categories=("tile",),
                 dadnet=dict(image_size=64, epochs=12, lr_milestones=(7, 10)),
                 baseline_epochs={"FastFlow": 10, "RD": 10, "STFPM": 10}, backbones=_R18, pretrained=False),
    # The paper: eight MVTec AD categories, 256 px, DADNet's full schedule, ImageNet backbones
    # (anomalib's defaults: ResNet-18, Wide ResNet-50 for RD); epochs of the methods' own papers.
    "full": Plan(categories=get_config("dadnet", "full").categories,
                 ablation_categories=get_config("dadnet", "full").categories, dadnet={},
                 baseline_epochs={"FastFlow": 500, "RD": 200, "STFPM": 100},
                 backbones={**_R18, "RD": "wide_resnet50_2"}, pretrained=True),
}


def plan_for(scale: str) -> Plan:
    return PLANS[scale]


def dadnet_config(scale: str, seed: int = 42):
    return get_config("dadnet", scale, **{**plan_for(scale).dadnet, "seed": seed})


def default_runs(scale: str) -> int:
    """The paper's three runs at ``full``; the DADNet profile's ``runs`` elsewhere (1)."""
    return get_config("dadnet", scale).runs


def baseline_config(method: str, scale: str, seed: int = 42, pretrained: bool | str | None = None) -> A.BaselineConfig:
    plan = plan_for(scale)
    return A.BaselineConfig(method=method, backbone=plan.backbones[method],
                            image_size=dadnet_config(scale).image_size, batch_size=plan.baseline_batch,
                            epochs=plan.baseline_epochs.get(method, 1),
                            pretrained=plan.pretrained if pretrained is None else pretrained, seed=seed)


def data_key(data_root: str | Path | None, scale: str) -> str:
    """How DADNet's cached runs name their data (so baselines and DADNet runs key the same way)."""
    return str(data_root or f"bundled-{scale}")


# ------------------------------------------------------------------------------------------
# Predictions of one method on one category (keys: score, pred, label, mask)
# ------------------------------------------------------------------------------------------

def dadnet_predictions(scale: str, category: str, pseudo: str = "sdgm", dram: bool = True,
                       data_root: str | Path | None = None, device: str = "cpu", seed: int = 42,
                       progress: bool = True) -> dict[str, torch.Tensor]:
    """Train (or reuse) DADNet's cached run and predict the category's test split."""
    from paper_repro.dadnet.evaluate import evaluate
    from paper_repro.dadnet.trainer import pretrained_or_train

    overrides = {**plan_for(scale).dadnet, "seed": seed}
    run_dir = pretrained_or_train(scale, category, pseudo=pseudo, dram=dram, data_root=data_root,
                                  device=device, progress=progress, **overrides)
    _, pred = evaluate(run_dir, data_root, category, device=device, progress=progress)
    return pred


def baseline_predictions(cfg: A.BaselineConfig, category: str, root: Path, data: str,
                         device: str = "cpu", progress: bool = True) -> dict[str, torch.Tensor]:
    """Train ``cfg.method`` on ``root/category/train/good`` and predict its test split (cached)."""
    from safetensors.torch import load_file, save_file

    from paper_repro.data import MVTecAD

    run_dir = T.cached_run_dir("baseline", cfg, category=category, data=data,
                               anomalib=A.anomalib_version())
    path = run_dir / "predictions.safetensors"
    if path.is_file():
        return load_file(str(path))
    T.seed_everything(cfg.seed)
    model = A.build(cfg)
    A.fit(model, cfg, MVTecAD(root, category, "train", image_size=cfg.image_size), device, progress)
    pred = A.predict(model, MVTecAD(root, category, "test", image_size=cfg.image_size), cfg.batch_size,
                     device, progress)
    pred = {k: v.contiguous() for k, v in pred.items() if k != "image"}
    T.write_run_config(run_dir, cfg, category=category, data=data, anomalib=A.anomalib_version())
    tmp = path.with_suffix(".tmp")
    save_file(pred, str(tmp))
    tmp.replace(path)
    return pred


# ------------------------------------------------------------------------------------------
# Tables 1-3 and Table 4
# ------------------------------------------------------------------------------------------

def _row(method: str, category: str, run: int, pred: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {"method": method, "category": category, "run": run,
            **score_predictions(pred, threshold_for(method))}


def comparison(scale: str, runs: int | None = None, methods: Iterable[str] = (*A.METHODS, "DADNet"),
               data_root: str | Path | None = None, device: str = "cpu", seed: int = 42,
               pretrained: bool | str | None = None, progress: bool = True,
               keep: dict | None = None) -> pd.DataFrame:
    """Tables 1-3 measured: one row per (method, category, run) with every metric (percent).

    ``data_root`` None = the bundled set. ``keep``, a dict, receives each method's predictions of the
    first run (``keep[(method, category)]``) for pictures."""
    from paper_repro.data import bundled_root

    plan = plan_for(scale)
    runs = runs or default_runs(scale)
    root = Path(data_root) if data_root else bundled_root("mvtec", scale)
    rows = []
    for run in range(runs):
        for category in plan.categories:
            for method in methods:
                if method == "DADNet":
                    pred = dadnet_predictions(scale, category, data_root=data_root, device=device,
                                              seed=seed + run, progress=progress)
                else:
                    cfg = baseline_config(method, scale, seed + run, pretrained)
                    pred = baseline_predictions(cfg, category, root, data_key(data_root, scale), device, progress)
                rows.append(_row(method, category, run, pred))
                if keep is not None and run == 0:
                    keep[(method, category)] = pred
    return pd.DataFrame(rows)


def ablation(scale: str, runs: int | None = None, data_root: str | Path | None = None, device: str = "cpu",
             seed: int = 42, progress: bool = True) -> pd.DataFrame:
    """Table 4 measured: one row per (experiment, category, run), same budget and seed for all four."""
    plan = plan_for(scale)
    rows = []
    for run in range(runs or default_runs(scale)):
        for category in plan.ablation_categories:
            for experiment, pseudo, dram in ABLATION:
                pred = dadnet_predictions(scale, category, pseudo, dram, data_root, device, seed + run, progress)
                rows.append({**_row(experiment, category, run, pred), "experiment": experiment})
    return pd.DataFrame(rows)


def mean_over_runs(frame: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Mean over runs per (``by``, category), plus an ``average`` category (mean over categories)."""
    values = [m for m in (*METRICS, *EXTRA_METRICS) if m in frame]
    per_cat = frame.groupby([by, "category"], sort=False)[values].mean().reset_index()
    average = per_cat.groupby(by, sort=False)[values].mean().reset_index().assign(category="average")
    return pd.concat([per_cat, average], ignore_index=True)


def spread_over_runs(frame: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Standard deviation over runs of each metric, per ``by`` (averaged over categories)."""
    values = [m for m in (*METRICS, *EXTRA_METRICS) if m in frame]
    per_cat = frame.groupby([by, "category"], sort=False)[values].std(ddof=0).reset_index()
    return per_cat.groupby(by, sort=False)[values].mean().reset_index()


def with_published(table: pd.DataFrame, metric: str, plan: Plan) -> pd.DataFrame:
    """Add the anomalib README's number (backbone of ``plan``) beside the paper's, where it has one."""
    from paper_repro.baselines.published import published_table

    readme_name = {"resnet18": "ResNet-18", "wide_resnet50_2": "Wide ResNet-50"}
    published = published_table(metric)
    keep = [(m, readme_name.get(b)) for m, b in plan.backbones.items()]
    published = published[[(m, b) in keep for m, b in zip(published["method"], published["backbone"])]]
    average = published.groupby(["method", "backbone"], sort=False)[metric].mean().reset_index()
    published = pd.concat([published, average.assign(category="average")], ignore_index=True)
    published = published.rename(columns={metric: "anomalib README", "backbone": "README backbone"})
    out = table.merge(published[["category", "method", "anomalib README", "README backbone"]],
                      on=["category", "method"], how="left")
    out = out[["category", "method", "paper", "anomalib README", "README backbone", "this run", "source"]]
    out.attrs = dict(table.attrs)
    return out


def side_by_side_tables(frame: pd.DataFrame, run_info, plan: Plan | None = None) -> dict[str, pd.DataFrame]:
    """``{metric: paper beside this run}`` for Tables 1-3 (long form, the paper's row order)."""
    from paper_repro.results import paper_table, side_by_side

    means = mean_over_runs(frame)
    tables = {}
    for metric, key in TABLE_OF_METRIC.items():
        table = side_by_side(paper_table(key), means, on=["category", "method"], value=metric, run_info=run_info)
        tables[metric] = with_published(table, metric, plan) if plan is not None else table
    return tables


def table4(frame: pd.DataFrame, run_info) -> dict[str, pd.DataFrame]:
    """``{metric: paper beside this run}`` for Table 4 (averages over the plan's categories)."""
    from paper_repro.results import paper_table, side_by_side

    means = mean_over_runs(frame, by="experiment")
    means = means[means["category"] == "average"]
    return {metric: side_by_side(paper_table("dadnet.table4"), means, on=["experiment"], value=metric,
                                 run_info=run_info) for metric in METRICS}


def wide(table: pd.DataFrame, index: str = "category", columns: str = "method") -> pd.DataFrame:
    """A long paper-beside-run table as ``index`` x (``columns`` x {paper, this run}) for reading."""
    value_cols = [c for c in ("paper", "this run", "anomalib README") if c in table]
    out = table.pivot_table(index=index, columns=columns, values=value_cols, sort=False)
    out = out.swaplevel(0, 1, axis=1)
    order = list(dict.fromkeys(table[columns]))
    out = out.reindex(columns=[(m, v) for m in order for v in value_cols if (m, v) in out.columns])
    return out.reindex([i for i in dict.fromkeys(table[index]) if i in out.index])
