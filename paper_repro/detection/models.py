"""Defect classifiers of Defect-GAN §3.2 / Fig. 3: a torchvision backbone f_theta (ResNet34 or
DenseNet121), a multi-label defect head, and a source classifier f_src behind a gradient-reversal
layer that tells synthesized from real samples (so f_theta learns features where they do not differ).

``weights=None`` trains from scratch (offline here); ``weights="DEFAULT"`` loads torchvision's
ImageNet weights, from torch hub's cache or by download, with a clear error when neither works.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from paper_repro.detection.grl import GradientReversalLayer
from paper_repro.errors import UserError

BACKBONES = ("resnet34", "densenet121")


def _weights(name: str, weights: str | None):
    if weights is None:
        return None
    try:
        return torchvision.models.get_model_weights(name)[weights] if weights != "DEFAULT" else \
            torchvision.models.get_model_weights(name).DEFAULT
    except KeyError as err:
        raise UserError(f"unknown weights {weights!r} for {name}: expected None or 'DEFAULT'") from err


def build_backbone(name: str, weights: str | None = None) -> tuple[nn.Module, int]:
    """(f_theta, feature width): the torchvision network with its ImageNet classifier removed."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}: expected one of {', '.join(BACKBONES)}")
    spec = _weights(name, weights)
    net = getattr(torchvision.models, name)(weights=None)
    if spec is not None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(spec.url).name
        try:
            net.load_state_dict(spec.get_state_dict(progress=False, check_hash=False))
        except Exception as err:  # noqa: BLE001 - offline: URLError / OSError from the download
            raise UserError(f"{name} weights={weights!r}: ImageNet weights not found at {cached} and not "
                            f"downloadable ({type(err).__name__}); put the file there or use weights=None") from err
    if name == "resnet34":
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


__all__ = ["BACKBONES", "build_backbone", "DefectClassifier"]
