"""The four baselines of DADNet's Tables 1-3 (§3.4.1) - FastFlow, PaDiM, Reverse Distillation, STFPM -
as anomalib's *torch* models, trained here with plain loops on this project's data loaders.

anomalib's Lightning engine, pre-processor, post-processor and metrics are deliberately left out:
images come from :class:`paper_repro.data.MVTecAD` (normalised with ImageNet statistics, as
anomalib's pre-processor does), and the anomaly maps are scored by :mod:`paper_repro.evaluation.metrics`
exactly like DADNet's (:mod:`paper_repro.evaluation.scoring`). What is anomalib's: the networks,
their losses, and their optimisers (the settings of each model's ``configure_optimizers``).

Backbones: ``pretrained=True`` lets timm load ImageNet weights (download or Hugging Face cache);
``pretrained="<file>"`` loads a timm state dict (``.safetensors``, or ``.pth``/``.pt`` read with
``weights_only=True``) into the frozen backbone; ``pretrained=False`` keeps random initial weights,
the only choice offline, which every table built that way says.
"""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from paper_repro.errors import UserError

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
        kind = ("ImageNet" if self.pretrained is True else
                f"weights from {Path(str(self.pretrained)).name}" if self.pretrained else "random init")
        return f"{self.backbone} ({kind})"


# anomalib's own settings (``configure_optimizers`` of each Lightning model, anomalib 2.x).
def _fastflow_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)


def _rd_optimizer(model):
    return torch.optim.Adam(list(model.decoder.parameters()) + list(model.bottleneck.parameters()),
                            lr=0.005, betas=(0.5, 0.99))


def _stfpm_optimizer(model):
    return torch.optim.SGD(model.student_model.parameters(), lr=0.4, momentum=0.9, dampening=0.0,
                           weight_decay=1e-3)


@contextlib.contextmanager
def _stfpm_teacher_pretrained(pretrained: bool):
    """STFPM's torch model always asks timm for a pretrained teacher; offline that fails. With
    ``pretrained=False`` its module-level ``TimmFeatureExtractor`` is swapped, for the duration of the
    constructor only, for one with ``pre_trained=False`` (the student is random-initialised anyway)."""
    if pretrained:
        yield
        return
    import anomalib.models.image.stfpm.torch_model as stfpm

    original = stfpm.TimmFeatureExtractor

    def random_init(*args, **kwargs):
        return original(*args, **{**kwargs, "pre_trained": False})

    stfpm.TimmFeatureExtractor = random_init
    try:
        yield
    finally:
        stfpm.TimmFeatureExtractor = original


def _load_backbone(module: nn.Module, path: str | Path) -> None:
    """Load a timm state dict file into a feature extractor (keys of the classifier head ignored)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: backbone weights not found; expected a timm state dict "
                        "(.safetensors, or .pth/.pt) or pretrained=True/False")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    target = getattr(module, "feature_extractor", module)
    missing, _ = target.load_state_dict(state, strict=False)
    if len(missing) == len(target.state_dict()):
        raise UserError(f"{path}: none of its keys match the {type(target).__name__} backbone")


def build(cfg: BaselineConfig) -> nn.Module:
    """anomalib's torch model for ``cfg.method`` at ``cfg.image_size``."""
    require_anomalib()
    timm_weights = cfg.pretrained is True
    size = (cfg.image_size, cfg.image_size)
    if cfg.method == "PaDiM":
        from anomalib.models.image.padim.torch_model import PadimModel

        model = PadimModel(backbone=cfg.backbone, layers=list(LAYERS), pre_trained=timm_weights)
        backbone = model.feature_extractor
    elif cfg.method == "FastFlow":
        from anomalib.models.image.fastflow.torch_model import FastflowModel

        model = FastflowModel(input_size=size, backbone=cfg.backbone, pre_trained=timm_weights)
        backbone = model.feature_extractor
    elif cfg.method == "RD":
        from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel

        model = ReverseDistillationModel(backbone=cfg.backbone, input_size=size, layers=list(LAYERS),
                                         anomaly_map_mode="add", pre_trained=timm_weights)
        backbone = model.encoder
    elif cfg.method == "STFPM":
        from anomalib.models.image.stfpm.torch_model import STFPMModel

        with _stfpm_teacher_pretrained(timm_weights):
            model = STFPMModel(layers=list(LAYERS), backbone=cfg.backbone)
        backbone = model.teacher_model
    else:
        raise ValueError(f"unknown baseline {cfg.method!r}: expected one of {', '.join(METHODS)}")
    if cfg.pretrained and cfg.pretrained is not True:
        _load_backbone(backbone, cfg.pretrained)
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


def fit(model: nn.Module, cfg: BaselineConfig, train_set, device: str | torch.device = "cpu",
        progress: bool = True) -> nn.Module:
    """Train ``model`` on the normal images of ``train_set`` (MVTecAD items) as anomalib would."""
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
    for _ in bar:
        model.train()
        for batch in loader:
            loss = loss_fn(*model(normalize(batch["image"].to(device))))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
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
