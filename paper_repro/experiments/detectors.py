"""What DADNet's Tables 1-4 (and the bridge) share: trained detectors' predictions on a category's
test split, scored by one path, averaged over runs.

Runs ``r = 0 .. runs-1`` use seed ``seed + r`` (the paper averages three, §3.4.1). DADNet's runs
are cached runs of :func:`paper_repro.dadnet.trainer.trained_run` at the ``dadnet_tables`` profile,
so every chapter asking for the same one shares it; a baseline's predictions are cached tensors.
Every method's predictions are scored by :func:`paper_repro.evaluation.scoring.score_predictions`.
Whether a budget converged is judged on those metrics at each run's milestones (DADNet's milestone
checkpoints, a baseline's milestone epochs): :func:`metric_curves_converged`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch
from safetensors import safe_open
from torch.utils.data import Subset

from paper_repro.baselines.anomalib_models import BaselineConfig, anomalib_version, build, fit, predict
from paper_repro.context import RunContext, as_context
from paper_repro.dadnet.evaluate import evaluate, first_of_each_type, predict as dadnet_predict
from paper_repro.dadnet.trainer import build_model, config_from_run, trained_run
from paper_repro.data.mvtec import MVTecAD
from paper_repro.data.photographs import PHOTOGRAPHS
from paper_repro.data.roots import DataSource
from paper_repro.evaluation.scoring import EXTRA_METRICS, METRICS, ONE_RULE, score_predictions, threshold_for
from paper_repro.runs.devices import resolve_device, seed_everything
from paper_repro.results.reading import Spread, plateaued, spreads
from paper_repro.runs.cached import cached_tensors
from paper_repro.runs.checkpoints import DIGEST_KEY, checkpoints, load_weights

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


METRIC_NAMES = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pixel_f1": "pixel F1"}
CURVE_KEYS = ("milestone_epochs", "milestone_metrics")  # a baseline's learning curve, cached beside its predictions


def table_metrics(pred: dict[str, torch.Tensor]) -> list[float]:
    """The three metrics of Tables 1-3 (:data:`~paper_repro.evaluation.scoring.METRICS`, percent) of one
    set of predictions, scored as the tables score every method (maps cut by the one rule)."""
    values = score_predictions(pred, ONE_RULE)
    return [values[metric] for metric in METRICS]


def metric_rows(epochs: Sequence[int], rows: Sequence[Sequence[float]]) -> dict[str, torch.Tensor]:
    """A learning curve as tensors: ``milestone_epochs`` (K,) and ``milestone_metrics`` (K, 3)."""
    return dict(zip(CURVE_KEYS, (torch.tensor(list(epochs), dtype=torch.int64),
                                 torch.tensor([list(r) for r in rows], dtype=torch.float64).reshape(-1, len(METRICS)))))


def baseline_outputs(cfg: BaselineConfig, category: str, data: DataSource, device: str = "cpu",
                     progress: bool = True, train_limit: int = 0, test_limit: int = 0) -> dict[str, torch.Tensor]:
    """Train ``cfg.method`` on ``<root>/category/train/good``, predict its test split and, after each
    milestone epoch of training (:func:`~paper_repro.baselines.anomalib_models.milestone_epochs`), the
    table metrics on that test split (:data:`CURVE_KEYS`); cached. The limits (DADNet's, so both see the
    same images) cap the images used, as in a dry run.

    The test split is measured during training only to judge whether the budget converged; no checkpoint
    is chosen by it (the table scores the last epoch's model)."""
    def compute() -> dict[str, torch.Tensor]:
        seed_everything(cfg.seed)
        model = build(cfg)
        train = MVTecAD(data.root, category, "train", image_size=cfg.image_size)
        train = Subset(train, range(min(train_limit, len(train)))) if train_limit else train
        test = first_of_each_type(MVTecAD(data.root, category, "test", image_size=cfg.image_size), test_limit)
        epochs, rows = [], []

        def measure(epoch: int, trained) -> None:
            epochs.append(epoch)
            rows.append(table_metrics(predict(trained, test, cfg.batch_size, device, progress=False)))

        fit(model, cfg, train, device, progress, at_milestone=measure)
        pred = predict(model, test, cfg.batch_size, device, progress)
        return {**{k: v for k, v in pred.items() if k != "image"}, **metric_rows(epochs, rows)}

    key = dict(config=cfg, category=category, data=data.key, anomalib=anomalib_version(), train_limit=train_limit,
               test_limit=test_limit)
    # recomputed when the wrapper of the anomalib models, the loader, the test selection or the scoring change
    return cached_tensors("baseline_predictions", key, compute,
                          modules=["paper_repro.baselines.anomalib_models", "paper_repro.data.mvtec",
                                   "paper_repro.dadnet.evaluate", "paper_repro.evaluation.scoring"])


def baseline_predictions(cfg: BaselineConfig, category: str, data: DataSource, device: str = "cpu",
                         progress: bool = True, train_limit: int = 0, test_limit: int = 0) -> dict[str, torch.Tensor]:
    """The test-split predictions of :func:`baseline_outputs` (its learning curve left out)."""
    outputs = baseline_outputs(cfg, category, data, device, progress, train_limit, test_limit)
    return {k: v for k, v in outputs.items() if k not in CURVE_KEYS}


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


def variant_name(pseudo: str, dram: bool) -> str:
    """A DADNet run's row name in Tables 1-4: ``DADNet`` (SDGM + DRAM), else ``Baseline+DGM(+DRAM)`` etc."""
    return "DADNet" if (pseudo, dram) == ("sdgm", True) else f"Baseline+{pseudo.upper()}{'+DRAM' if dram else ''}"


def world_of(category: str, data: DataSource) -> str:
    """Which world a category comes from: ``"photographed"`` or ``"procedural"`` in the bundled set (its
    photographed categories are crops of :data:`~paper_repro.data.photographs.PHOTOGRAPHS`), ``"your
    data"`` for any other data set (MVTec AD's categories are all photographs)."""
    if not data.bundled:
        return "your data"
    return "photographed" if category in PHOTOGRAPHS else "procedural"


def dadnet_over_seeds(ctx: RunContext | str, data: DataSource, categories, runs: int, seed: int = 42,
                      pseudo: str = "sdgm", dram: bool = True, device: str = "cpu") -> pd.DataFrame:
    """One row per (category, seed): DADNet's metrics (%) from :func:`~paper_repro.dadnet.evaluate.evaluate`
    on the category's test split, with the category's :func:`world_of`. The runs are Tables 1-4's cached
    ones (trained here on first use)."""
    rows = []
    for run in range(runs):
        for category in categories:
            run_dir = trained_run(dadnet_config(ctx, seed + run), data, category, pseudo=pseudo, dram=dram,
                                  device=device)
            values, _ = evaluate(run_dir, None, category, device=device, progress=False)
            rows.append({"category": category, "world": world_of(category, data), "seed": seed + run, **values})
    return pd.DataFrame(rows)


def run_label(model: str, category: str, seed: int) -> str:
    """``"<model>/<category>/seed <s>"``: how a convergence sentence names one run."""
    return f"{model}/{category}/seed {seed}"


def milestone_checkpoints(run_dir: str | Path, milestone_every: int, total: int) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of a run's kept milestone checkpoints: multiples of ``milestone_every``, and the last."""
    return [(step, path) for step, path in checkpoints(run_dir)
            if step == total or (milestone_every and step % milestone_every == 0)]


def _stored_digest(path: Path) -> str | None:
    """The digest a checkpoint was written with (its header only is read): what identifies its weights."""
    with safe_open(str(path), framework="pt") as handle:
        return (handle.metadata() or {}).get(DIGEST_KEY)


def dadnet_milestone_metrics(run_dir: str | Path, data: DataSource, category: str,
                             device: str = "cpu") -> dict[str, torch.Tensor]:
    """The table metrics of a DADNet run's milestone checkpoints (:func:`milestone_checkpoints`) on its
    category's test split (the selection :func:`~paper_repro.dadnet.evaluate.evaluate` uses), as
    :func:`metric_rows`; cached per run folder and checkpoint digests, so chapters share them. The test
    split only judges whether the budget converged: the tables score the last checkpoint."""
    run_dir = Path(run_dir)
    cfg, saved = config_from_run(run_dir)
    found = milestone_checkpoints(run_dir, cfg.milestone_every, cfg.epochs)

    def compute() -> dict[str, torch.Tensor]:
        target = resolve_device(device)
        model = build_model(cfg, saved.get("dram", True)).to(target)
        test = first_of_each_type(MVTecAD(data.root, category, "test", image_size=cfg.image_size), cfg.test_limit)
        rows = []
        for _, path in found:
            load_weights(path, {"reconstructive": model.reconstructive, "discriminative": model.discriminative})
            rows.append(table_metrics(dadnet_predict(model, test, cfg.batch_size, target, progress=False)))
        return metric_rows([step for step, _ in found], rows)

    key = dict(run=run_dir.name, checkpoints=[(step, _stored_digest(path)) for step, path in found],
               category=category, data=data.key, test_limit=cfg.test_limit)
    return cached_tensors("dadnet_metric_curves", key, compute,
                          modules=["paper_repro.dadnet.evaluate", "paper_repro.evaluation.scoring"])


def _curve(measured: Mapping[str, torch.Tensor], metric: str) -> list[tuple[int, float]]:
    epochs, values = (measured[k] for k in CURVE_KEYS)
    column = METRICS.index(metric)
    return [(int(e), float(v)) for e, v in zip(epochs.tolist(), values[:, column].tolist())]


def dadnet_metric_curves(ctx: RunContext | str, data: DataSource, categories, runs: int, variants, seed: int = 42,
                         metric: str = "image_auroc", device: str = "cpu") -> dict[str, list[tuple[int, float]]]:
    """{``"<row>/<category>/seed <s>"``: ``(epoch, metric)`` at each milestone checkpoint} of DADNet's
    cached runs (``variants``: (pseudo, dram) pairs), by :func:`dadnet_milestone_metrics`."""
    curves = {}
    for run in range(runs):
        cfg = dadnet_config(ctx, seed + run)
        for category in categories:
            for pseudo, dram in variants:
                run_dir = trained_run(cfg, data, category, pseudo=pseudo, dram=dram, device=device, progress=False)
                measured = dadnet_milestone_metrics(run_dir, data, category, device)
                curves[run_label(variant_name(pseudo, dram), category, cfg.seed)] = _curve(measured, metric)
    return curves


def baseline_metric_curves(ctx: RunContext | str, data: DataSource, method: str, categories, runs: int,
                           seed: int = 42, metric: str = "image_auroc", device: str = "cpu",
                           pretrained: bool | str | None = None) -> dict[str, list[tuple[int, float]]]:
    """{``"<method>/<category>/seed <s>"``: ``(epoch, metric)`` at each milestone epoch} of a baseline's
    cached runs, the ones Tables 1-3 score (:func:`baseline_outputs`)."""
    limits = dadnet_config(ctx)
    curves = {}
    for run in range(runs):
        cfg = baseline_config(method, ctx, seed + run, pretrained)
        for category in categories:
            measured = baseline_outputs(cfg, category, data, device, False, limits.train_limit, limits.test_limit)
            curves[run_label(method, category, cfg.seed)] = _curve(measured, metric)
    return curves


CURVE_FRACTION, CURVE_POINTS = 0.5, 4  # a metric curve is judged over its last half, at least four milestones


def metric_curves_converged(curves: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]],
                            loss_curves: Mapping[str, Sequence[float]] | None = None) -> bool | str:
    """True when no run's table metric still rises, else a sentence naming the first run that does (model,
    category, seed, metric) and how many other curves were not judged converged.

    ``curves`` is ``{metric: {run: [(epoch, value), ...]}}`` (higher is better). Each curve is judged alone
    by :func:`~paper_repro.results.reading.plateaued` over its last half (at least :data:`CURVE_POINTS`
    milestones): a Newey-West slope interval above 0 and a rise over 5 % of its level mean still rising; a
    curve of fewer milestones is too short to judge, which is not converged either. ``loss_curves``
    ({run: L_Focal per epoch}), when given, must have plateaued too (lower is better)."""
    reasons = []
    for metric, runs in curves.items():
        for run, curve in runs.items():
            last = list(curve)[-max(CURVE_POINTS, round(len(curve) * CURVE_FRACTION)):]
            window = f"its milestones at epochs {last[0][0]}-{last[-1][0]}" if last else None
            reason = plateaued({run: [value for _, value in curve]}, METRIC_NAMES[metric], fraction=CURVE_FRACTION,
                               window=window, lower_is_better=False, points=CURVE_POINTS)
            if reason is not True:
                reasons.append(reason)
    if not reasons:
        return True if loss_curves is None else plateaued(loss_curves, "L_Focal")
    others = len(reasons) - 1
    return reasons[0] + (f" (and {others} other curve{'s' if others != 1 else ''} of the table's models)" if others else "")


def dadnet_loss_curves(ctx: RunContext | str, data: DataSource, categories, runs: int, variants, seed: int = 42,
                       column: str = "loss_focal") -> dict[str, list[float]]:
    """{``"<row>/<category>/seed <s>"``: the logged ``column`` per epoch} of DADNet's cached
    runs (trained ones only: this reads their ``log.csv``), for a convergence check."""
    curves = {}
    for run in range(runs):
        cfg = dadnet_config(ctx, seed + run)
        for category in categories:
            for pseudo, dram in variants:
                run_dir = trained_run(cfg, data, category, pseudo=pseudo, dram=dram, progress=False)
                log = pd.read_csv(run_dir / "log.csv")
                curves[run_label(variant_name(pseudo, dram), category, cfg.seed)] = log[column].dropna().tolist()
    return curves


def spread_over_runs(frame: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Standard deviation over runs of each metric, per ``by`` (averaged over categories)."""
    values = [m for m in (*METRICS, *EXTRA_METRICS) if m in frame]
    per_cat = frame.groupby([by, "category"], sort=False)[values].std(ddof=0).reset_index()
    return per_cat.groupby(by, sort=False)[values].mean().reset_index()


__all__ = ["METRIC_TITLES", "METRIC_NAMES", "CURVE_KEYS", "dadnet_config", "default_runs", "baseline_config",
           "dadnet_predictions", "world_of", "dadnet_over_seeds", "table_metrics", "metric_rows", "baseline_outputs", "baseline_predictions",
           "scored_row", "mean_over_runs", "per_run_average", "variant_name", "run_label", "milestone_checkpoints",
           "dadnet_milestone_metrics", "dadnet_metric_curves", "baseline_metric_curves", "CURVE_FRACTION",
           "CURVE_POINTS", "metric_curves_converged", "dadnet_loss_curves", "spread_over_runs"]
