"""Training and evaluating a defect classifier (Defect-GAN §4.2, Table 3).

SGD (lr 1e-3, batch 16 at ``full``), multi-label binary cross-entropy over CODEBRIM's six labels,
plus - when the training set holds synthesized samples - the source classifier's binary
cross-entropy (synthetic vs real) through the gradient-reversal layer. After every epoch the
validation accuracy (exact match, :mod:`.accuracy`) is measured; the best epoch's weights are kept
and its test accuracy is the reported number. Runs resume from their last epoch checkpoint and,
once finished, are read back from ``result.json``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from paper_repro import training as T
from paper_repro.detection.accuracy import exact_match_accuracy
from paper_repro.detection.models import DefectClassifier


@dataclass
class DetectionResult:
    backbone: str
    augmentation: str
    best_epoch: int
    val_accuracy: float  # exact-match, in [0, 1]
    test_accuracy: float
    run_dir: str


def loss_terms(model: DefectClassifier, batch: dict, device) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE over the defect labels (+ BCE of f_src on the source tag, through the GRL)."""
    class_logits, source_logit = model(batch["image"].to(device))
    loss = F.binary_cross_entropy_with_logits(class_logits, batch["labels"].to(device))
    logs = {"cls": loss.item()}
    if source_logit is not None:
        source = F.binary_cross_entropy_with_logits(source_logit, batch["source"].to(device))
        loss = loss + source
        logs["src"] = source.item()
    return loss, logs


@torch.no_grad()
def predict(model: DefectClassifier, dataset: Dataset, batch_size: int = 64, device="cpu"):
    """(logits, labels) over a data set, in order."""
    model.eval()
    logits, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        logits.append(model(batch["image"].to(device))[0].cpu())
        labels.append(batch["labels"])
    return torch.cat(logits), torch.cat(labels)


def evaluate(model: DefectClassifier, dataset: Dataset, batch_size: int = 64, device="cpu") -> float:
    return exact_match_accuracy(*predict(model, dataset, batch_size, device))


def train_classifier(cfg, backbone: str, augmentation: str, train_set: Dataset, val_set: Dataset,
                     test_set: Dataset, run_dir: str | Path, *, source_head: bool, weights: str | None = None,
                     device: str = "cpu", seed: int = 42, progress: bool = True) -> DetectionResult:
    """Train one Table 3 cell in ``run_dir`` (or resume it, or read its finished result)."""
    run_dir = Path(run_dir)
    result_file = run_dir / "result.json"
    if result_file.is_file():
        return DetectionResult(**json.loads(result_file.read_text()))
    device = T.resolve_device(device)
    T.seed_everything(seed)
    model = DefectClassifier(backbone, 6, weights, source_head, cfg.grl_coefficient).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    state = dict(modules={"model": model}, optimizers={"sgd": optimizer})
    start, best = 0, {"epoch": 0, "val": -1.0}
    last = T.latest_checkpoint(run_dir)
    if last is not None:
        loaded = T.load_checkpoint(last, **state)
        start, best = loaded["step"], loaded["extra"]["best"]
    T.write_run_config(run_dir, cfg, backbone=backbone, augmentation=augmentation, seed=seed,
                       source_head=source_head, weights=weights)
    log = T.CSVLog(run_dir / "log.csv", resume_step=start if last is not None else None)
    bar = tqdm(range(start, cfg.epochs), initial=start, total=cfg.epochs, desc=f"{backbone} / {augmentation}",
               disable=not progress, mininterval=2)
    for epoch in bar:
        model.train()
        order = torch.Generator().manual_seed(seed * 1_000_003 + epoch)  # exact resume: per-epoch shuffle
        totals: dict[str, float] = {}
        # drop_last: a final batch of one sample would break batch norm at 1x1 feature maps
        loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=order,
                            drop_last=len(train_set) > cfg.batch_size)
        for batch in loader:
            loss, logs = loss_terms(model, batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v / len(loader)
        val = evaluate(model, val_set, device=device)
        done = epoch + 1
        if val > best["val"]:
            best = {"epoch": done, "val": val}
            T.save_checkpoint(run_dir / "best.safetensors", modules={"model": model}, step=done)
        previous = T.latest_checkpoint(run_dir)
        T.save_checkpoint(T.checkpoint_path(run_dir, done), step=done, extra={"best": best}, **state)
        if previous is not None:
            previous.unlink()  # keep one resumable checkpoint (and best.safetensors)
        log.log(done, val_accuracy=val, **totals)
        bar.set_postfix(val=f"{val:.3f}", best=f"{best['val']:.3f}@{best['epoch']}")
    T.load_weights(run_dir / "best.safetensors", {"model": model})
    result = DetectionResult(backbone, augmentation, best["epoch"], best["val"],
                             evaluate(model, test_set, device=device), str(run_dir))
    result_file.write_text(json.dumps(asdict(result), indent=2))
    return result


__all__ = ["DetectionResult", "loss_terms", "predict", "evaluate", "train_classifier"]
