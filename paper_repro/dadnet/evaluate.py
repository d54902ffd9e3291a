"""Evaluating a trained DADNet on a test split (§3.3).

The predicted mask ``M_p`` is the discriminative network's anomaly probability; an image's score
follows DRAEM, which DADNet does not contradict: the maximum of ``M_p`` after a ``k x k`` mean
filter (k = 21 at 256 px, scaled with the image size), so one isolated confident pixel does not make
an image anomalous but a small confident region does. The metrics are computed by the one scoring
path every method of Tables 1-4 goes through, :func:`paper_repro.evaluation.scoring.score_predictions`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from paper_repro.dadnet.networks import DADNet, predicted_mask
from paper_repro.dadnet.trainer import load_model
from paper_repro.data.image_folder import FOLDER_LAYOUT, folder_test_set
from paper_repro.data.mvtec import MVTecAD
from paper_repro.data.roots import find_dataset_root
from paper_repro.errors import UserError
from paper_repro.evaluation.scoring import score_predictions
from paper_repro.runs.checkpoints import atomic_write
from paper_repro.runs.devices import resolve_device
from paper_repro.runs.progress import tqdm


def score_kernel(image_size: int) -> int:
    """DRAEM's 21 px window at 256 px, scaled to ``image_size`` and kept odd."""
    k = max(1, round(21 * image_size / 256))
    return k if k % 2 else k + 1


def image_scores(pred_masks: torch.Tensor, kernel: int | None = None) -> torch.Tensor:
    """``(B, 1, H, W)`` M_p -> ``(B,)`` scores: max of the mean-filtered map."""
    kernel = kernel or score_kernel(pred_masks.shape[-1])
    smoothed = F.avg_pool2d(pred_masks, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return smoothed.flatten(1).amax(1)


def first_of_each_type(dataset: MVTecAD, limit: int) -> Dataset:
    """The first ``limit`` images of each test folder (``good`` and every defect type); 0: all of them.
    Only a dry run of the batch caps the test set; a capped one still has both classes."""
    if not limit:
        return dataset
    taken: dict[str, int] = {}
    keep = []
    for index, (_, _, kind) in enumerate(dataset.samples):
        if taken.get(kind, 0) < limit:
            taken[kind] = taken.get(kind, 0) + 1
            keep.append(index)
    return Subset(dataset, keep)


@torch.no_grad()
def anomaly_maps(model: DADNet, images: torch.Tensor, device: str | torch.device = "cpu"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both stages on a batch ``(B, 3, S, S)`` in [0, 1] (the model in eval mode): R and M_p, on the CPU."""
    reconstruction, logits = model(images.to(device))
    return reconstruction.cpu(), predicted_mask(logits).cpu()


@torch.no_grad()
def predict(model: DADNet, dataset, batch_size: int = 8, device: str | torch.device = "cpu",
            progress: bool = True) -> dict[str, torch.Tensor]:
    """Run both stages over ``dataset`` (MVTecAD items): inputs, masks, labels, R, M_p and scores."""
    model.eval().to(device)
    out: dict[str, list] = {k: [] for k in ("image", "mask", "label", "reconstruction", "pred")}
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc="DADNet eval",
                      disable=not progress, leave=False):
        reconstruction, pred = anomaly_maps(model, batch["image"], device)
        out["image"].append(batch["image"])
        out["mask"].append(batch["mask"])
        out["label"].append(torch.as_tensor(batch["label"]))
        out["reconstruction"].append(reconstruction)
        out["pred"].append(pred)
    result = {k: torch.cat(v) for k, v in out.items()}
    result["score"] = image_scores(result["pred"])
    return result


def contrast_kept(images: torch.Tensor, reconstructions: torch.Tensor) -> float:
    """How much of each image's contrast its reconstruction keeps: the spatial standard deviation of R
    over that of the input, per image and channel, averaged (1: as much detail as the input; near 0:
    a flat image)."""
    spread_in = images.float().flatten(2).std(-1)
    spread_out = reconstructions.float().flatten(2).std(-1)
    return float((spread_out / spread_in.clamp_min(1e-6)).mean())


def evaluate(run_dir: str | Path, data_root: str | Path | None = None, category: str | None = None,
             device: str = "cpu", progress: bool = True, write: bool = True):
    """Evaluate the run's latest checkpoint on its category's test split; writes ``run_dir/metrics.json``
    (percent); returns ``(metrics, predictions)``. Defaults: the run's own category and data."""
    device = resolve_device(device)
    model, cfg, saved = load_model(run_dir, device)
    category = category or saved.get("category")
    if data_root is None and saved.get("data_layout") == FOLDER_LAYOUT:
        raise UserError(f"{run_dir}: trained on a plain folder of normal images ({saved.get('data_root')}), "
                        "which has no test split; pass --images DIR --masks DIR --good DIR")
    if category is None:
        raise UserError(f"{run_dir}/run.json: names no category; pass --category")
    if data_root is not None:
        root = find_dataset_root(data_root, "mvtec")
    elif saved.get("data_root"):
        root = Path(saved["data_root"])
    else:
        raise UserError(f"{run_dir}/run.json: names no data set; pass --data")
    test = first_of_each_type(MVTecAD(root, category, split="test", image_size=cfg.image_size), cfg.test_limit)
    return score_test_set(run_dir, model, cfg, test, {"category": category}, device, progress, write)


def evaluate_folders(run_dir: str | Path, images: str | Path, masks: str | Path, good: str | Path,
                     device: str = "cpu", progress: bool = True, write: bool = True):
    """:func:`evaluate` on a test set of plain folders: the normal images of ``good`` and the defective
    ``images`` with their ``masks`` (:func:`paper_repro.data.image_folder.folder_test_set`)."""
    device = resolve_device(device)
    model, cfg, _ = load_model(run_dir, device)
    test = folder_test_set(images, masks, good, cfg.image_size)
    source = {"images": str(images), "masks": str(masks), "good": str(good)}
    return score_test_set(run_dir, model, cfg, test, source, device, progress, write)


def score_test_set(run_dir: str | Path, model: DADNet, cfg, test: Dataset, source: dict, device: str = "cpu",
                   progress: bool = True, write: bool = True):
    """Predict ``test`` and score it as Tables 1-4 do (M_p cut at 0.5); with ``write``, the metrics and
    ``source`` (what was tested) go to ``run_dir/metrics.json``. Returns ``(metrics, predictions)``."""
    pred = predict(model, test, cfg.batch_size, device, progress)
    values = score_predictions(pred, 0.5)
    if write:
        text = json.dumps({**values, "unit": "percent", **source, "n_test": len(test), "threshold": 0.5,
                           "image_score": "max of mean-filtered M_p"}, indent=2)
        atomic_write(Path(run_dir) / "metrics.json", lambda tmp: Path(tmp).write_text(text))
    return values, pred


__all__ = ["score_kernel", "image_scores", "first_of_each_type", "anomaly_maps", "predict", "contrast_kept", "evaluate",
           "evaluate_folders", "score_test_set"]
