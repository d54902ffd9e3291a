"""Fréchet distance between image sets (Defect-GAN §4.1, Tables 1-2), always naming its features.

FID (Heusel et al. 2017) fits a Gaussian to the features of each set and reports

    FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2})

torchmetrics' :class:`~torchmetrics.image.fid.FrechetInceptionDistance` computes it; only the
*features* change here, and every number carries the name of the extractor that produced it
(:class:`FIDScore`), because FIDs from different features are not comparable:

- :class:`InceptionV3Features` - the standard: Inception-v3 pool3 (2048-d), the network of the
  paper's numbers, through torchmetrics/torch-fidelity. Needs its weights file
  (``weights-inception-2015-12-05-6726825d.pth``, found by :func:`paper_repro.weights.locate_inception`
  and read without unpickling); offline it cannot be downloaded, and asking for it then raises
  :class:`~paper_repro.weights.WeightsMissing` saying where to put it and how to fetch it.
- :class:`InDomainFeatures` - the offline default: a small CNN trained here to classify the
  CODEBRIM labels of the training split (6 multi-label outputs), features = its 64-d global-average
  pooled last layer. Trained once per (data, size, seed) and cached with ``cached_run_dir``.
  Numbers are on a different scale from the paper's Inception FIDs; only orderings compare.
- :class:`RandomConvFeatures` - a fixed, randomly initialised CNN (seeded): no training at all.
  Used by the tests; a documented choice when even the small classifier is too expensive.

All extractors take images ``(N, 3, H, W)`` float in ``[0, 1]``.

**Which real images play which part** (:func:`fid_role`). Each real defect image of the training split
has one role, fixed by a hash of its file name (so it holds at every image size, order and seed): half
train the in-domain extractor, a quarter is the *reference* set every synthesizer's samples are compared
with, a quarter is the *ideal synthesizer's* sample (the paper's "ideal defect synthesizer" row,
:func:`ideal_synthesizer_fid`). So the ideal row and the synthesizers are measured alike: sets of the same
size (a generated set is as large as the reference), on images the extractor never trained on (a network's
features of its own training images are tighter than of new ones, which would flatter the ideal row), and
FID's small-sample bias is the same for every row. The generators still train on every defect image.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3

from paper_repro.context import RunContext, as_context
from paper_repro.data.codebrim import CODEBRIM
from paper_repro.data.roots import DataSource
from paper_repro.runs.cached import ensure_current
from paper_repro.runs.checkpoints import load_weights, save_checkpoint
from paper_repro.runs.folders import cached_run_dir, run_lock, write_run_config
from paper_repro.runs.progress import tqdm
from paper_repro.weights import (INCEPTION_WEIGHTS_FILE, WeightsMissing, WeightsRefused, locate_inception,
                                 one_line_reason, read_state_dict)


class InceptionUnavailable(WeightsMissing):
    """Inception-v3 FID was asked for, but torch-fidelity is not installed."""


# ------------------------------------------------------------------------------------------
# Feature extractors: images (N, 3, H, W) in [0, 1] -> features (N, D); each has a .name
# ------------------------------------------------------------------------------------------
class InceptionV3Features(nn.Module):
    """Inception-v3 pool3 features (2048-d), the network the paper's FIDs use (torch-fidelity's port).

    ``weights_path``: the weights file; default: ``$PAPER_REPRO_INCEPTION_WEIGHTS``, else torch hub's
    cache (``<torch hub dir>/checkpoints/weights-inception-2015-12-05-6726825d.pth``); see
    :func:`paper_repro.weights.locate_inception`. Nothing is downloaded. The file is read by
    :func:`paper_repro.weights.read_state_dict` (no unpickling) and handed over as tensors
    (:func:`inception_network`).
    """

    name = "inception-v3 (pool3, 2048-d)"
    num_features = 2048

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        path = locate_inception(weights_path)
        self.net = inception_network(read_state_dict(path), source=path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images.clamp(0, 1) * 255).round().to(torch.uint8)).reshape(len(images), -1)


def inception_network(state: dict[str, torch.Tensor], source: str | Path = "Inception-v3 weights") -> nn.Module:
    """torchmetrics' ``NoTrainInceptionV3`` (torch-fidelity's network) holding the tensors ``state``.

    torch-fidelity's constructor reads its weights itself, always unpickling them
    (``torch.load(path, weights_only=False)``, torch-fidelity 0.4.0 feature_extractor_inceptionv3.py
    lines 90-100; from the web through torch hub when no path is given). So it is never given a
    user's file: it gets an in-memory ``torch.save`` of ``state``, tensors already read safely, bytes
    written here and nowhere else. ``torch.load`` takes a file object as well as a path.
    """
    saved = io.BytesIO()
    torch.save(dict(state), saved)
    saved.seek(0)
    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(InceptionV3Features.num_features)],
                                  feature_extractor_weights_path=saved)
    except ModuleNotFoundError as err:  # torchmetrics defines the class, torch-fidelity is missing
        raise InceptionUnavailable("Inception-v3 FID needs torch-fidelity (pip install torch-fidelity)") from err
    except RuntimeError as err:  # the strict load_state_dict: not Inception-v3's tensors
        raise WeightsRefused(f"{source}: does not fit torch-fidelity's Inception-v3: {one_line_reason(err)}") from None


def small_cnn(widths: Sequence[int] = (16, 32, 64, 64)) -> nn.Sequential:
    """Conv(3x3)-BN-ReLU-MaxPool blocks, then global average pooling: images -> (N, widths[-1])."""
    layers: list[nn.Module] = []
    c_in = 3
    for c in widths:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class RandomConvFeatures(nn.Module):
    """A randomly initialised :func:`small_cnn` (seeded, never trained): a documented, free extractor."""

    def __init__(self, seed: int = 0, widths: Sequence[int] = (16, 32, 64, 64)):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = small_cnn(widths)
        self.num_features = widths[-1]
        self.name = f"random-conv-{widths[-1]}d (untrained, seed {seed})"
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class InDomainFeatures(nn.Module):
    """:func:`small_cnn` trained to classify CODEBRIM's labels; its pooled features feed the FID.

    The features are standardised per dimension with the mean and standard deviation they have on
    the training images (fixed once training ends), so FID is in units of "real-data feature
    variance" rather than of whatever scale the ReLU activations happen to have.
    """

    def __init__(self, num_classes: int = 6, widths: Sequence[int] = (16, 32, 64, 64), name: str = ""):
        super().__init__()
        self.body = small_cnn(widths)
        self.head = nn.Linear(widths[-1], num_classes)
        self.register_buffer("center", torch.zeros(widths[-1]))
        self.register_buffer("spread", torch.ones(widths[-1]))
        self.num_features = widths[-1]
        self.name = name or f"in-domain CNN-{widths[-1]}d"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.body(images) - self.center) / self.spread

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


@dataclass(frozen=True)
class ExtractorConfig:
    """What the cached in-domain extractor depends on (its cache key)."""

    image_size: int
    epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    widths: tuple[int, ...] = (16, 32, 64, 64)


FID_ROLES = ("extractor", "extractor", "reference", "ideal")  # a quarter each, by a hash of the file name


def fid_role(name: str | Path) -> str:
    """The part a real defect image plays in Tables 1-2's FID (see the module's docstring): ``extractor``
    (half), ``reference`` or ``ideal`` (a quarter each), from a hash of its file name alone."""
    return FID_ROLES[hashlib.sha256(Path(name).name.encode()).digest()[0] % len(FID_ROLES)]


def extractor_training_set(data: CODEBRIM) -> Subset:
    """The images the in-domain extractor learns from: every normal image of the split, and the defect
    images whose :func:`fid_role` is ``extractor``."""
    keep = [i for i, (path, labels) in enumerate(data.samples)
            if not any(labels[1:]) or fid_role(path) == "extractor"]  # labels[0] is "Background"
    return Subset(data, keep)


def train_in_domain_features(codebrim_root: str | Path, cfg: ExtractorConfig, seed: int = 42,
                             run_dir: str | Path | None = None, progress: bool = True) -> InDomainFeatures:
    """Train (or load, if ``run_dir`` holds it) the in-domain extractor on CODEBRIM ``train``, less the
    defect images that Tables 1-2 measure FID on (:func:`extractor_training_set`).

    Multi-label BCE over the 6 CODEBRIM labels, Adam, ``cfg.epochs`` epochs; weights are written to
    ``run_dir/extractor.safetensors`` so every chapter reuses them.
    """
    label = (f"in-domain CNN-{cfg.widths[-1]}d ({cfg.image_size}px, CODEBRIM-train labels without the FID sets, "
             f"seed {seed})")
    model = InDomainFeatures(6, cfg.widths, name=label)
    weights = Path(run_dir) / "extractor.safetensors" if run_dir else None
    if weights is not None and weights.is_file():
        load_weights(weights, {"net": model})
        return model.eval()
    data = extractor_training_set(CODEBRIM(codebrim_root, "train", image_size=cfg.image_size))
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = InDomainFeatures(6, cfg.widths, name=label)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        model.train()
        for _ in tqdm(range(cfg.epochs), desc="FID extractor", disable=not progress, mininterval=2):
            for batch in loader:
                loss = nn.functional.binary_cross_entropy_with_logits(model.logits(batch["image"]), batch["labels"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        features = torch.cat([model.body(batch["image"]) for batch in DataLoader(data, batch_size=64)])
        model.center.copy_(features.mean(0))
        model.spread.copy_(features.std(0).clamp_min(1e-6))
    if weights is not None:
        write_run_config(weights.parent, cfg, seed=seed, name=label)
        save_checkpoint(weights, modules={"net": model}, step=cfg.epochs)
    return model


def in_domain_extractor(codebrim: DataSource, image_size: int, ctx: RunContext | str, seed: int = 42,
                        progress: bool = True) -> InDomainFeatures:
    """The cached in-domain extractor for a data set at ``image_size`` (trained on first use, for the
    context's ``gan_tables.extractor_epochs``)."""
    cfg = ExtractorConfig(image_size=image_size, epochs=as_context(ctx).config("gan_tables").extractor_epochs)
    run_dir = cached_run_dir("fid_extractor", cfg, data=codebrim.key, seed=seed)
    with run_lock(run_dir, wait=True):  # two chapters that need it train it once
        ensure_current(run_dir, [__name__], what="fid_extractor")  # weights of other code are retrained
        return train_in_domain_features(codebrim.root, cfg, seed, run_dir, progress)


def resolve_extractor(kind: str, *, codebrim: DataSource | None = None, image_size: int = 128,
                      ctx: RunContext | str = "smoke", seed: int = 42, progress: bool = True) -> nn.Module:
    """``"inception"`` (or raise :class:`~paper_repro.weights.WeightsMissing`), ``"in-domain"``,
    ``"random"``, or ``"auto"``: Inception-v3 when its weights are on this machine, else the in-domain
    CNN, saying so. A weights file that is there but refused (pickled code, corrupt) is an error even
    for ``"auto"``: falling back would hide it."""
    if kind == "inception":
        return InceptionV3Features()
    if kind == "random":
        return RandomConvFeatures(seed)
    if kind not in ("auto", "in-domain"):
        raise ValueError(f"unknown FID extractor {kind!r}: expected auto, inception, in-domain or random")
    if kind == "auto":
        try:
            return InceptionV3Features()
        except WeightsMissing as err:
            print(f"FID: Inception-v3 unavailable ({err}).\nFID: using the in-domain extractor instead; "
                  "its values are not on the paper's scale, compare orderings only.")
    if codebrim is None:
        raise ValueError("the in-domain extractor needs codebrim (the data it is trained on)")
    return in_domain_extractor(codebrim, image_size, ctx, seed, progress)


# ------------------------------------------------------------------------------------------
# The distance
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FIDScore:
    """One FID value with what produced it; ``float(score)`` is the value."""

    value: float
    extractor: str
    n_real: int
    n_fake: int

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        return f"FID {self.value:.2f} [{self.extractor}; {self.n_real} real vs {self.n_fake} generated]"


def _batches(images: torch.Tensor | Iterable[torch.Tensor], batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        yield from images.split(batch_size)
    else:
        yield from images


@torch.no_grad()
def fid(real: torch.Tensor | Iterable[torch.Tensor], fake: torch.Tensor | Iterable[torch.Tensor],
        extractor: nn.Module, batch_size: int = 64, device: str | torch.device = "cpu") -> FIDScore:
    """FID between ``real`` and ``fake`` images ((N, 3, H, W) in [0, 1], or iterables of such batches),
    on ``extractor``'s features, through torchmetrics' ``FrechetInceptionDistance``."""
    extractor = extractor.to(device).eval()
    metric = FrechetInceptionDistance(feature=extractor, normalize=True).to(device)
    for real_flag, images in ((True, real), (False, fake)):
        for batch in _batches(images, batch_size):
            metric.update(batch.to(device).float(), real=real_flag)
    value = float(metric.compute())
    return FIDScore(value, getattr(extractor, "name", type(extractor).__name__),
                    int(metric.real_features_num_samples), int(metric.fake_features_num_samples))


def ideal_synthesizer_fid(sample: torch.Tensor, reference: torch.Tensor, extractor: nn.Module,
                          **kwargs) -> FIDScore:
    """Table 1's "ideal defect synthesizer": real defects it never trained on (``sample``, the ``ideal``
    role of :func:`fid_role`) against the reference set, measured as a synthesizer's samples are."""
    if len(sample) != len(reference):
        raise ValueError(f"the ideal sample ({len(sample)}) and the reference ({len(reference)}) must be "
                         "as large as each other, as a generated set is")
    return fid(reference, sample, extractor, **kwargs)


__all__ = [
    "INCEPTION_WEIGHTS_FILE", "InceptionUnavailable", "InceptionV3Features",
    "inception_network", "small_cnn", "RandomConvFeatures", "InDomainFeatures", "ExtractorConfig",
    "train_in_domain_features", "in_domain_extractor", "resolve_extractor", "FIDScore", "fid",
    "FID_ROLES", "fid_role", "extractor_training_set", "ideal_synthesizer_fid",
]
