"""Thresholds a team can own: ``dadnet calibrate`` chooses them on its images and stores them in the run.

DADNet gives every pixel a probability M_p and every image a score (the maximum of the mean-filtered
M_p, :func:`paper_repro.dadnet.evaluate.image_scores`). A decision needs two cuts, an *image*
threshold (is the image anomalous?) and a *pixel* threshold (which pixels are?). The paper cuts M_p at a
fixed 0.5 (:data:`DEFAULT_THRESHOLD`); a team calibrates its own on images it trusts, with one of two
rules, computed on exactly the maps and scores ``dadnet eval`` and ``dadnet predict`` compute:

- ``f1_optimal``, when defective images are given: the value that maximises the F1 of
  ``score >= threshold`` against the truth (anomalib's F1-adaptive rule,
  :func:`paper_repro.evaluation.scoring.f1_adaptive_threshold`). For images, over the good and the
  defective images; for pixels (which needs the defects' masks), over every pixel of them all pooled.
- ``false_alarm_rate``, otherwise: the ``1 - rate`` quantile of the good images' scores (or of all
  their pixels' M_p), so about ``rate`` of normal images (pixels) would be flagged.

The result goes to ``RUN/thresholds.json`` (written atomically), with the numbers that chose each
threshold, the checkpoint it was computed on, the folders and the date; ``dadnet predict --threshold
auto`` reads it (:func:`read_thresholds`) and prints where the thresholds came from
(:func:`describe`).
"""
from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from paper_repro.dadnet.evaluate import predict, score_kernel
from paper_repro.dadnet.trainer import load_model
from paper_repro.data.image_folder import ImageFolder
from paper_repro.errors import UserError
from paper_repro.evaluation.scoring import f1_adaptive_threshold
from paper_repro.runs.checkpoints import atomic_write, latest_checkpoint
from paper_repro.runs.devices import resolve_device

THRESHOLDS_FILE = "thresholds.json"
DEFAULT_THRESHOLD = 0.5  # the paper's fixed cut of M_p, used when a run has no calibration
DEFAULT_FALSE_ALARM_RATE = 0.01
RULES = ("f1_optimal", "false_alarm_rate")


def f1_optimal(scores: torch.Tensor, truth: torch.Tensor) -> dict:
    """The threshold maximising the F1 of ``scores >= threshold`` against ``truth`` (0/1), and the
    F1, precision and recall it reaches."""
    threshold = f1_adaptive_threshold(scores, truth)
    scores, truth = scores.reshape(-1).float(), truth.reshape(-1).round().bool()
    flagged = scores >= threshold
    tp = int((flagged & truth).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": threshold, "rule": "f1_optimal", "f1": f1, "precision": precision, "recall": recall,
            "n_normal": int((~truth).sum()), "n_defective": int(truth.sum())}


def false_alarm_quantile(scores: torch.Tensor, rate: float) -> dict:
    """The ``1 - rate`` quantile of the normal ``scores`` (NumPy's linear interpolation), and the share of
    them it flags (``score >= threshold``)."""
    values = scores.reshape(-1).double().numpy()
    threshold = float(np.quantile(values, 1 - rate))
    return {"threshold": threshold, "rule": "false_alarm_rate", "false_alarm_rate": rate,
            "measured_false_alarm_rate": float((values >= threshold).mean()), "n_normal": int(values.size)}


def calibrate(run_dir: str | Path, good: str | Path, bad: str | Path | None = None, masks: str | Path | None = None,
              false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE, device: str = "cpu", batch_size: int | None = None,
              progress: bool = True) -> dict:
    """Choose the image and pixel thresholds of the run in ``run_dir`` (module docstring), write them to
    ``run_dir/thresholds.json`` and return what was written."""
    if masks is not None and bad is None:
        raise UserError("--masks: the masks of defective images need those images too; pass --bad DIR")
    device = resolve_device(device)
    run_dir = Path(run_dir)
    model, cfg, _ = load_model(run_dir, device)
    normal = ImageFolder(good, cfg.image_size, what="normal images")
    parts = [normal] if bad is None else [normal, ImageFolder(bad, cfg.image_size, masks=masks, defective=True,
                                                                what="defective images")]
    pred = predict(model, ConcatDataset(parts), batch_size or cfg.batch_size, device, progress)
    is_normal = pred["label"] == 0
    image = (false_alarm_quantile(pred["score"][is_normal], false_alarm_rate) if bad is None
             else f1_optimal(pred["score"], pred["label"]))
    pixel = (false_alarm_quantile(pred["pred"][is_normal], false_alarm_rate) if masks is None
             else f1_optimal(pred["pred"], pred["mask"]))
    record = {
        "image": image, "pixel": pixel,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "checkpoint": latest_checkpoint(run_dir).name,
        "good": str(good), "bad": None if bad is None else str(bad), "masks": None if masks is None else str(masks),
        "image_size": cfg.image_size,
        "image_score": f"max of M_p mean-filtered over {score_kernel(cfg.image_size)} px (dadnet eval's)",
        "decision": "score >= threshold",
    }
    text = json.dumps(record, indent=2)
    atomic_write(run_dir / THRESHOLDS_FILE, lambda tmp: Path(tmp).write_text(text))
    return record


def read_thresholds(run_dir: str | Path) -> dict | None:
    """``run_dir/thresholds.json`` as :func:`calibrate` wrote it, or ``None`` when the run has none;
    one UserError when it is damaged (not JSON, a threshold missing or outside [0, 1])."""
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not readable JSON ({err}); run dadnet calibrate again or delete it") from None
    for level in ("image", "pixel"):
        entry = record.get(level) if isinstance(record, dict) else None
        value = entry.get("threshold") if isinstance(entry, dict) else None
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and 0 <= value <= 1 and entry.get("rule") in RULES):
            raise UserError(f"{path}: has no valid {level} threshold (a number in [0, 1] and its rule); "
                            "run dadnet calibrate again or delete it")
    return record


def flags_everything(entry: dict) -> bool:
    """Does an F1-optimal threshold flag every image (or pixel) it was chosen on? Then its recall is 1 and
    its precision the share of defective ones."""
    share = entry["n_defective"] / max(entry["n_defective"] + entry["n_normal"], 1)
    return entry["recall"] == 1 and abs(entry["precision"] - share) < 1e-9


def describe_rule(entry: dict, unit: str) -> str:
    """How one stored threshold was chosen, in words with its numbers."""
    if entry["rule"] == "f1_optimal":
        text = (f"F1-optimal over {entry['n_normal']} normal and {entry['n_defective']} defective {unit} "
                f"(F1 {entry['f1']:.3f}, precision {entry['precision']:.3f}, recall {entry['recall']:.3f})")
        if flags_everything(entry):
            text += (f"; this cut flags every one of them: no cut has a better F1 on these {unit}, so F1 prefers "
                     "flagging all to missing any; --good alone with --false-alarm-rate sets the cut by the false "
                     "alarms you accept")
        return text
    rate, count = entry["false_alarm_rate"], entry["n_normal"]
    few = (f", too few to resolve that rate: {math.ceil(1 / rate)} or more would" if count * rate < 1 else "")
    return (f"a {rate:.2%} false-alarm rate on {count} normal {unit} "
            f"(measured {entry['measured_false_alarm_rate']:.2%}{few})")


def describe(record: dict, run_dir: str | Path) -> str:
    """One line: where the thresholds of ``record`` come from (file, date, rules, numbers)."""
    path = Path(run_dir) / THRESHOLDS_FILE
    line = (f"thresholds from {path} (calibrated {record.get('created', '?')} on {record.get('checkpoint', '?')}): "
            f"image {record['image']['threshold']:.4g}, {describe_rule(record['image'], 'images')}; "
            f"pixel {record['pixel']['threshold']:.4g}, {describe_rule(record['pixel'], 'pixels')}")
    latest = latest_checkpoint(run_dir)
    if latest is not None and record.get("checkpoint") not in (None, latest.name):
        line += f"; the run's latest checkpoint is now {latest.name}: calibrate again"
    return line


def default_description(run_dir: str | Path) -> str:
    """One line: the run has no calibration, so the paper's fixed threshold is used."""
    return (f"no {Path(run_dir) / THRESHOLDS_FILE}: using the default threshold {DEFAULT_THRESHOLD} (the paper's "
            "fixed cut of M_p) for image scores and pixels; dadnet calibrate sets your own")


__all__ = ["THRESHOLDS_FILE", "DEFAULT_THRESHOLD", "DEFAULT_FALSE_ALARM_RATE", "RULES", "f1_optimal",
           "false_alarm_quantile", "calibrate", "read_thresholds", "flags_everything", "describe_rule", "describe",
           "default_description"]
