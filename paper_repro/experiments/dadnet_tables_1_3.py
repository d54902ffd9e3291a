"""DADNet's Tables 1-3 (§3.4.1): DADNet beside FastFlow, PaDiM, RD and STFPM on the same categories,
image AUROC (Table 1), pixel AUROC (Table 2) and pixel F1, eq. (20) (Table 3), with the anomalib
READMEs' published numbers for the baselines beside the paper's."""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from paper_repro.baselines.anomalib_models import METHODS
from paper_repro.config import BaselinesConfig
from paper_repro.context import RunContext, as_context
from paper_repro.data.roots import DataSource
from paper_repro.evaluation.scoring import METRICS
from paper_repro.experiments.detectors import (baseline_config, baseline_metric_curves, baseline_predictions,
                                               dadnet_config, dadnet_loss_curves, dadnet_metric_curves,
                                               dadnet_predictions, default_runs, mean_over_runs,
                                               metric_curves_converged, per_run_average, scored_row)
from paper_repro.results.papers import paper_table
from paper_repro.results.published import published_table
from paper_repro.results.reading import Verdict, best_of, ordering
from paper_repro.results.tables import side_by_side

TABLE_OF_METRIC = {"image_auroc": "dadnet.table1", "pixel_auroc": "dadnet.table2", "pixel_f1": "dadnet.table3"}
README_BACKBONES = {"resnet18": "ResNet-18", "wide_resnet50_2": "Wide ResNet-50"}


def comparison(ctx: RunContext | str, data: DataSource, runs: int | None = None,
               methods: Iterable[str] = (*METHODS, "DADNet"), device: str = "cpu", seed: int = 42,
               pretrained: bool | str | None = None, progress: bool = True, keep: dict | None = None) -> pd.DataFrame:
    """Tables 1-3 measured: one row per (method, category, run) with every metric (percent).

    ``keep``, a dict, receives each method's predictions of the first run (``keep[(method, category)]``)
    for pictures."""
    plan = as_context(ctx).config("baselines")
    rows = []
    for run in range(runs or default_runs(ctx)):
        for category in plan.categories:
            for method in methods:
                if method == "DADNet":
                    pred = dadnet_predictions(ctx, category, data, device=device, seed=seed + run,
                                              progress=progress)
                else:
                    cfg = baseline_config(method, ctx, seed + run, pretrained)
                    limits = dadnet_config(ctx)
                    pred = baseline_predictions(cfg, category, data, device, progress, limits.train_limit,
                                                limits.test_limit)
                rows.append(scored_row(method, category, run, pred))
                if keep is not None and run == 0:
                    keep[(method, category)] = pred
    return pd.DataFrame(rows)


def with_published(table: pd.DataFrame, metric: str, plan: BaselinesConfig) -> pd.DataFrame:
    """Add the anomalib README's number (the plan's backbone) beside the paper's, where it has one."""
    published = published_table(metric)
    keep = [(m, README_BACKBONES.get(plan.backbone_of(m))) for m in METHODS]
    published = published[[(m, b) in keep for m, b in zip(published["method"], published["backbone"])]]
    average = published.groupby(["method", "backbone"], sort=False)[metric].mean().reset_index()
    published = pd.concat([published, average.assign(category="average")], ignore_index=True)
    published = published.rename(columns={metric: "anomalib README", "backbone": "README backbone"})
    out = table.merge(published[["category", "method", "anomalib README", "README backbone"]],
                      on=["category", "method"], how="left")
    out = out[["category", "method", "paper", "anomalib README", "README backbone", "this run", "source"]]
    out.attrs = dict(table.attrs)
    return out


def side_by_side_tables(frame: pd.DataFrame, run_info, plan: BaselinesConfig | None = None) -> dict[str, pd.DataFrame]:
    """``{metric: paper beside this run}`` for Tables 1-3 (long form, the paper's row order)."""
    means = mean_over_runs(frame)
    tables = {}
    for metric, key in TABLE_OF_METRIC.items():
        table = side_by_side(paper_table(key), means, on=["category", "method"], value=metric, run_info=run_info)
        tables[metric] = with_published(table, metric, plan) if plan is not None else table
    return tables


def wide(table: pd.DataFrame, index: str = "category", columns: str = "method") -> pd.DataFrame:
    """A long paper-beside-run table as ``index`` x (``columns`` x {paper, this run}) for reading."""
    value_cols = [c for c in ("paper", "this run", "anomalib README") if c in table]
    out = table.pivot_table(index=index, columns=columns, values=value_cols, sort=False)
    out = out.swaplevel(0, 1, axis=1)
    order = list(dict.fromkeys(table[columns]))
    out = out.reindex(columns=[(m, v) for m in order for v in value_cols if (m, v) in out.columns])
    return out.reindex([i for i in dict.fromkeys(table[index]) if i in out.index])


# The baselines judged on a learning curve; PaDiM fits a Gaussian in one pass, which more budget does not change.
TRAINED_BASELINES = tuple(m for m in METHODS if m != "PaDiM")


def converged(ctx: RunContext | str, data: DataSource, runs: int, seed: int = 42, device: str = "cpu",
              pretrained: bool | str | None = None) -> bool | str:
    """Has every trained model of Tables 1-3 converged? ``True``, or a sentence naming the run (model,
    category, seed) and the metric still rising, for a verdict's ``converged``.

    Each table's own metric (image AUROC, pixel AUROC, pixel F1) is judged, per category and seed, at the
    milestones of every run the tables score - DADNet's checkpoints and each trained baseline's epochs
    (:func:`~paper_repro.experiments.detectors.metric_curves_converged`: a Newey-West slope over the last
    milestones), never the budget alone; too few milestones (smoke) is not converged. DADNet's training
    loss L_Focal, logged every epoch and cheap to read, must have plateaued too."""
    categories = as_context(ctx).config("baselines").categories
    curves = {metric: {**dadnet_metric_curves(ctx, data, categories, runs, [("sdgm", True)], seed, metric, device),
                       **{run: curve for method in TRAINED_BASELINES
                          for run, curve in baseline_metric_curves(ctx, data, method, categories, runs, seed, metric,
                                                                   device, pretrained).items()}}
              for metric in METRICS}
    return metric_curves_converged(curves, dadnet_loss_curves(ctx, data, categories, runs, [("sdgm", True)], seed))


def verdicts(frame: pd.DataFrame, converged: bool | str = True, baselines_note: str = "") -> list[Verdict]:
    """For each of Tables 1-3: is DADNet the best of the five methods (the metric averaged over the
    categories, per seed), and do the five fall in the paper's order (Kendall's tau)?"""
    out = []
    for metric, key in TABLE_OF_METRIC.items():
        table = f"Table {key[-1]}"
        paper = paper_table(key)
        paper = paper[paper["category"] == "average"].set_index("method")[metric]
        run = per_run_average(frame, metric)
        title = metric.replace("_", " ").replace("auroc", "AUROC").replace("f1", "F1")
        out.append(best_of(table, f"DADNet has the best average {title} of the five methods ({paper['DADNet']:.1f}; "
                           f"next best {paper.drop('DADNet').max():.1f}){baselines_note}", "DADNet", run, True,
                           converged, " pts", paper=paper.to_dict()))
        if len([m for m in paper.index if m in run]) >= 3:
            out.append(ordering(table, f"the five methods rank as in the paper on average {title}",
                                paper.to_dict(), run, lower_is_better=False, converged=converged))
    return out


__all__ = ["TABLE_OF_METRIC", "TRAINED_BASELINES", "comparison", "with_published", "side_by_side_tables", "wide", "converged",
           "verdicts"]
