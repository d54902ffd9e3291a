"""DADNet's Table 4 (§3.4.3): the ablation of SDGM and DRAM, four rows trained on one budget and seed,
averaged over the ``baselines`` profile's ablation categories."""
from __future__ import annotations

import pandas as pd

from paper_repro.context import RunContext, as_context
from paper_repro.data.roots import DataSource
from paper_repro.evaluation.scoring import METRICS
from paper_repro.experiments.detectors import (dadnet_loss_curves, dadnet_metric_curves, dadnet_predictions,
                                               default_runs, mean_over_runs, metric_curves_converged, per_run_average,
                                               scored_row)
from paper_repro.results.reading import Effect, Verdict, best_of, improvement
from paper_repro.results.papers import paper_table
from paper_repro.results.tables import side_by_side

# DADNet's Table 4 rows: (experiment, pseudo-anomaly source, DRAM on).
ABLATION = (
    ("Baseline+DGM", "dgm", False),
    ("Baseline+SDGM", "sdgm", False),
    ("Baseline+DGM+DRAM", "dgm", True),
    ("DADNet", "sdgm", True),
)


def ablation(ctx: RunContext | str, data: DataSource, runs: int | None = None, device: str = "cpu", seed: int = 42,
             progress: bool = True) -> pd.DataFrame:
    """Table 4 measured: one row per (experiment, category, run), same budget and seed for all four."""
    rows = []
    for run in range(runs or default_runs(ctx)):
        for category in as_context(ctx).config("baselines").ablation_categories:
            for experiment, pseudo, dram in ABLATION:
                pred = dadnet_predictions(ctx, category, data, pseudo, dram, device, seed + run, progress)
                rows.append({**scored_row(experiment, category, run, pred), "experiment": experiment})
    return pd.DataFrame(rows)


def table4(frame: pd.DataFrame, run_info) -> dict[str, pd.DataFrame]:
    """``{metric: paper beside this run}`` for Table 4 (averages over the ablation categories)."""
    means = mean_over_runs(frame, by="experiment")
    means = means[means["category"] == "average"]
    return {metric: side_by_side(paper_table("dadnet.table4"), means, on=["experiment"], value=metric,
                                 run_info=run_info) for metric in METRICS}


def converged(ctx: RunContext | str, data: DataSource, runs: int, seed: int = 42, device: str = "cpu") -> bool | str:
    """Have the four rows' runs converged? ``True``, or a sentence naming the run (row, category, seed) and
    the metric still rising, for a verdict's ``converged``.

    Each of the table's three metrics is judged at every run's milestone checkpoints, per category and seed
    (:func:`~paper_repro.experiments.detectors.metric_curves_converged`: a Newey-West slope over the last
    milestones), never the budget alone; too few milestones (smoke) is not converged. The training loss
    L_Focal, logged every epoch and cheap to read, must have plateaued too."""
    categories = as_context(ctx).config("baselines").ablation_categories
    variants = [(pseudo, dram) for _, pseudo, dram in ABLATION]
    curves = {metric: dadnet_metric_curves(ctx, data, categories, runs, variants, seed, metric, device)
              for metric in METRICS}
    return metric_curves_converged(curves, dadnet_loss_curves(ctx, data, categories, runs, variants, seed))


def verdicts(frame: pd.DataFrame, converged: bool | str = True) -> list[Verdict]:
    """The paper's claims from Table 4, on the metrics averaged over the categories per seed: SDGM beats
    DGM and DRAM helps (image AUROC), and both together are best (each of the three metrics)."""
    t = "Table 4"
    paper = paper_table("dadnet.table4").set_index("experiment")
    image = per_run_average(frame, "image_auroc", by="experiment")

    def claim(better: str, worse: str, what: str) -> Verdict:
        said = (f"{what} ({better} over {worse}: image AUROC {paper.loc[better, 'image_auroc']:.1f} vs "
                f"{paper.loc[worse, 'image_auroc']:.1f})")
        effect = Effect.points(paper.loc[better, "image_auroc"], paper.loc[worse, "image_auroc"], True)
        return improvement(t, said, (better, image[better]), (worse, image[worse]), True, converged, " pts", effect)

    out = [claim("Baseline+SDGM", "Baseline+DGM", "SDGM's pseudo-anomalies beat DGM's"),
           claim("Baseline+DGM+DRAM", "Baseline+DGM", "DRAM improves the baseline")]
    for metric in METRICS:
        title = metric.replace("_", " ").replace("auroc", "AUROC").replace("f1", "F1")
        out.append(best_of(t, f"DADNet (SDGM + DRAM) is the best of the four rows on {title} "
                           f"({paper.loc['DADNet', metric]:.1f} in the paper)", "DADNet",
                           per_run_average(frame, metric, by="experiment"), True, converged, " pts",
                           paper=paper[metric].to_dict()))
    return out


__all__ = ["ABLATION", "ablation", "table4", "converged", "verdicts"]
