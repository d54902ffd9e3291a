"""The four baselines of DADNet's Tables 1-3 (§3.4.1) - FastFlow, PaDiM, Reverse Distillation, STFPM -
as anomalib's *torch* models, trained here with plain loops on this project's data loaders.

anomalib's Lightning engine, pre-processor, post-processor and metrics are deliberately left out:
images come from :class:`paper_repro.data.MVTecAD` (normalised with ImageNet statistics, as
anomalib's pre-processor does), and the anomaly maps are scored by :mod:`paper_repro.evaluation.metrics`
exactly like DADNet's (:mod:`paper_repro.evaluation.scoring`). What is anomalib's: the networks,
their losses, and their optimisers (the settings of each model's ``configure_optimizers``).

Backbones are always built by timm with random initial weights (``pre_trained=False``: timm's own
download path is never taken); ImageNet weights are then read by :mod:`paper_repro.weights`, never
unpickled, into the frozen backbone (STFPM's teacher):

- ``pretrained=True``: timm's ImageNet weights for the backbone, ``model.safetensors`` of its Hugging
  Face repository (``timm/resnet18.a1_in1k``, ``timm/wide_resnet50_2.racm_in1k``) in the local Hugging
  Face cache (:func:`paper_repro.weights.locate_timm`; when absent, one line with the ``hf download``
  command that fetches it);
- ``pretrained="<file>"``: a timm state dict file (``.safetensors``, or ``.pth``/``.pt`` holding only
  tensors);
- ``pretrained=False``: random initial weights, the only choice offline, which every table built
  that way says.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from paper_repro.errors import UserError
from paper_repro.runs.progress import tqdm
from paper_repro.weights import WeightsMissing, load_state, locate_timm, read_state_dict, timm_repo_id

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYERS = ("layer1", "layer2", "layer3")
METHODS = ("FastFlow", "PaDiM", "RD", "STFPM")  # the column order of DADNet's Tables 1-3


def require_anomalib():
    """Import anomalib, or raise a :class:`UserError` naming the extra to install."""
    try:
        with warnings.catch_warnings():  # deprecation notices of timm/anomalib internals, not ours
            warnings.simplefilter("ignore", FutureWarning)
            import anomalib
            import anomalib.models  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise UserError("the baselines need anomalib: pip install '.[baselines]' (or pip install anomalib)") from err
    return anomalib


def anomalib_version() -> str | None:
    try:
        return require_anomalib().__version__
    except UserError:
        return None


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """One baseline's settings. ``epochs`` is ignored by PaDiM (one pass, then a Gaussian fit)."""

    method: str
    backbone: str = "resnet18"
    image_size: int = 256
    batch_size: int = 8
    epochs: int = 1
    pretrained: bool | str = False
    seed: int = 42

    def describe_backbone(self) -> str:
        """``resnet18 (random init)``, ``resnet18 (ImageNet, timm/resnet18.a1_in1k)`` or
        ``resnet18 (weights from <file name>)``: what a table's caption says about the backbone."""
        if self.pretrained is True:
            return f"{self.backbone} (ImageNet, {_repo_or_unknown(self.backbone)})"
        if self.pretrained:
            return f"{self.backbone} (weights from {Path(str(self.pretrained)).name})"
        return f"{self.backbone} (random init)"


def _repo_or_unknown(backbone: str) -> str:
    try:
        return timm_repo_id(backbone)
    except UserError:
        return "no timm weights known"


# anomalib's own settings (``configure_optimizers`` of each Lightning model, anomalib 2.x).
def _fastflow_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)


def _rd_optimizer(model):
    return torch.optim.Adam(list(model.decoder.parameters()) + list(model.bottleneck.parameters()),
                            lr=0.005, betas=(0.5, 0.99))


def _stfpm_optimizer(model):
    return torch.optim.SGD(model.student_model.parameters(), lr=0.4, momentum=0.9, dampening=0.0,
                           weight_decay=1e-3)


def _stfpm_model(layers: list[str], backbone: str) -> nn.Module:
    """anomalib's ``STFPMModel``, assembled here rather than by its constructor, which hard-codes a
    teacher with ``pre_trained=True`` (timm's own download and cache). The same parts, with the same
    settings, in the order of ``STFPMModel.__init__`` (anomalib 2.7, models/image/stfpm/torch_model.py
    lines 85-106), but the teacher starts random like every other backbone here; :func:`build` then
    loads its ImageNet weights. (``tests/test_weights.py`` checks the parts against anomalib's own.)"""
    from anomalib.models.components import TimmFeatureExtractor
    from anomalib.models.image.stfpm.anomaly_map import AnomalyMapGenerator
    from anomalib.models.image.stfpm.torch_model import STFPMModel

    model = STFPMModel.__new__(STFPMModel)
    nn.Module.__init__(model)
    model.tiler = None
    model.backbone = backbone
    model.teacher_model = TimmFeatureExtractor(backbone=backbone, pre_trained=False, layers=layers).eval()
    model.student_model = TimmFeatureExtractor(backbone=backbone, pre_trained=False, layers=layers,
                                               requires_grad=True)
    model.teacher_model.requires_grad_(False)  # the teacher is fixed
    model.anomaly_map_generator = AnomalyMapGenerator()
    return model


def backbone_weights(cfg: BaselineConfig) -> Path | None:
    """The ImageNet weights file ``cfg`` asks for (``None`` for random init), found without building
    anything: ``pretrained=True`` -> the Hugging Face cache, ``pretrained="<file>"`` -> that file."""
    if cfg.pretrained is True:
        return locate_timm(cfg.backbone)
    if not cfg.pretrained:
        return None
    path = Path(str(cfg.pretrained)).expanduser()
    if not path.is_file():
        raise WeightsMissing(f"{path}: backbone weights not found; expected a timm state dict "
                             "(.safetensors, or .pth/.pt) or pretrained=True/False")
    return path


def _untrained(cfg: BaselineConfig) -> tuple[nn.Module, nn.Module]:
    """(anomalib's torch model for ``cfg.method`` with a random-init backbone, that frozen backbone)."""
    size = (cfg.image_size, cfg.image_size)
    if cfg.method == "PaDiM":
        from anomalib.models.image.padim.torch_model import PadimModel

        model = PadimModel(backbone=cfg.backbone, layers=list(LAYERS), pre_trained=False)
        return model, model.feature_extractor
    if cfg.method == "FastFlow":
        from anomalib.models.image.fastflow.torch_model import FastflowModel

        model = FastflowModel(input_size=size, backbone=cfg.backbone, pre_trained=False)
        return model, model.feature_extractor
    if cfg.method == "RD":
        from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel

        model = ReverseDistillationModel(backbone=cfg.backbone, input_size=size, layers=list(LAYERS),
                                         anomaly_map_mode="add", pre_trained=False)
        return model, model.encoder
    if cfg.method == "STFPM":
        model = _stfpm_model(list(LAYERS), cfg.backbone)
        return model, model.teacher_model
    raise ValueError(f"unknown baseline {cfg.method!r}: expected one of {', '.join(METHODS)}")


def build(cfg: BaselineConfig) -> nn.Module:
    """anomalib's torch model for ``cfg.method`` at ``cfg.image_size``, its frozen backbone holding the
    weights ``cfg.pretrained`` names (read by :func:`paper_repro.weights.read_state_dict`)."""
    require_anomalib()
    weights = backbone_weights(cfg)  # before building: a missing file stops here
    model, backbone = _untrained(cfg)
    if weights is not None:
        # timm's network inside anomalib's extractor; an ImageNet file also holds layers it cuts off
        network = getattr(backbone, "feature_extractor", backbone)
        load_state(network, read_state_dict(weights), weights, ignore_unexpected=True)
    return model


def _loss(method: str) -> Callable:
    if method == "FastFlow":
        from anomalib.models.image.fastflow.loss import FastflowLoss

        return FastflowLoss()
    if method == "RD":
        from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss

        return ReverseDistillationLoss()
    from anomalib.models.image.stfpm.loss import STFPMLoss

    return STFPMLoss()


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> ImageNet-normalised (what anomalib's pre-processor feeds the backbones)."""
    mean = images.new_tensor(IMAGENET_MEAN)[:, None, None]
    std = images.new_tensor(IMAGENET_STD)[:, None, None]
    return (images - mean) / std


MILESTONE_POINTS = 10  # a trained baseline is measured after at most about this many epochs


def milestone_epochs(epochs: int, points: int = MILESTONE_POINTS) -> list[int]:
    """The epochs after which :func:`fit` calls ``at_milestone``: every epoch up to ``points`` epochs, else
    every ``epochs // points``-th, and always the last (500 epochs: 50, 100, ..., 500)."""
    every = max(1, epochs // points)
    return sorted(set(range(every, epochs + 1, every)) | ({epochs} if epochs > 0 else set()))


def fit(model: nn.Module, cfg: BaselineConfig, train_set, device: str | torch.device = "cpu",
        progress: bool = True, at_milestone: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Train ``model`` on the normal images of ``train_set`` (MVTecAD items) as anomalib would.

    ``at_milestone(epoch, model)`` is called, the model in eval mode, after each of
    :func:`milestone_epochs` (a learning curve; PaDiM, one pass and a Gaussian fit, has none); the
    random state is restored after it, so training goes on as it would have without it."""
    device = torch.device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=generator)
    if cfg.method == "PaDiM":  # one pass to collect embeddings, then a Gaussian per patch
        model.train()
        for batch in tqdm(loader, desc="PaDiM embed", disable=not progress, leave=False):
            model(normalize(batch["image"].to(device)))
        model.fit()
        return model.eval()
    optimizers = {"FastFlow": _fastflow_optimizer, "RD": _rd_optimizer, "STFPM": _stfpm_optimizer}
    optimizer = optimizers[cfg.method](model)
    loss_fn = _loss(cfg.method)
    bar = tqdm(range(cfg.epochs), desc=cfg.method, disable=not progress, leave=False, mininterval=2)
    milestones = set(milestone_epochs(cfg.epochs)) if at_milestone is not None else set()
    for epoch in bar:
        model.train()
        for batch in loader:
            loss = loss_fn(*model(normalize(batch["image"].to(device))))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if epoch + 1 in milestones:
            with torch.random.fork_rng(devices=[]):  # measuring draws no number training would have drawn
                at_milestone(epoch + 1, model.eval())
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, test_set, batch_size: int = 8, device: str | torch.device = "cpu",
            progress: bool = True) -> dict[str, torch.Tensor]:
    """Anomaly maps and image scores on ``test_set`` (MVTecAD items), in the keys DADNet's
    :func:`paper_repro.dadnet.evaluate.predict` uses: ``image, mask, label, pred, score``.

    ``pred`` is the raw anomaly map (higher = more anomalous, not a probability); ``score`` is the
    model's own image score (the map's maximum for all four)."""
    model.eval().to(device)
    out: dict[str, list] = {k: [] for k in ("image", "mask", "label", "pred", "score")}
    for batch in tqdm(DataLoader(test_set, batch_size=batch_size), desc="baseline eval",
                      disable=not progress, leave=False):
        result = model(normalize(batch["image"].to(device)))
        out["image"].append(batch["image"])
        out["mask"].append(batch["mask"])
        out["label"].append(torch.as_tensor(batch["label"]))
        out["pred"].append(result.anomaly_map.float().cpu().reshape(len(batch["image"]), 1,
                                                                    *batch["image"].shape[-2:]))
        out["score"].append(result.pred_score.float().cpu().reshape(-1))
    return {k: torch.cat(v) for k, v in out.items()}
