"""The defect synthesizers Defect-GAN's Tables 1-3 compare, trained on one budget and shared.

Table 2's six rows are one generator with the ablation switches of
:class:`paper_repro.config.DefectGANConfig` (spatial & categorical control ``scc``, adaptive noise
injection ``ani``, layer-wise composition ``lwc``, spatial constraints ``sc``); with all off it is
StarGAN, with ``scc`` alone StarGAN + SPADE, with all on Defect-GAN - the three Table 1 rows that
are Table 2 rows. Their budget is the ``defect_gan_tables`` profile of :mod:`paper_repro.config`,
and they are cached runs of :func:`paper_repro.defect_gan.trainer.trained_run`, so Tables 1, 2 and 3
share them.

Table 1's CycleGAN row is run as a **CycleGAN-style** model: the same StarGAN generator and
discriminator, the same losses and budget, but *without class control*: every defect image
carries one label "Defect", so the generator learns unconditional normal <-> defect translation
with cycle reconstruction (one generator for both directions, told which by the one-bit domain
label; not CycleGAN's two generators and two discriminators). :func:`unconditional_data` relabels
the training data; the trainer is the package's own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from paper_repro.context import RunContext, as_context
from paper_repro.data.roots import DataSource
from paper_repro.defect_gan.control import restore, synthesize
from paper_repro.defect_gan.data import TrainingData
from paper_repro.defect_gan.trainer import ABLATION_FLAGS, load_generator, trained_run
from paper_repro.errors import UserError
from paper_repro.evaluation.fid import FIDScore, fid, fid_role
from paper_repro.results.reading import plateaued
from paper_repro.runs.checkpoints import atomic_write, checkpoints

# Table 2: (SCC, ANI, LWC, SC) in the paper's row order; the name a row also has in Table 1.
ABLATION_ROWS: tuple[tuple[tuple[bool, bool, bool, bool], str | None], ...] = (
    ((False, False, False, False), "StarGAN"),
    ((True, False, False, False), "StarGAN + SPADE"),
    ((True, True, False, False), None),
    ((True, False, True, False), None),
    ((True, False, True, True), None),
    ((True, True, True, True), "Defect-GAN"),
)
CYCLEGAN_STYLE = "CycleGAN"  # Table 1's name for the row the unconditional variant stands in for


def flags_of(row: tuple[bool, bool, bool, bool]) -> dict[str, bool]:
    return dict(zip(ABLATION_FLAGS, row))


def row_label(row: tuple[bool, bool, bool, bool]) -> str:
    """``"SCC+LWC+SC"``-style label of an ablation row (``"none"`` when all are off)."""
    return "+".join(f.upper() for f, on in flags_of(row).items() if on) or "none"


def table_config(ctx: RunContext | str, **flags):
    """The DefectGANConfig of a row at the context's scale: the ``defect_gan_tables`` profile and the switches."""
    return as_context(ctx).config("defect_gan_tables", **flags)


def train_variant(ctx: RunContext | str, data: DataSource, device: str = "cpu", seed: int = 42,
                  progress: bool = True, **flags) -> Path:
    """The run folder of one ablation row (trained on first use, then shared from the cache)."""
    return trained_run(table_config(ctx, **flags), data, seed=seed, device=device, progress=progress)


def unconditional_data(data: TrainingData) -> TrainingData:
    """The same pools with every defect labelled one class, "Defect" (no class control)."""
    return TrainingData(data.normals, data.n_normals, data.defects, torch.ones(data.n_defects, 1),
                        ("Defect",), data.normal_sampler.seed, normals_source=data.normals_source)


def train_unconditional(ctx: RunContext | str, data: DataSource, device: str = "cpu", seed: int = 42,
                        progress: bool = True) -> Path:
    """The CycleGAN-style row: StarGAN's networks on normal <-> "Defect" (see the module doc)."""
    cfg = table_config(ctx, **flags_of((False, False, False, False)))
    return trained_run(cfg, data, seed=seed, device=device, progress=progress,
                       name="defect_gan_unconditional", relabel=unconditional_data)


# ------------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------------
def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (the generator's range) -> [0, 1]."""
    return ((images + 1) / 2).clamp(0, 1)


def real_defects(data: TrainingData, role: str | None = None) -> torch.Tensor:
    """The real defect images of the training pools, (N, 3, H, W) in [0, 1]: every one, or those of one
    :func:`paper_repro.evaluation.fid.fid_role`."""
    chosen = [i for i in range(data.n_defects) if role is None or fid_role(data.defect_names[i]) == role]
    if not chosen:
        raise UserError(f"the training split has no defect image in the FID's {role!r} set; it needs more "
                        "defect images (a quarter of them, by file name, play that part)")
    return to_unit(torch.stack([data.defects(i) for i in chosen]))


def fid_sets(data: TrainingData) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables 1-2's real sets: the reference every synthesizer is compared with, and the ideal
    synthesizer's sample, of the same size (the larger one's last images left out), neither seen by the
    in-domain extractor (:func:`paper_repro.evaluation.fid.fid_role`)."""
    reference, ideal = real_defects(data, "reference"), real_defects(data, "ideal")
    n = min(len(reference), len(ideal))
    return reference[:n], ideal[:n]


def draws(data: TrainingData, n: int, seed: int = 0) -> tuple[list[int], torch.Tensor]:
    """The normal images (indices into the normal pool) and target labels :func:`sample_defaced`
    uses for ``seed``."""
    g = torch.Generator().manual_seed(seed)
    normal_idx = torch.randint(data.n_normals, (n,), generator=g).tolist()
    return normal_idx, data.labels[torch.randint(data.n_defects, (n,), generator=g)]


@torch.no_grad()
def sample_defaced(G, data: TrainingData, n: int, seed: int = 0, batch_size: int = 64,
                   device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` synthesized defects d = G(n, c) (eq. 1-2) in [0, 1], with their target labels c.

    Normal images are drawn at random from the normal pool and targets from the real defects' label
    vectors (so the class mix follows the data); an unconditional generator gets its one label.
    The draws and the injected noise come from ``seed`` alone.
    """
    normal_idx, targets = draws(data, n, seed)
    if G.num_classes == 1:
        targets = torch.ones(n, 1)
    images = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, n, batch_size):
            normals = torch.stack([data.normals(i) for i in normal_idx[start:start + batch_size]])
            out = synthesize(G, normals.to(device), targets[start:start + batch_size].to(device)).image
            images.append(to_unit(out).cpu())
    return torch.cat(images), targets


@torch.no_grad()
def sample_restored(G, data: TrainingData, n: int, seed: int = 0, batch_size: int = 64,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` restored normal samples n̂ = G(d, 0) (eq. 3-4) of the real defects (cycled), in [0, 1]."""
    images = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, n, batch_size):
            idx = [i % data.n_defects for i in range(start, min(start + batch_size, n))]
            defects = torch.stack([data.defects(i) for i in idx]).to(device)
            images.append(to_unit(restore(G, defects).image).cpu())
    return torch.cat(images)


@dataclass
class Synthesizer:
    """A trained table row: its name, switches, run folder and generator."""

    name: str
    row: tuple[bool, bool, bool, bool] | None
    run_dir: Path
    generator: torch.nn.Module


def load_synthesizer(name: str, run_dir: Path, row=None, device: str = "cpu") -> Synthesizer:
    G, _ = load_generator(run_dir, device)
    return Synthesizer(name, row, Path(run_dir), G)


def synthesis_fid(G, data: TrainingData, real: torch.Tensor, extractor, seed: int = 0,
                  device: str | torch.device = "cpu") -> FIDScore:
    """Table 1-2 FID of one generator: as many synthesized defects as there are real ones, against them."""
    fake, _ = sample_defaced(G, data, len(real), seed=seed, device=device)
    return fid(real, fake, extractor, device=device)


def synthesis_fids(G, data: TrainingData, real: torch.Tensor, extractor, draws: int, seed: int = 0,
                   device: str | torch.device = "cpu") -> list[FIDScore]:
    """:func:`synthesis_fid` of ``draws`` independent sample draws (draw ``d`` uses seed
    ``1000 * d + seed``): Tables 1 and 2 average the same draws, so a run shared by both scores alike."""
    return [synthesis_fid(G, data, real, extractor, seed=1000 * draw + seed, device=device) for draw in range(draws)]


# ------------------------------------------------------------------------------------------
# Has the budget converged? FID at the run's last checkpoints
# ------------------------------------------------------------------------------------------
CURVE_FILE = "fid_curve.json"
CURVE_POINTS = 6  # the last kept checkpoints a curve is measured at (the milestones, at demo every 100 iterations)


def fid_curve(run_dir: str | Path, data: TrainingData, real: torch.Tensor, extractor, *, seed: int = 0,
              device: str | torch.device = "cpu", points: int = CURVE_POINTS) -> list[tuple[int, float]]:
    """``(iteration, FID)`` of the run's generator at each of its last ``points`` checkpoints, measured
    as the tables measure (:func:`synthesis_fid`, the same sample draw at every point): the learning
    curve that shows whether the tables' budget has converged. Written to ``fid_curve.json`` in the run
    folder and read back while the extractor, seed and checkpoints are the same."""
    run_dir = Path(run_dir)
    found = checkpoints(run_dir)[-points:]
    key = {"extractor": extractor.name, "seed": seed, "n_real": len(real), "steps": [step for step, _ in found]}
    saved = recorded_fid_curve(run_dir, key)
    if saved is not None:
        return saved
    curve = []
    for step, path in found:
        G, _ = load_generator(run_dir, device, checkpoint=path)
        curve.append((step, synthesis_fid(G, data, real, extractor, seed=seed, device=device).value))
    atomic_write(run_dir / CURVE_FILE, lambda tmp: Path(tmp).write_text(json.dumps({"key": key, "curve": curve})))
    return curve


def recorded_fid_curve(run_dir: str | Path, key: dict | None = None) -> list[tuple[int, float]] | None:
    """The curve :func:`fid_curve` wrote in ``run_dir`` (for ``key``, if given), or ``None`` (also when the
    file is damaged: it is announced in one line and measured again)."""
    path = Path(run_dir) / CURVE_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if key is not None and saved.get("key") != key:
            return None
        return [(int(step), float(value)) for step, value in saved["curve"]]
    except (ValueError, TypeError, KeyError, AttributeError) as err:   # not JSON, not UTF-8, the wrong shape
        print(f"{path}: damaged ({type(err).__name__}), measured again")
        return None


def converged(ctx: RunContext | str, curves: Mapping[str, Sequence[tuple[int, float]]] | None = None) -> bool | str:
    """Are the tables' synthesizers trained? ``True``, or the reason they are not, for a verdict's
    ``converged``.

    Judged at every scale on the FID curve of every run (``{run name: fid_curve(...)}``), never on the
    budget alone: a run still improves when the least-squares slope of FID over its last checkpoints has
    a 95 % Newey-West interval below 0 and the fitted fall exceeds 5 % of its level
    (:func:`paper_repro.results.reading.plateaued`). FID that rises again counts as converged: more
    training would not make that run better by this measure.
    """
    tables = table_config(ctx)
    if as_context(ctx).scale == "smoke":
        return f"smoke trains {tables.iterations} iterations to test the code, not the method"
    missing = [run for run, curve in (curves or {}).items() if not curve]
    if not curves or missing:
        return (f"no FID curve shows {', '.join(missing) if missing else 'the synthesizers'} converged "
                f"({tables.iterations} iterations at {tables.image_size} px)")
    steps = sorted({step for curve in curves.values() for step, _ in curve})
    window = f"FID at iterations {steps[0]:,}-{steps[-1]:,}" if steps else "FID"
    return plateaued({run: [value for _, value in curve] for run, curve in curves.items()}, "FID",
                     fraction=1.0, window=window)


__all__ = [
    "ABLATION_ROWS", "CYCLEGAN_STYLE", "flags_of", "row_label", "table_config", "train_variant",
    "unconditional_data", "train_unconditional", "to_unit", "real_defects", "fid_sets", "draws", "sample_defaced",
    "sample_restored", "Synthesizer", "load_synthesizer", "synthesis_fid", "synthesis_fids", "CURVE_FILE", "CURVE_POINTS",
    "fid_curve", "recorded_fid_curve", "converged",
]
