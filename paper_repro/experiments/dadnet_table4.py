"""DADNet's Table 4 (§3.4.3): the ablation of SDGM and DRAM, four rows trained on one budget and seed,
averaged over the ``baselines`` profile's ablation categories."""
from __future__ import annotations

import pandas as pd

from paper_repro.config import get_config
from paper_repro.data.roots import DataSource
from paper_repro.evaluation.scoring import METRICS
from paper_repro.experiments.detectors import dadnet_predictions, default_runs, mean_over_runs, scored_row
from paper_repro.results.papers import paper_table
from paper_repro.results.tables import side_by_side

# DADNet's Table 4 rows: (experiment, pseudo-anomaly source, DRAM on).
ABLATION = (
    ("Baseline+DGM", "dgm", False),
    ("Baseline+SDGM", "sdgm", False),
    ("Baseline+DGM+DRAM", "dgm", True),
    ("DADNet", "sdgm", True),
)


def ablation(scale: str, data: DataSource, runs: int | None = None, device: str = "cpu", seed: int = 42,
             progress: bool = True) -> pd.DataFrame:
    """Table 4 measured: one row per (experiment, category, run), same budget and seed for all four."""
    rows = []
    for run in range(runs or default_runs(scale)):
        for category in get_config("baselines", scale).ablation_categories:
            for experiment, pseudo, dram in ABLATION:
                pred = dadnet_predictions(scale, category, data, pseudo, dram, device, seed + run, progress)
                rows.append({**scored_row(experiment, category, run, pred), "experiment": experiment})
    return pd.DataFrame(rows)


def table4(frame: pd.DataFrame, run_info) -> dict[str, pd.DataFrame]:
    """``{metric: paper beside this run}`` for Table 4 (averages over the ablation categories)."""
    means = mean_over_runs(frame, by="experiment")
    means = means[means["category"] == "average"]
    return {metric: side_by_side(paper_table("dadnet.table4"), means, on=["experiment"], value=metric,
                                 run_info=run_info) for metric in METRICS}


__all__ = ["ABLATION", "ablation", "table4"]
