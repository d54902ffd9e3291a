"""Evaluating a trained DADNet on a test split (§3.3): image AUROC, pixel AUROC, pixel F1 (eq. 20),
plus pixel AP and F1-max. The image score is :func:`paper_repro.dadnet.scoring.image_scores`."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from paper_repro import metrics
from paper_repro.dadnet.networks import DADNet, predicted_mask
from paper_repro.dadnet.scoring import image_scores


@torch.no_grad()
def predict(model: DADNet, dataset, batch_size: int = 8, device: str | torch.device = "cpu",
            progress: bool = True) -> dict[str, torch.Tensor]:
    """Run both stages over ``dataset`` (MVTecAD items): inputs, masks, labels, R, M_p and scores."""
    model.eval().to(device)
    out: dict[str, list] = {k: [] for k in ("image", "mask", "label", "reconstruction", "pred")}
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc="DADNet eval",
                      disable=not progress, leave=False):
        reconstruction, logits = model(batch["image"].to(device))
        out["image"].append(batch["image"])
        out["mask"].append(batch["mask"])
        out["label"].append(torch.as_tensor(batch["label"]))
        out["reconstruction"].append(reconstruction.cpu())
        out["pred"].append(predicted_mask(logits).cpu())
    result = {k: torch.cat(v) for k, v in out.items()}
    result["score"] = image_scores(result["pred"])
    return result


def compute_metrics(pred: dict[str, torch.Tensor]) -> dict[str, float]:
    return {
        "image_auroc": metrics.image_auroc(pred["score"], pred["label"]),
        "pixel_auroc": metrics.pixel_auroc(pred["pred"], pred["mask"]),
        "pixel_f1": metrics.pixel_f1(pred["pred"], pred["mask"], threshold=0.5),
        "pixel_ap": metrics.pixel_ap(pred["pred"], pred["mask"]),
        "pixel_f1_max": metrics.pixel_f1_max(pred["pred"], pred["mask"]),
    }


def evaluate(run_dir: str | Path, data_root: str | Path | None = None, category: str | None = None,
             device: str = "cpu", progress: bool = True, write: bool = True):
    """Evaluate the run's latest checkpoint; writes ``run_dir/metrics.json``; returns
    ``(metrics, predictions)``. Defaults: the run's own category and data."""
    from paper_repro.data import MVTecAD
    from paper_repro.dadnet.trainer import data_root_for, load_model

    model, cfg, saved = load_model(run_dir, device)
    category = category or saved["category"]
    trained_on = str(saved.get("data", ""))
    root = data_root_for(data_root or (None if trained_on.startswith("bundled") else trained_on),
                         saved.get("scale", "full"))
    test = MVTecAD(root, category, split="test", image_size=cfg.image_size)
    pred = predict(model, test, cfg.batch_size, device, progress)
    values = compute_metrics(pred)
    if write:
        (Path(run_dir) / "metrics.json").write_text(json.dumps(
            {**values, "category": category, "n_test": len(test), "threshold": 0.5,
             "image_score": "max of mean-filtered M_p"}, indent=2))
    return values, pred
