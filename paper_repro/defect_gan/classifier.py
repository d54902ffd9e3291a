"""Defect classification with synthesized samples (Defect-GAN §3.2, Fig. 3, §4.2, Table 3).

A torchvision backbone f_theta (ResNet34 or DenseNet121) with a multi-label defect head, and a source
classifier f_src behind a gradient-reversal layer (GRL; Ganin & Lempitsky 2015) that tells
synthesized from real samples: forward the GRL is the identity, backward it multiplies the gradient
by ``-lambda``, so f_src learns the difference while f_theta is pushed to features where there is none.

Accuracy is CODEBRIM's exact-match ratio (Mundt et al., CVPR 2019): a sample counts as correct only
when its *whole* thresholded label vector equals the ground truth.

Training (§4.2): SGD (lr 1e-3, batch 16), binary cross-entropy over the six labels plus, when the
training set holds synthesized samples, f_src's binary cross-entropy on the source tag, "until
convergence": until the validation accuracy has not improved for ``cfg.patience`` epochs (at most
``cfg.epochs``). The validation accuracy picks the epoch; its test accuracy is the reported number.
The floor every cell must clear is :func:`majority_label_set_accuracy`: always predicting the most
frequent label set of the training set.

``weights=None`` trains from scratch (offline here); ``weights="DEFAULT"`` loads torchvision's
ImageNet weights from torch hub's cache through :mod:`paper_repro.weights` (read without unpickling;
when the file is missing, one line says where to put it and the ``curl`` that fetches it).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset

from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import load_weights, save_checkpoint
from paper_repro.runs.devices import Distributed, resolve_device, seed_everything
from paper_repro.runs.loop import TrainState, fit, sgd
from paper_repro.weights import load_state, torchvision_state_dict

BACKBONES = ("resnet34", "densenet121", "resnet18")


# ------------------------------------------------------------------------------------------
# The gradient-reversal layer (Fig. 3)
# ------------------------------------------------------------------------------------------
class GradientReversal(torch.autograd.Function):
    """y = x forward; dL/dx = -lambda * dL/dy backward (no gradient for lambda)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = float(coefficient)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.coefficient * grad_output, None


def grad_reverse(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(x, coefficient)


class GradientReversalLayer(nn.Module):
    """:class:`GradientReversal` as a module, with its coefficient lambda."""

    def __init__(self, coefficient: float = 1.0):
        super().__init__()
        self.coefficient = coefficient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coefficient)

    def extra_repr(self) -> str:
        return f"coefficient={self.coefficient}"


# ------------------------------------------------------------------------------------------
# The classifier: f_theta, the defect head, f_src
# ------------------------------------------------------------------------------------------
def build_backbone(name: str, weights: str | None = None) -> tuple[nn.Module, int]:
    """(f_theta, feature width): the torchvision network with its ImageNet classifier removed.

    ``weights``: ``None`` (random init), ``"DEFAULT"`` (torchvision's ImageNet weights), or a weights
    file. The file is found and read by :mod:`paper_repro.weights` (torch hub's cache or
    ``$PAPER_REPRO_BACKBONE_WEIGHTS``; never downloaded, never unpickled), not by torchvision's own
    loader, which unpickles it with ``weights_only=False``.
    """
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}: expected one of {', '.join(BACKBONES)}")
    net = getattr(torchvision.models, name)(weights=None)
    if weights is not None:
        state, path = torchvision_state_dict(name, weights)
        load_state(net, state, path)
    if name.startswith("resnet"):
        width, net.fc = net.fc.in_features, nn.Identity()
    else:
        width, net.classifier = net.classifier.in_features, nn.Identity()
    return net, width


class DefectClassifier(nn.Module):
    """f_theta -> (defect logits over the classes, source logit or None)."""

    def __init__(self, backbone: str = "resnet34", num_classes: int = 6, weights: str | None = None,
                 source_head: bool = True, grl_coefficient: float = 1.0, source_hidden: int = 256):
        super().__init__()
        self.backbone_name = backbone
        self.features, width = build_backbone(backbone, weights)
        self.classifier = nn.Linear(width, num_classes)
        # f_src (Fig. 3): a small MLP, as Ganin & Lempitsky's domain classifier, behind the GRL.
        self.source = nn.Sequential(GradientReversalLayer(grl_coefficient), nn.Linear(width, source_hidden),
                                    nn.ReLU(inplace=True), nn.Linear(source_hidden, 1)) if source_head else None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(images)
        source = self.source(h).squeeze(1) if self.source is not None else None
        return self.classifier(h), source


# ------------------------------------------------------------------------------------------
# Exact-match accuracy (CODEBRIM's metric)
# ------------------------------------------------------------------------------------------
def predict_labels(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Multi-hot predictions: sigmoid(logits) >= threshold."""
    return (torch.sigmoid(logits.float()) >= threshold).float()


def exact_match_accuracy(logits: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> float:
    """Fraction of samples whose thresholded prediction equals the label vector in every class."""
    if logits.shape != labels.shape or logits.dim() != 2:
        raise ValueError(f"expected logits and labels of the same (N, C) shape, got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    correct = (predict_labels(logits, threshold) == labels.round()).all(dim=1)
    return correct.float().mean().item()


def majority_label_set_accuracy(train_labels: torch.Tensor, test_labels: torch.Tensor) -> tuple[float, list[int]]:
    """The trivial classifier's exact-match accuracy: always predict the label set (the whole 0/1
    vector) most frequent in ``train_labels``. Returns (accuracy on ``test_labels``, that label set)."""
    if train_labels.dim() != 2 or test_labels.dim() != 2 or len(train_labels) == 0 or len(test_labels) == 0:
        raise ValueError("expected non-empty (N, C) label matrices")
    sets, counts = torch.unique(train_labels.round(), dim=0, return_counts=True)
    majority = sets[int(counts.argmax())]
    accuracy = (test_labels.round() == majority).all(dim=1).float().mean().item()
    return accuracy, [int(v) for v in majority.tolist()]


# ------------------------------------------------------------------------------------------
# Training one Table 3 cell
# ------------------------------------------------------------------------------------------
@dataclass
class DetectionResult:
    backbone: str
    augmentation: str
    best_epoch: int
    val_accuracy: float  # exact-match, in [0, 1]
    test_accuracy: float
    run_dir: str
    epochs_trained: int = 0  # where "until convergence" stopped (patience), at most cfg.epochs


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
                     device: str = "cpu", seed: int = 42, progress: bool = True,
                     stop_at: int | None = None) -> DetectionResult | None:
    """Train one Table 3 cell in ``run_dir`` (or resume it, or read its finished result); ``stop_at``
    ends after that epoch (an interruption: returns None)."""
    run_dir = Path(run_dir)
    result_file = run_dir / "result.json"
    if result_file.is_file():
        return DetectionResult(**json.loads(result_file.read_text()))
    device = resolve_device(device)
    seed_everything(seed)
    model = DefectClassifier(backbone, 6, weights, source_head, cfg.grl_coefficient).to(device)
    optimizer = sgd(model.parameters(), cfg.lr, device, momentum=cfg.momentum)
    progress_state = {"best": {"epoch": 0, "val": -1.0}, "trained": 0}
    patience = getattr(cfg, "patience", 0)

    def epoch(index: int) -> dict[str, float]:
        best = progress_state["best"]
        if patience and index - best["epoch"] >= patience:   # converged: the remaining epochs are skipped
            return {"val_accuracy": best["val"]}
        progress_state["trained"] = index + 1
        model.train()
        order = torch.Generator().manual_seed(seed * 1_000_003 + index)  # exact resume: per-epoch shuffle
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
        if val > progress_state["best"]["val"]:
            progress_state["best"] = {"epoch": index + 1, "val": val}
            save_checkpoint(run_dir / "best.safetensors", modules={"model": model}, step=index + 1)
        return {"val_accuracy": val, **totals}

    fit(run_dir, TrainState({"model": model}, {"sgd": optimizer}), epoch, total=cfg.epochs, config=cfg,
        run_info=dict(paper="detection", backbone=backbone, augmentation=augmentation, seed=seed,
                      source_head=source_head, weights=weights),
        seed=seed, dist=Distributed(), resume=True, keep_last=1, extra=progress_state, progress=progress,
        desc=f"{backbone} / {augmentation}", postfix={"val": "val_accuracy"}, stop_at=stop_at, wait=True)
    if stop_at is not None and stop_at < cfg.epochs:
        return None
    best = progress_state["best"]
    load_weights(run_dir / "best.safetensors", {"model": model})
    result = DetectionResult(backbone, augmentation, best["epoch"], best["val"],
                             evaluate(model, test_set, device=device), str(run_dir), progress_state["trained"])
    result_file.write_text(json.dumps(asdict(result), indent=2))
    return result


__all__ = [
    "BACKBONES", "GradientReversal", "grad_reverse", "GradientReversalLayer", "build_backbone",
    "DefectClassifier", "predict_labels", "exact_match_accuracy", "majority_label_set_accuracy", "DetectionResult",
    "loss_terms", "predict",
    "evaluate", "train_classifier",
]
