"""What each chapter costs on a GPU at ``full`` scale (the papers' settings): FLOPs, GPU hours and memory.

Nothing here is measured on a GPU. One training step of every trainer (the steps ``gpu_check.py`` times)
runs once on *fake* tensors at the papers' geometry: shapes only, no arithmetic, a few seconds on a CPU.
On the way it counts the step's FLOPs (forward and backward, PyTorch's formulas) and the tensors autograd
keeps for the backward pass. The configurations of :mod:`paper_repro.config` say how many steps each chapter
trains; runs that chapters share are counted once, in the first chapter (in reading order) that trains them.
GPU hours are FLOPs over a sustained throughput: the one Defect-GAN §4.1 implies (500k iterations at batch 4
in about a day on one RTX 2080 Ti) and an assumed round rate for a current GPU.

    python benchmarks/full_budget.py           # print the table
    python benchmarks/full_budget.py --write   # and put it in book/reference/setup.md
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch._subclasses.fake_tensor import FakeTensorMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import CountFlops, classifier_step, dadnet_step, defect_gan_step  # noqa: E402

from paper_repro.config import DEFAULT_SEED, get_config  # noqa: E402
from paper_repro.experiments.dadnet_table4 import ABLATION  # noqa: E402
from paper_repro.experiments.defect_gan_table3 import AUGMENTATIONS, SYNTHESIZERS  # noqa: E402
from paper_repro.experiments.synthesizers import ABLATION_ROWS, flags_of  # noqa: E402
from paper_repro.runs.devices import Distributed  # noqa: E402
from paper_repro.runs.precision import Precision  # noqa: E402

SETUP_PAGE = Path(__file__).resolve().parents[1] / "book" / "reference" / "setup.md"
START, END = "<!-- full-budget:start -->", "<!-- full-budget:end -->"

# The anchor, measured by the paper itself (Defect-GAN §4.1): 500k iterations at 128 px, batch 4, "about
# one day on a single NVIDIA 2080Ti" (paper_repro/config.py, DefectGANConfig.iterations).
ANCHOR_SECONDS = 24 * 3600
ANCHOR_GPU = "RTX 2080 Ti"
# An assumption, not a measurement: a round sustained rate for a current GPU in bf16. Measure your own
# with `python benchmarks/gpu_check.py` (it prints each step's FLOP/s).
ASSUMED_RATE = 100e12

# Training-set sizes of the real data sets (not on this machine, so looked up):
# MVTec AD train/good images per category, as public anomaly-detection code lists them (the same numbers in
# three code files found by a code search for "NUM_TRAIN_SAMPLES_MVTEC"); the data set's paper publishes
# them (Bergmann et al., IJCV 2021, Table 1, https://doi.org/10.1007/s11263-020-01400-4; its table was not
# read here). A check on the real data: `python -m paper_repro data check --root DIR --layout mvtec`.
MVTEC_TRAIN_GOOD = {"bottle": 209, "cable": 224, "capsule": 219, "carpet": 280, "grid": 264, "hazelnut": 391,
                    "leather": 245, "metal_nut": 220, "pill": 267, "screw": 320, "tile": 230, "toothbrush": 60,
                    "transistor": 213, "wood": 247, "zipper": 240}
# CODEBRIM's classification train split: 6,481 crops, 4,253 with a defect label and 2,228 without
# (counted from phiyodr/building-inspection-toolkit, bikit/data/codebrim-classif.csv at commit 431b6484,
# https://github.com/phiyodr/building-inspection-toolkit/blob/431b6484ceb8deecb561241f2dc72d10487a7226/bikit/data/codebrim-classif.csv).
CODEBRIM_TRAIN_DEFECT, CODEBRIM_TRAIN_NORMAL = 4_253, 2_228

BF16_BYTES = 2       # an activation element under bf16 (or fp16) autocast
WEIGHT_COPY_BYTES = 2  # autocast's bf16 copy of every weight


# ------------------------------------------------------------------------------------------
# One step, counted on fake tensors
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepCost:
    flops: float             # one step, forward and backward
    activation_bytes: float  # the most autograd keeps for one backward pass, at 2 bytes a float
    state_bytes: float       # weights, gradients and optimizer states (fp32) and the bf16 weight copies

    @property
    def peak_bytes(self) -> float:
        return self.activation_bytes + self.state_bytes


class CountWithoutData(CountFlops):
    """:class:`CountFlops` for fake tensors, which hold no values: reading one (``.item()``: a logged loss,
    Adam's step count) reads 1, a flag reads False."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            return False if args[0].dtype == torch.bool else 1
        return super().__torch_dispatch__(func, types, args, kwargs)


class SavedActivations:
    """Bytes of the tensors autograd saves for backward, per backward pass (a pass ends at an optimizer
    step), each storage once, at :data:`BF16_BYTES` an element when it holds floats."""

    def __init__(self):
        self.passes: list[dict[int, tuple[torch.Tensor, float]]] = [{}]
        self.optimizers: list[torch.optim.Optimizer] = []

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        elements = storage.nbytes() / tensor.element_size()
        size = elements * (BF16_BYTES if tensor.is_floating_point() else tensor.element_size())
        self.passes[-1][storage._cdata] = (tensor, size)   # the tensor kept so the address is not reused
        return tensor

    def end_pass(self, optimizer, args, kwargs) -> None:
        if optimizer not in self.optimizers:
            self.optimizers.append(optimizer)
        self.passes.append({})

    def peak(self, exclude: set[int]) -> float:
        return max(sum(size for key, (_, size) in saved.items() if key not in exclude) for saved in self.passes)


def storages(tensors) -> dict[int, float]:
    return {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in tensors if t is not None}


def training_state(optimizers: list[torch.optim.Optimizer]) -> tuple[dict[int, float], float]:
    """({storage: bytes} of the weights, bytes of weights, gradients, optimizer states and bf16 weight copies)."""
    params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
    weights = storages(params)
    grads = storages(p.grad for p in params)
    states = storages(v for opt in optimizers for state in opt.state.values() for v in state.values()
                      if isinstance(v, torch.Tensor))
    copies = sum(p.numel() for p in params) * WEIGHT_COPY_BYTES
    return weights, sum(weights.values()) + sum(grads.values()) + sum(states.values()) + copies


def measure_step(build: Callable[[], Callable[[], Any]]) -> StepCost:
    """Build a step (``build()`` returns the function that runs it) on fake tensors and run it once."""
    saved = SavedActivations()
    hook = register_optimizer_step_pre_hook(saved.end_pass)
    try:
        # modules built under fake tensors are on the (fake) CPU already; moving one (``Module.to``: a device,
        # channels-last) would swap its fake parameters, which PyTorch refuses, so it stays where it is
        with FakeTensorMode(allow_non_fake_inputs=True), mock.patch.object(torch.nn.Module, "to", lambda m, *a, **k: m):
            run = build()
            with CountWithoutData() as counter, torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
                run()
            weights, state_bytes = training_state(saved.optimizers)
            return StepCost(float(counter.total), saved.peak(exclude=set(weights)), state_bytes)
    finally:
        hook.remove()


FP32_CPU = Precision("fp32", "cpu")   # the arithmetic FLOPs count is the same in every precision
BUILDERS = {"defect_gan": defect_gan_step, "dadnet": dadnet_step, "classifier": classifier_step}


# What a step's cost depends on: the configuration less its counts (a budget changes no step).
GEOMETRY = {
    "defect_gan": lambda cfg: dataclasses.replace(cfg, iterations=0),
    "dadnet": lambda cfg: dataclasses.replace(cfg, epochs=0, lr_milestones=(), seed=0, runs=0, categories=()),
    "classifier": lambda cfg: dataclasses.replace(cfg, epochs=0, patience=0, n_synthesized=0, backbones=()),
}


@dataclass(frozen=True)
class Step:
    """A trainer's step at one configuration, with its variant (classes, DRAM, backbone)."""

    trainer: str
    config: Any
    variant: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, trainer: str, config, **variant) -> "Step":
        return cls(trainer, config, tuple(sorted(variant.items())))

    @property
    def key(self) -> tuple:
        """What its cost depends on: steps of configurations that differ only in counts cost the same."""
        return self.trainer, GEOMETRY[self.trainer](self.config), self.variant


class StepCosts:
    """Each step's :class:`StepCost`, measured on first use."""

    def __init__(self):
        self.known: dict[tuple, StepCost] = {}

    def __getitem__(self, step: Step) -> StepCost:
        if step.key not in self.known:
            builder = BUILDERS[step.trainer]
            torch.manual_seed(0)
            self.known[step.key] = measure_step(lambda: builder("full", torch.device("cpu"), FP32_CPU, Distributed(),
                                                                cfg=step.config, **dict(step.variant))[0])
        return self.known[step.key]


# ------------------------------------------------------------------------------------------
# The runs each chapter trains
# ------------------------------------------------------------------------------------------
PROFILES = ("defect_gan", "defect_gan_tables", "gan_tables", "detection", "dadnet", "dadnet_tables", "baselines")


def full_configs(**overrides: dict[str, Any]) -> dict[str, Any]:
    """Every profile's ``full`` configuration; ``overrides`` maps a profile to its field changes."""
    return {profile: get_config(profile, "full", **overrides.get(profile, {})) for profile in PROFILES}


@dataclass(frozen=True)
class Run:
    """One cached training run: its step, how many steps, and what makes another chapter's run the same."""

    step: Step
    steps: float
    identity: tuple


@dataclass
class Chapter:
    name: str
    runs: list[Run]        # every run it asks for, shared or not
    trains: str            # what it trains, in words
    not_estimated: str = ""


def gan_run(cfg, seed: int, num_classes: int = 5, name: str = "defect_gan") -> Run:
    """A Defect-GAN run: ``iterations`` critic updates, one generator update every ``n_critic`` (one
    counted step is such a turn)."""
    return Run(Step.of("defect_gan", cfg, num_classes=num_classes), cfg.iterations / cfg.n_critic, (name, cfg, seed))


def gan_row(configs, row, seed: int) -> Run:
    return gan_run(dataclasses.replace(configs["defect_gan_tables"], **flags_of(row)), seed)


def gan_seeds(configs) -> list[int]:
    return [DEFAULT_SEED + k for k in range(configs["gan_tables"].training_seeds)]


def unconditional_row(configs, seed: int) -> Run:
    """Table 1's CycleGAN-style row: StarGAN's networks (every switch off) on one label, "Defect"."""
    cfg = dataclasses.replace(configs["defect_gan_tables"], **flags_of((False, False, False, False)))
    return gan_run(cfg, seed, num_classes=1, name="defect_gan_unconditional")


def classifier_run(cfg, backbone: str, augmentation: str, seed: int = DEFAULT_SEED) -> Run:
    """A Table 3 cell: at most ``epochs`` epochs over CODEBRIM's train split (plus the synthesized defects
    and as many restored normals as keep its normal : defect ratio), ``drop_last`` batches."""
    images = CODEBRIM_TRAIN_DEFECT + CODEBRIM_TRAIN_NORMAL
    if augmentation in SYNTHESIZERS:
        images += cfg.n_synthesized + round(cfg.n_synthesized * CODEBRIM_TRAIN_NORMAL / CODEBRIM_TRAIN_DEFECT)
    steps = cfg.epochs * (images // cfg.batch_size)
    return Run(Step.of("classifier", cfg, backbone=backbone), steps, ("detection", cfg, backbone, augmentation, seed))


def dadnet_run(cfg, category: str, pseudo: str = "sdgm", dram: bool = True) -> Run:
    """A DADNet run of one category: ``epochs`` epochs over its train/good images, ``drop_last`` batches."""
    images = MVTEC_TRAIN_GOOD[category]
    steps = cfg.epochs * (images // cfg.batch_size if images > cfg.batch_size else 1)
    return Run(Step.of("dadnet", cfg, dram=dram), steps, ("dadnet", cfg, category, pseudo, dram))


def dadnet_seeds(configs) -> list[int]:
    return [DEFAULT_SEED + k for k in range(configs["dadnet"].runs)]


def chapters(configs: dict[str, Any]) -> list[Chapter]:
    """The chapters that train at ``full``, in reading order, with the runs each asks for."""
    gan, tables, det = configs["defect_gan"], configs["defect_gan_tables"], configs["detection"]
    dad, plan = configs["dadnet"], configs["baselines"]
    seeds, dad_seeds = gan_seeds(configs), dadnet_seeds(configs)
    table1 = [run for s in seeds for run in [unconditional_row(configs, s)]
              + [gan_row(configs, row, s) for row, name in ABLATION_ROWS if name]]
    table3_synthesizers = [gan_row(configs, row, DEFAULT_SEED) for row in SYNTHESIZERS.values()]
    detection = [classifier_run(det, b, a) for b in det.backbones for a in AUGMENTATIONS]
    sdgm = "SDGM's Stable Diffusion generation"
    return [
        Chapter("Defect-GAN: training", [gan_run(gan, DEFAULT_SEED)],
                f"1 run, {gan.iterations:,} iterations, batch {gan.batch_size}, {gan.image_size} px"),
        Chapter("Defect-GAN: Table 1", table1,
                f"{len(table1) // len(seeds)} synthesizers x {len(seeds)} seeds, {tables.iterations:,} iterations each"),
        Chapter("Defect-GAN: Table 2", [gan_row(configs, row, s) for s in seeds for row, _ in ABLATION_ROWS],
                f"6 ablation rows x {len(seeds)} seeds"),
        Chapter("Defect-GAN: Table 3", table3_synthesizers + detection,
                f"{len(detection)} classifiers ({len(det.backbones)} backbones x {len(AUGMENTATIONS)} training sets), "
                f"at most {det.epochs} epochs each (an upper bound: training stops {det.patience} epochs after the "
                f"best validation accuracy), batch {det.batch_size}, {det.image_size} px"),
        Chapter("DADNet: training and evaluation", [dadnet_run(dataclasses.replace(dad, seed=DEFAULT_SEED), c)
                                                    for c in dad.categories],
                f"{len(dad.categories)} categories x 1 seed, {dad.epochs} epochs, batch {dad.batch_size}, "
                f"{dad.image_size} px", not_estimated=sdgm),
        Chapter("DADNet: Tables 1-3", [dadnet_run(dataclasses.replace(configs["dadnet_tables"], seed=s), c)
                                       for s in dad_seeds for c in plan.categories],
                f"DADNet: {len(plan.categories)} categories x {len(dad_seeds)} seeds",
                not_estimated=f"FastFlow, RD and STFPM ({plan.fastflow_epochs}, {plan.rd_epochs}, {plan.stfpm_epochs} "
                              f"epochs), PaDiM; {sdgm}"),
        Chapter("DADNet: Table 4", [dadnet_run(dataclasses.replace(configs["dadnet_tables"], seed=s), c, pseudo, dram)
                                    for s in dad_seeds for c in plan.ablation_categories for _, pseudo, dram in ABLATION],
                f"{len(ABLATION)} ablation rows x {len(plan.ablation_categories)} categories x {len(dad_seeds)} seeds",
                not_estimated=sdgm),
    ]


# ------------------------------------------------------------------------------------------
# FLOPs, hours and memory per chapter
# ------------------------------------------------------------------------------------------
@dataclass
class Budget:
    chapter: Chapter
    new_runs: int      # runs no earlier chapter trained
    flops: float
    peak_bytes: float  # the largest step among its new runs, one process at the paper's batch


def budgets(configs: dict[str, Any], costs: StepCosts) -> list[Budget]:
    """Each chapter's cost, a run shared with an earlier chapter (or asked for twice) counted once."""
    trained: set[tuple] = set()
    out = []
    for chapter in chapters(configs):
        new = []
        for run in chapter.runs:
            if run.identity not in trained:
                trained.add(run.identity)
                new.append(run)
        flops = sum(costs[run.step].flops * run.steps for run in new)
        peak = max((costs[run.step].peak_bytes for run in new), default=0.0)
        out.append(Budget(chapter, len(new), flops, peak))
    return out


def anchor_rate(configs: dict[str, Any], costs: StepCosts) -> float:
    """FLOP/s the paper's GPU sustained: this project's count for the paper's Defect-GAN run over ~1 day."""
    run = gan_run(configs["defect_gan"], DEFAULT_SEED)
    return costs[run.step].flops * run.steps / ANCHOR_SECONDS


def two_figures(x: float) -> str:
    """``x`` to two significant figures, without exponent or a trailing ``.0`` (24, 3,500, 0.52)."""
    if x == 0:
        return "0"
    decimals = 1 - math.floor(math.log10(abs(x)))
    return f"{round(x, decimals):,.{max(decimals, 0)}f}"


def hours(flops: float, rate: float) -> str:
    return two_figures(flops / rate / 3600)


def render(configs: dict[str, Any], costs: StepCosts) -> str:
    """The Markdown that goes between the page's markers: the anchor, the table, what is not estimated."""
    gan, rate = configs["defect_gan"], anchor_rate(configs, costs)
    rows = budgets(configs, costs)
    total = sum(b.flops for b in rows)
    lines = [
        f"Anchor, measured by the paper: Defect-GAN §4.1 trained {gan.iterations:,} iterations at batch "
        f"{gan.batch_size} and {gan.image_size} px in about one day on one {ANCHOR_GPU}. This project's Defect-GAN "
        f"counts {two_figures(anchor_flops(configs, costs) / 1e15)} PFLOP for that run, so that GPU sustained about "
        f"**{two_figures(rate / 1e12)} TFLOP/s**. Everything below is an estimate.",
        "",
        f"| chapter | trains | new runs | PFLOP | GPU hours at the {ANCHOR_GPU}'s rate | GPU hours at "
        f"{two_figures(ASSUMED_RATE / 1e12)} TFLOP/s (assumed) | peak memory, GiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for b in rows:
        shared = len(b.chapter.runs) - b.new_runs
        runs = f"{b.new_runs}" + (f" ({shared} shared)" if shared else "")
        memory = two_figures(b.peak_bytes / 2**30) if b.new_runs else "-"
        lines.append(f"| {b.chapter.name} | {b.chapter.trains} | {runs} | {two_figures(b.flops / 1e15)} | "
                     f"{hours(b.flops, rate)} | {hours(b.flops, ASSUMED_RATE)} | {memory} |")
    lines.append(f"| **all of them** | | {sum(b.new_runs for b in rows)} | {two_figures(total / 1e15)} | "
                 f"{hours(total, rate)} | {hours(total, ASSUMED_RATE)} | |")
    lines += ["", "Not estimated (no FLOPs counted, so not in the hours above):", ""]
    lines += [f"- {b.chapter.name}: {b.chapter.not_estimated}" for b in rows if b.chapter.not_estimated]
    lines.append("- every chapter's evaluation (test sets, FID features, Table 3's synthesized sets): forward passes only")
    return "\n".join(lines)


def anchor_flops(configs: dict[str, Any], costs: StepCosts) -> float:
    return anchor_rate(configs, costs) * ANCHOR_SECONDS


# ------------------------------------------------------------------------------------------
# The setup page
# ------------------------------------------------------------------------------------------
def between_markers(page: str) -> str:
    """The generated part of ``page`` (between :data:`START` and :data:`END`), without its framing newlines."""
    if START not in page or END not in page:
        raise SystemExit(f"{SETUP_PAGE}: no {START} ... {END} markers")
    return page.split(START, 1)[1].split(END, 1)[0].strip("\n")


def with_table(page: str, text: str) -> str:
    head, rest = page.split(START, 1)
    return f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"replace the table in {SETUP_PAGE.name}")
    args = parser.parse_args(argv)
    text = render(full_configs(), StepCosts())
    print(text)
    if args.write:
        page = SETUP_PAGE.read_text(encoding="utf-8")
        between_markers(page)   # the markers are there
        SETUP_PAGE.write_text(with_table(page, text), encoding="utf-8")
        print(f"wrote {SETUP_PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
