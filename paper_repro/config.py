"""Scale profiles and the papers' hyper-parameters, written once.

Every chapter and CLI command takes a ``scale``:

- ``smoke``: CI. Tiny widths, 32-64 px, a handful of steps; each chapter well under a minute on 2 CPU cores.
- ``demo``:  the rendered book on a laptop CPU. Minutes per chapter, meaningful pictures and numbers
  on the bundled synthetic data.
- ``full``:  exactly the papers' settings, on a GPU and the real data sets.

The ``full`` values below *are* the papers' hyper-parameters (section cited beside each). The
smaller scales override sizes and counts, never the code path; the one exception, DADNet's ``demo``
learning rate, is explained beside it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


SCALES = ("smoke", "demo", "full")
DEFAULT_SEED = 42  # DADNet §3.2 trains with seed 42; the whole book uses it.


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is one of :data:`SCALES`, else raise a one-line ``ValueError``."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: expected one of {', '.join(SCALES)}")
    return scale


# SDGM checkpoints that are names, not folders or model ids
TINY_SD_MODEL = "tiny"  # SDGM's offline, randomly initialised pipeline (tests only); not a checkpoint on disk
# SDGM's stand-in for Stable Diffusion at smoke and demo: a small inpainting diffusion model the project
# pretrained itself and ships in paper_repro/standin/sdgm_standin/ (MODEL_CARD.md; `dadnet sdgm-pretrain`)
STANDIN_SD_MODEL = "standin"


# --------------------------------------------------------------------------------------------
# Defect-GAN (Zhang et al., WACV 2021)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DefectGANConfig:
    # §4.1: "all images are resized to 128x128", batch 4, 500k iterations, ~1 day on a 2080Ti.
    image_size: int = 128
    batch_size: int = 4
    iterations: int = 500_000
    # §4.1: WGAN-GP [2, 14] replaces eq. (5); one generator update every five critic updates.
    n_critic: int = 5
    lambda_gp: float = 10.0  # gradient-penalty weight of WGAN-GP (Gulrajani et al.)
    # §4.1: Adam with beta1 = 0.5, beta2 = 0.999; lr starts at 2e-4 and decays to 1e-6.
    lr: float = 2e-4
    lr_end: float = 1e-6
    betas: tuple[float, float] = (0.5, 0.999)
    # §3.1 eq. (11)-(12): lambda_cls^r, lambda_cls^f, lambda_rec, lambda_sd-cyc, lambda_sd-con.
    lambda_cls_real: float = 2.0
    lambda_cls_fake: float = 5.0
    lambda_rec: float = 5.0
    lambda_sd_cyc: float = 5.0
    lambda_sd_con: float = 1.0
    # §4.1/§4.2: 50,000 extra normal crops for training; 50,000 synthesized defects for Table 3.
    extra_normals: int = 50_000
    # Where the extra normals come from (paper_repro.defect_gan.data.EXTRA_NORMALS_SOURCES). §4.1 crops
    # them "from the original full-resolution images": "original", windows of CODEBRIM's photographs
    # (CODEBRIM_original_images.zip) that avoid every annotated defect box. "background-recrop": the
    # named fallback when those are absent, re-crops of train/background. "procedural": the bundled
    # synthetic concrete, allowed only with data this project generated (never mixed into a real set).
    # "auto" (smoke, demo) follows the data: procedural for generated data (bundled, or a `data synth`
    # folder's SYNTHETIC.json), original for a real CODEBRIM that has its photographs, else background-recrop.
    extra_normals_source: str = "original"
    n_synthesized: int = 50_000
    # Architecture: StarGAN's generator/discriminator widths (Choi et al. 2018), SPADE hidden 128.
    conv_dim: int = 64
    n_res_blocks: int = 6
    d_conv_dim: int = 64
    d_repeat: int = 6
    spade_hidden: int = 128
    # Table 2 ablation switches: spatial & categorical control, adaptive noise injection,
    # layer-wise composition, spatial constraints (eq. 9-10). All off = StarGAN; scc only = StarGAN+SPADE.
    scc: bool = True
    ani: bool = True
    lwc: bool = True
    sc: bool = True
    # Not stated in the paper: how the map head starts. With a bias-free head m starts near 0.5, a
    # faint blend of f over the whole image, and a short run keeps it there: at demo (4,000 iterations)
    # m stayed ~0.08 everywhere and a CorrosionStain box changed the outside as much as the inside
    # (mean |d - n| 0.0204 vs 0.0201). Starting m at 0.02 (an empty map, as eq. 10 asks) and letting
    # it grow where the defect goes gave 0.0127 outside vs 0.0405 inside on the same data and seed.
    mask_init: float | None = 0.02
    # Not stated in the paper: how G upsamples. It says only that G "follows the common image-to-image
    # translation networks"; StarGAN's stride-2 transposed convs ("transposed") painted a period-2 lattice
    # into the foreground f. "resize-conv" (nearest x2, then a 3x3 conv; Odena et al., Distill 2016)
    # is this project's choice, the same at every scale. Measured at demo (docs/measurements.md, "Defect-GAN's
    # checkerboard"): Nyquist share of the painted defects 0.012-0.037 (18-54x the real crops' 0.0006) with
    # "transposed" after 500 iterations, 0.0005-0.0008 (0.7-1.3x) with "resize-conv" after 500 and 4,000.
    upsample: str = "resize-conv"
    # Execution (not from the paper): mixed precision (paper_repro.runs.precision: auto = bf16 on a CUDA
    # GPU that has it, fp16 + loss scaling on one that does not, fp32 on the CPU).
    precision: str = "auto"
    # Bookkeeping (not from the paper). A checkpoint (weights + both Adams) is ~0.7 GB at full; keeping
    # the last two and one every 100k iterations bounds a 500k run to 7 of them (50 without).
    log_every: int = 100
    sample_every: int = 5_000
    checkpoint_every: int = 10_000
    keep_last: int = 2
    milestone_every: int = 100_000


# --------------------------------------------------------------------------------------------
# Defect classification with synthesized samples (Defect-GAN §3.2, §4.2, Table 3)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionConfig:
    # §4.2: SGD, lr 1e-3, batch 16, 224x224, "until convergence", best validation checkpoint.
    image_size: int = 224
    batch_size: int = 16
    lr: float = 1e-3
    momentum: float = 0.9  # not stated in the paper; the usual SGD setting
    epochs: int = 100  # "until convergence": an upper bound, the validation set picks the epoch
    # "Until convergence": training stops once the validation accuracy has not improved for this many
    # epochs (0: never stop early); the best validation epoch's checkpoint is the one tested.
    patience: int = 10
    backbones: tuple[str, ...] = ("resnet34", "densenet121")
    grl_coefficient: float = 1.0  # gradient-reversal strength (Ganin & Lempitsky 2015)
    n_synthesized: int = 50_000  # §4.2: 50,000 synthesized defects (+ restored normals for balance)
    max_train_samples: int = 0  # 0: the whole training set; smoke draws a few batches to stay fast


# --------------------------------------------------------------------------------------------
# DADNet (Zeng et al., J. GDUT 2025)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DADNetConfig:
    # §3.2: Adam, lr 1e-4 -> 1e-5 at epoch 400 -> 1e-6 at epoch 600, stop at 700; seed 42; 256 px; batch 8.
    image_size: int = 256
    batch_size: int = 8
    epochs: int = 700
    lr: float = 1e-4
    lr_milestones: tuple[int, ...] = (400, 600)
    lr_gamma: float = 0.1
    seed: int = DEFAULT_SEED
    # §2.2 eq. (10): L_rec = (1 - lambda) L2 + lambda (1 - SSIM), lambda = 0.85.
    lambda_ssim: float = 0.85
    # §2.2 eq. (11): focal loss with beta = 0.25, delta = 2.
    focal_beta: float = 0.25
    focal_delta: float = 2.0
    # §2.3 eq. (15): channel reduction gamma = 0.25 in DRAM.
    dram_gamma: float = 0.25
    # §3.2: four defect prompts per category for SDGM.
    prompts_per_category: int = 4
    # §3.4.1: every model evaluated three times, results averaged.
    runs: int = 3
    # The eight MVTec AD categories of Tables 1-3.
    categories: tuple[str, ...] = (
        "carpet", "leather", "tile", "wood", "bottle", "toothbrush", "cable", "screw",
    )
    # U-Net widths: DRAEM's reconstructive (128) and discriminative (64) base widths.
    recon_width: int = 128
    disc_width: int = 64
    # SDGM: a real Stable Diffusion inpainting checkpoint at full scale (a model id or a folder; the
    # --sd-model flag, a chapter's sd_model parameter or $PAPER_REPRO_SD_MODEL override it).
    sd_model_id: str = "stable-diffusion-v1-5/stable-diffusion-inpainting"
    sd_steps: int = 50
    sd_strength: float = 0.75  # how far eq. (1) noises z_0 before denoising (not stated in the paper)
    # SDGM images generated per training image (the bank); each epoch then draws one of them under a
    # random flip/rotation of (D, M_g), so SDGM's pseudo-anomalies are fresh every epoch like DGM's
    # (§3.2 does not say how many; one fixed image per normal for 700 epochs would bias Table 4).
    sdgm_variants: int = 8
    # The seed the bank is drawn with: one bank per category (and SDGM checkpoint), shared by the training
    # seeds, as a data set is; the run's seed still draws which variant each epoch shows, under which
    # flip. §3.2 does not say; the project's choice, at every scale: the bank is SDGM's expensive part
    # (Stable Diffusion over every training image, sdgm_variants times), and three seeds drawing three
    # banks tripled it.
    sdgm_bank_seed: int = DEFAULT_SEED
    # Which R the discriminative network learns from; §3.2 does not say. True: the reconstructive
    # network's inference-mode output (running statistics, no gradient), the R the discriminative
    # network is given at test time. False: its training-mode output (batch statistics), as DRAEM.
    # True at every scale: at demo it lifted tile's image AUROC from 89.3 to 94.9 (mean of 3 seeds) and
    # no category lost (docs/measurements.md); CI trains both branches.
    eval_mode_reconstruction: bool = True
    # Training and test images used per category (0: all); only a dry run of the batch caps them.
    train_limit: int = 0
    test_limit: int = 0
    # Execution and bookkeeping (not from the paper): see DefectGANConfig.precision. A checkpoint is
    # ~1.2 GB at full (two U-Nets + two Adams); the last two and every 100th epoch bound a 700-epoch
    # run to 9 of them (70 without).
    precision: str = "auto"
    checkpoint_every: int = 10  # epochs
    keep_last: int = 2
    milestone_every: int = 100


# --------------------------------------------------------------------------------------------
# The results tables: how their models are trained and measured
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GANTablesConfig:
    """How Defect-GAN's Tables 1-2 measure FID (the synthesizers' own budget is the profile
    ``defect_gan_tables``, a :class:`DefectGANConfig`)."""

    # FID features (paper_repro.evaluation.fid): the paper's Inception-v3 at full; "auto" elsewhere
    # (Inception-v3 when its weights are on the machine, else the in-domain extractor, saying so).
    fid_features: str = "inception"
    # In-domain FID extractor: epochs of the small CODEBRIM classifier whose features stand in for
    # Inception-v3's when its weights are absent.
    extractor_epochs: int = 20
    training_seeds: int = 3  # Table 2: synthesizers trained per row, seeds seed .. seed + n - 1
    sample_draws: int = 3    # Table 2: independent sample draws per trained synthesizer


@dataclass(frozen=True)
class BaselinesConfig:
    """DADNet's Tables 1-4 (§3.4): categories, and the four anomalib baselines' training.

    DADNet's own runs behind these tables are the profile ``dadnet_tables`` (a :class:`DADNetConfig`).
    """

    categories: tuple[str, ...] = DADNetConfig.categories           # Tables 1-3
    ablation_categories: tuple[str, ...] = DADNetConfig.categories  # Table 4, averaged over these
    # Seeds of the bridge chapter (not a paper's table): the paper's three at full; one at demo, where two
    # more seeds of its two Defect-GAN sources are four more DADNet runs (~8 CPU-minutes on 2026-12-08).
    bridge_runs: int = 3
    # Epochs of the methods' own papers; PaDiM makes one pass and fits a Gaussian.
    fastflow_epochs: int = 500
    rd_epochs: int = 200
    stfpm_epochs: int = 100
    # anomalib's default backbones: ResNet-18, and Wide ResNet-50 for Reverse Distillation.
    backbone: str = "resnet18"
    rd_backbone: str = "wide_resnet50_2"
    pretrained: bool = True  # ImageNet weights (True needs them on this machine)
    batch_size: int = 8

    def epochs(self, method: str) -> int:
        return {"FastFlow": self.fastflow_epochs, "RD": self.rd_epochs, "STFPM": self.stfpm_epochs}.get(method, 1)

    def backbone_of(self, method: str) -> str:
        return self.rd_backbone if method == "RD" else self.backbone


@dataclass(frozen=True)
class BundledDataConfig:
    """Sizes of the bundled synthetic data set (paper_repro.data.synthetic) at each scale.

    ``n_test`` is per test folder. At ``demo`` the test sets are as large as MVTec AD's texture
    categories' (19-33 good images): with 10, one image moved image AUROC by up to 10 points.
    """

    size: int = 256
    n_train: int = 400
    n_test: int = 25
    codebrim_train: int = 3000
    codebrim_test: int = 300


# --------------------------------------------------------------------------------------------
# Profiles: each named configuration at each scale
# --------------------------------------------------------------------------------------------
# The paper's values are the dataclass defaults (``full``); ``smoke`` and ``demo`` override sizes and
# counts. A profile with a base starts from the base profile's overrides at the same scale.
_GAN_SMOKE = dict(image_size=32, batch_size=2, iterations=10, conv_dim=8, n_res_blocks=1, d_conv_dim=8,
                  d_repeat=3, spade_hidden=16, extra_normals=16, extra_normals_source="auto",
                  n_synthesized=16, log_every=1, sample_every=5, checkpoint_every=5)

PROFILES: dict[str, tuple[type, dict[str, dict[str, Any]]]] = {
    # Every Defect-GAN chapter shares the run of this profile.
    "defect_gan": (DefectGANConfig, {
        "smoke": _GAN_SMOKE,
        # demo: 2,500 critic / 500 generator updates, ~400 ms an iteration on one thread with the other core
        # busy on 2026-12-08 (157 ms on 2026-12-03's faster machine): 994 s. Measured against 4,000
        # iterations (the budget before, seed 42; Tables 1-2's FID procedure with the in-domain extractor,
        # three draws of 121): FID 76.1 against 73.8, Nyquist-share ratios to the real defects 0.59-1.11x
        # against 0.74-1.29x (docs/measurements.md): the same quality for 60 % of the time.
        # SPADE's hidden width is the feature width: at 32 (> 16) a step cost 182 ms, 4.55x StarGAN's FLOPs.
        "demo": dict(image_size=64, batch_size=4, iterations=2_500, conv_dim=16, n_res_blocks=3,
                     d_conv_dim=16, d_repeat=5, spade_hidden=16, extra_normals=2_000,
                     extra_normals_source="auto", n_synthesized=1_000, log_every=20,
                     sample_every=500, checkpoint_every=500),
        "full": {},
    }),
    # The seven synthesizers of Defect-GAN's Tables 1-3, on one budget. At demo: 500 iterations
    # (100 generator updates) at 32 px with widths 8, 52-57 ms an iteration on one thread on 2026-12-08
    # (26-28 ms on 2026-12-04's faster machine): ~30 s a run, so that seven GANs x three seeds train inside
    # the book's hour. Far too short to converge, and the tables say so: with resize-convolution even
    # 3,000 iterations left rows' FID still falling (docs/measurements.md), so no demo budget that fits the
    # hour decides Tables 1-2; this one shows the procedure at the lowest cost. A milestone checkpoint every
    # 100 iterations, FID measured at each (synthesizers.fid_curve): the curve that says "still learning".
    "defect_gan_tables": (DefectGANConfig, {
        "smoke": {},
        "demo": dict(image_size=32, batch_size=4, iterations=500, conv_dim=8, n_res_blocks=1,
                     spade_hidden=8, d_conv_dim=8, d_repeat=3, extra_normals=500,
                     log_every=10, sample_every=250, checkpoint_every=100, milestone_every=100, keep_last=1),
        "full": {},
    }),
    "gan_tables": (GANTablesConfig, {
        "smoke": dict(fid_features="auto", extractor_epochs=2, training_seeds=1, sample_draws=2),
        "demo": dict(fid_features="auto", extractor_epochs=8, training_seeds=3, sample_draws=3),
        "full": {},
    }),
    "detection": (DetectionConfig, {
        "smoke": dict(image_size=32, batch_size=8, epochs=1, n_synthesized=8, max_train_samples=8, patience=0),
        # demo: "until convergence" is until 3 epochs bring no better validation accuracy (at most 6),
        # three seeds per cell, ResNet18: the smallest of the paper's family (ResNet34 and DenseNet121 run at
        # full). A training sample on one thread, the other core busy, 2026-12-08: ResNet18 15.6 ms at 32 px,
        # 19.4 ms at 40 px; ResNet34 35 ms at 40 px (13 ms on 2026-12-04's faster machine;
        # benchmarks/bench_classifier.py). All 720 training crops and lr 1e-2:
        # with 480 crops or lr 1e-3 the classifiers stayed at the trivial accuracy. 32 px: at 40 or 48 px the
        # real-data classifiers reached 40-44 % exact-match on the test split by epoch 5-10, at 32 px ~37 %
        # (trivial 33.3 %; docs/measurements.md), but the synthesizers behind the table train 500 iterations
        # at demo, far from converged, so its claims are undecided at this budget whatever the classifier
        # costs: the cheapest classifier that runs the procedure (11-16 s an epoch) keeps the book's hour.
        "demo": dict(image_size=32, batch_size=16, lr=1e-2, epochs=6, patience=3, n_synthesized=240,
                     max_train_samples=0, backbones=("resnet18",)),
        "full": {},
    }),
    "dadnet": (DADNetConfig, {
        "smoke": dict(image_size=32, batch_size=4, epochs=2, lr_milestones=(1, 2), recon_width=8,
                      disc_width=8, sd_steps=2, sdgm_variants=2, runs=1, categories=("tile", "wood"),
                      checkpoint_every=1, milestone_every=1, sd_model_id=STANDIN_SD_MODEL),
        # demo: two categories, one of each world (tile: procedural; grass: a photographed surface, the one
        # furthest from the target, so the demo does not pick its easy case), three seeds each (42,
        # 43, 44: Tables 1-4 report mean and spread), 16 epochs of 20 steps. The budget is set by the book's
        # hour on this project's 2-core machine, whose speed varies between sessions: on 2026-12-08 a demo
        # step cost 0.27 s (0.155 s on 2026-12-03), so 20 epochs took ~110-125 s a run with the other core
        # busy (docs/measurements.md, "The hour on a slower machine"); at 20 the book's 18 DADNet runs, its
        # baselines and Defect-GAN's tables were estimated not to fit the hour. 20 epochs against 36: tile (DGM +
        # DRAM, seed 42) 93.8 / 94.6 image / pixel AUROC, grass 73.5 / 76.8 (36 epochs, seed 42: grass
        # 79.3 / 85.8); 80 training images instead of 160 halve the cost but cost tile 6 points (87.5 /
        # 91.3); 32 px instead of 64 saves little (the step is overhead-bound) and costs more (88.8 / 92.4).
        # Milestones near the paper's 400/600-of-700 proportions (10/16 = 0.63, 12/16 = 0.75), the second
        # placed so that the last four epochs - both windows of the L_Focal plateau test - run at the final
        # rate. lr 1e-3: demo makes 320 optimiser steps where the paper makes ~21,000; at lr 1e-4 the
        # detector is far from converged by then. A milestone checkpoint every 4 epochs: four points (4-16)
        # at which Tables 1-4 judge convergence on their own metrics (full keeps 100, 200, ..., 700).
        "demo": dict(image_size=64, batch_size=8, epochs=16, lr=1e-3, lr_milestones=(10, 12),
                     recon_width=8, disc_width=8, sd_steps=8, sdgm_variants=4, runs=3,
                     categories=("tile", "grass"), checkpoint_every=4, milestone_every=4,
                     sd_model_id=STANDIN_SD_MODEL),
        "full": {},
    }),
    # DADNet's runs behind Tables 1-4: the training chapter's budget at every scale, so the chapter's
    # run (seed 42, SDGM + DRAM) is the tables' first and is trained once.
    "dadnet_tables": (DADNetConfig, {"smoke": {}, "demo": {}, "full": {}}),
    "baselines": (BaselinesConfig, {
        "smoke": dict(categories=("tile",), ablation_categories=("tile",), bridge_runs=1, fastflow_epochs=1, rd_epochs=1,
                      stfpm_epochs=1, rd_backbone="resnet18", pretrained=False, batch_size=4),
        "demo": dict(categories=("tile", "grass"), ablation_categories=("tile",), bridge_runs=1,
                     fastflow_epochs=4, rd_epochs=4, stfpm_epochs=4, rd_backbone="resnet18",
                     pretrained=False),
        "full": {},
    }),
    "bundled_data": (BundledDataConfig, {
        "smoke": dict(size=64, n_train=12, n_test=3, codebrim_train=48, codebrim_test=12),
        "demo": dict(size=128, n_train=160, n_test=30, codebrim_train=720, codebrim_test=90),
        "full": {},
    }),
}
PROFILE_BASES = {"defect_gan_tables": "defect_gan", "dadnet_tables": "dadnet"}

# A dry run of the whole batch (``python -m paper_repro reproduce --scale full --dry-run``): the full
# profiles' geometry - image sizes, widths, batch sizes, the real loaders and weights - with every count
# capped to a step or two, so a GPU user checks the batch in minutes before a multi-day run.
_GAN_DRY = dict(iterations=5, extra_normals=8, n_synthesized=8, log_every=1, sample_every=5, checkpoint_every=5)
_DADNET_DRY = dict(epochs=1, lr_milestones=(1,), runs=1, sdgm_variants=1, categories=DADNetConfig.categories[:1],
                   train_limit=8, test_limit=2, checkpoint_every=1)  # one batch of 8
DRY_RUN_CAPS: dict[str, dict[str, Any]] = {
    "defect_gan": _GAN_DRY,
    "defect_gan_tables": _GAN_DRY,
    "gan_tables": dict(extractor_epochs=1, training_seeds=1, sample_draws=1),
    "detection": dict(epochs=1, n_synthesized=8, max_train_samples=16),
    "dadnet": _DADNET_DRY,
    "dadnet_tables": _DADNET_DRY,
    "baselines": dict(categories=DADNetConfig.categories[:1], ablation_categories=DADNetConfig.categories[:1],
                      fastflow_epochs=1, rd_epochs=1, stfpm_epochs=1),
    "bundled_data": dict(n_train=16, n_test=2, codebrim_train=24, codebrim_test=8),
}


def sd_model_for(cfg: "DADNetConfig", override: str | None = None) -> str:
    """The SDGM checkpoint a DADNet run uses: ``override`` (``--sd-model``), else ``cfg.sd_model_id`` (the
    real Stable Diffusion inpainting at ``full``; a run context's ``sd_model`` is set there,
    :meth:`paper_repro.context.RunContext.config`)."""
    return override or cfg.sd_model_id


def scale_overrides(profile: str, scale: str) -> dict[str, Any]:
    """What ``scale`` changes in ``profile`` (its base profile's changes first)."""
    check_scale(scale)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    base = scale_overrides(PROFILE_BASES[profile], scale) if profile in PROFILE_BASES else {}
    return {**base, **PROFILES[profile][1][scale]}


def get_config(profile: str, scale: str, **overrides: Any):
    """The configuration ``profile`` (e.g. ``defect_gan``, ``dadnet``, ``baselines``) at ``scale``.

    Keyword ``overrides`` win over the scale profile, e.g. ``get_config("dadnet", "demo", epochs=5)``.
    A pure function of its arguments: what a process was asked for besides (a dry run's caps, a precision,
    an SDGM checkpoint) is added by its run context (:meth:`paper_repro.context.RunContext.config`).
    """
    changes = scale_overrides(profile, scale)
    return dataclasses.replace(PROFILES[profile][0](), **{**changes, **overrides})


def config_table(profile: str) -> list[dict[str, Any]]:
    """Rows ``{name, smoke, demo, full}`` for a chapter to show what each scale changes."""
    configs = {scale: get_config(profile, scale) for scale in SCALES}
    return [
        {"name": f.name, **{scale: getattr(configs[scale], f.name) for scale in SCALES}}
        for f in dataclasses.fields(PROFILES[profile][0])
    ]


__all__ = [
    "SCALES", "DEFAULT_SEED", "check_scale",
    "DefectGANConfig", "DetectionConfig", "DADNetConfig", "GANTablesConfig", "BaselinesConfig",
    "BundledDataConfig", "PROFILES", "PROFILE_BASES", "DRY_RUN_CAPS", "TINY_SD_MODEL",
    "STANDIN_SD_MODEL",
    "sd_model_for", "scale_overrides", "get_config", "config_table",
]
