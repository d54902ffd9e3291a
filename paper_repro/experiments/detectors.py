"""What DADNet's Tables 1-4 (and the bridge) share: trained detectors' predictions on a category's
test split, scored by one path, averaged over runs.

Runs ``r = 0 .. runs-1`` use seed ``seed + r`` (the paper averages three, §3.4.1). DADNet's runs
are cached runs of :func:`paper_repro.dadnet.trainer.trained_run` at the ``dadnet_tables`` profile,
so every chapter asking for the same one shares it; a baseline's predictions are cached tensors.
Every method's predictions are scored by :func:`paper_repro.evaluation.scoring.score_predictions`.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch.utils.data import Subset

from paper_repro.baselines.anomalib_models import BaselineConfig, anomalib_version, build, fit, predict
from paper_repro.context import RunContext, as_context
from paper_repro.dadnet.evaluate import evaluate, first_of_each_type
from paper_repro.dadnet.trainer import trained_run
from paper_repro.data.mvtec import MVTecAD
from paper_repro.data.roots import DataSource
from paper_repro.evaluation.scoring import EXTRA_METRICS, METRICS, ONE_RULE, score_predictions, threshold_for
from paper_repro.runs.devices import seed_everything
from paper_repro.results.reading import Spread, spreads
from paper_repro.runs.cached import cached_tensors

METRIC_TITLES = {"image_auroc": "image AUROC (%)", "pixel_auroc": "pixel AUROC (%)",
                 "pixel_f1": "pixel F1, eq. (20) (%)", "pixel_ap": "pixel AP (%)",
                 "pixel_f1_max": "pixel F1-max (%)"}


def dadnet_config(ctx: RunContext | str, seed: int = 42):
    """DADNet's configuration behind Tables 1-4 at the context's scale (the ``dadnet_tables`` profile)."""
    return as_context(ctx).config("dadnet_tables", seed=seed)


def default_runs(ctx: RunContext | str) -> int:
    """The DADNet profile's ``runs`` at the context's scale: 1 at smoke, 3 (seeds 42-44) at demo, the paper's 3 at full."""
    return as_context(ctx).config("dadnet").runs


def baseline_config(method: str, ctx: RunContext | str, seed: int = 42, pretrained: bool | str | None = None) -> BaselineConfig:
    """One anomalib baseline at the context's scale (the ``baselines`` profile), at DADNet's image size."""
    plan = as_context(ctx).config("baselines")
    return BaselineConfig(method=method, backbone=plan.backbone_of(method),
                          image_size=dadnet_config(ctx).image_size, batch_size=plan.batch_size,
                          epochs=plan.epochs(method), pretrained=plan.pretrained if pretrained is None else pretrained,
                          seed=seed)


def dadnet_predictions(ctx: RunContext | str, category: str, data: DataSource, pseudo: str = "sdgm", dram: bool = True,
                       device: str = "cpu", seed: int = 42, progress: bool = True) -> dict[str, torch.Tensor]:
    """Train (or reuse) DADNet's cached run and predict the category's test split."""
    run_dir = trained_run(dadnet_config(ctx, seed), data, category, pseudo=pseudo, dram=dram, device=device,
                          progress=progress)
    _, pred = evaluate(run_dir, None, category, device=device, progress=progress)
    return pred


def baseline_predictions(cfg: BaselineConfig, category: str, data: DataSource, device: str = "cpu",
                         progress: bool = True, train_limit: int = 0, test_limit: int = 0) -> dict[str, torch.Tensor]:
    """Train ``cfg.method`` on ``<root>/category/train/good`` and predict its test split (cached); the
    limits (DADNet's, so both see the same images) cap the images used, as in a dry run."""
    def compute() -> dict[str, torch.Tensor]:
        seed_everything(cfg.seed)
        model = build(cfg)
        train = MVTecAD(data.root, category, "train", image_size=cfg.image_size)
        train = Subset(train, range(min(train_limit, len(train)))) if train_limit else train
        fit(model, cfg, train, device, progress)
        test = first_of_each_type(MVTecAD(data.root, category, "test", image_size=cfg.image_size), test_limit)
        pred = predict(model, test, cfg.batch_size, device, progress)
        return {k: v for k, v in pred.items() if k != "image"}

    key = dict(config=cfg, category=category, data=data.key, anomalib=anomalib_version(), train_limit=train_limit,
               test_limit=test_limit)
    # recomputed when the wrapper of the anomalib models, the loader or the test selection change
    return cached_tensors("baseline_predictions", key, compute,
                          modules=["paper_repro.baselines.anomalib_models", "paper_repro.data.mvtec", "paper_repro.dadnet.evaluate"])


def scored_row(method: str, category: str, run: int, pred: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One table row: every method's maps cut by :data:`~paper_repro.evaluation.scoring.ONE_RULE`, its own
    rule beside (``pixel_f1_own_rule``)."""
    return {"method": method, "category": category, "run": run,
            **score_predictions(pred, ONE_RULE, own_threshold=threshold_for(method))}


def mean_over_runs(frame: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Mean over runs per (``by``, category), plus an ``average`` category (mean over categories)."""
    values = [m for m in (*METRICS, *EXTRA_METRICS) if m in frame]
    per_cat = frame.groupby([by, "category"], sort=False)[values].mean().reset_index()
    average = per_cat.groupby(by, sort=False)[values].mean().reset_index().assign(category="average")
    return pd.concat([per_cat, average], ignore_index=True)


def per_run_average(frame: pd.DataFrame, metric: str, by: str = "method") -> dict[str, "Spread"]:
    """{``by`` value: :class:`~paper_repro.results.reading.Spread` over runs of ``metric`` averaged over
    the categories}: one number per seed, as the paper's averages are formed."""
    per_run = frame.groupby([by, "run"], sort=False)[metric].mean().reset_index()
    return spreads(per_run, by, metric)


def dadnet_loss_curves(ctx: RunContext | str, data: DataSource, categories, runs: int, variants, seed: int = 42,
                       column: str = "loss_focal") -> dict[str, list[float]]:
    """{``"<pseudo>/<dram>/<category>/seed <s>"``: the logged ``column`` per epoch} of DADNet's cached
    runs (trained ones only: this reads their ``log.csv``), for a convergence check."""
    curves = {}
    for run in range(runs):
        cfg = dadnet_config(ctx, seed + run)
        for category in categories:
            for pseudo, dram in variants:
                run_dir = trained_run(cfg, data, category, pseudo=pseudo, dram=dram, progress=False)
                log = pd.read_csv(run_dir / "log.csv")
                label = f"{pseudo}{'+DRAM' if dram else ''}/{category}/seed {cfg.seed}"
                curves[label] = log[column].dropna().tolist()
    return curves


def spread_over_runs(frame: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Standard deviation over runs of each metric, per ``by`` (averaged over categories)."""
    values = [m for m in (*METRICS, *EXTRA_METRICS) if m in frame]
    per_cat = frame.groupby([by, "category"], sort=False)[values].std(ddof=0).reset_index()
    return per_cat.groupby(by, sort=False)[values].mean().reset_index()


__all__ = ["METRIC_TITLES", "dadnet_config", "default_runs", "baseline_config", "dadnet_predictions",
           "baseline_predictions", "scored_row", "mean_over_runs", "per_run_average", "dadnet_loss_curves",
           "spread_over_runs"]
