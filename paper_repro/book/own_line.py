"""The chapter *Your own line*: the bundled images laid out as an inspection team's folders would be,
and the command line run as a reader types it.

:func:`line_folders` copies one category of the bundled MVTec-layout set into plain folders, the way a
team's images arrive (no MVTec layout)::

    normal/     the training images: every normal image of the category's train split
    good/       normal images a person checked, for calibration (half of the test split's good ones)
    bad/        defective images a person checked, for calibration (half of each defect type) ...
    masks/      ... and their masks, named <stem>_mask.png as MVTec AD names them
    incoming/   the images of the day: the other halves, good and defective, never used above
    concrete/   normal concrete crops (the bundled CODEBRIM test split), for Defect-GAN to paint on

:func:`command` prints ``$ python -m paper_repro ...`` and runs it in this process.
"""
from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from paper_repro.cli import main
from paper_repro.data.codebrim import CODEBRIM

FOLDERS = ("normal", "good", "bad", "masks", "incoming", "concrete")


@dataclass(frozen=True)
class LineFolders:
    root: Path
    normal: Path
    good: Path
    bad: Path
    masks: Path
    incoming: Path
    concrete: Path


def command(line: str) -> None:
    """Show ``python -m paper_repro <line>`` and run it here; a non-zero exit status stops the chapter."""
    print(f"$ python -m paper_repro {line}", flush=True)
    status = main(shlex.split(line))
    if status != 0:
        raise RuntimeError(f"`python -m paper_repro {line}` ended with exit status {status}")


def _halves(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """The first half (rounded up) and the rest, in name order."""
    files = sorted(files)
    cut = (len(files) + 1) // 2
    return files[:cut], files[cut:]


def _copy(files: list[Path], folder: Path, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, folder / f"{prefix}{f.name}")


def line_folders(mvtec_root: str | Path, category: str, codebrim_root: str | Path, workspace: str | Path) -> LineFolders:
    """Lay out ``category`` of the MVTec-layout set at ``mvtec_root`` (and the normal crops of the
    CODEBRIM-layout set at ``codebrim_root``) as a team's folders under ``workspace``, which is emptied first."""
    workspace = Path(workspace)
    shutil.rmtree(workspace, ignore_errors=True)
    folders = LineFolders(workspace, *(workspace / name for name in FOLDERS))
    source = Path(mvtec_root) / category
    _copy(list((source / "train" / "good").glob("*.png")), folders.normal)
    checked, today = _halves(list((source / "test" / "good").glob("*.png")))
    _copy(checked, folders.good)
    _copy(today, folders.incoming, "good_")
    for kind in sorted(p.name for p in (source / "test").iterdir() if p.is_dir() and p.name != "good"):
        checked, today = _halves(list((source / "test" / kind).glob("*.png")))
        _copy(checked, folders.bad / kind)
        _copy([source / "ground_truth" / kind / f"{f.stem}_mask.png" for f in checked], folders.masks / kind)
        _copy(today, folders.incoming, f"{kind}_")
    crops = CODEBRIM(codebrim_root, "test", image_size=None)
    _copy([path for path, labels in crops.samples if not any(labels[1:])], folders.concrete)
    return folders


def decisions_sentence(scores, label: str) -> str:
    """What the decisions of ``scores`` (``dadnet predict``'s CSV with a ``truth`` column from
    :func:`truth_of`) cost: false alarms among the good images and misses among the defective ones."""
    good, bad = scores[scores["truth"] == "good"], scores[scores["truth"] == "defective"]
    alarms, misses = int((good["decision"] == "anomalous").sum()), int((bad["decision"] == "normal").sum())
    share = lambda k, n: f"{100 * k / n:.0f} %" if n else "no images"  # noqa: E731
    return (f"{label}: {alarms} of the {len(good)} good images of the day are flagged (false alarms, "
            f"{share(alarms, len(good))}) and {misses} of the {len(bad)} defective ones pass as normal "
            f"(misses, {share(misses, len(bad))}).")


def truth_of(name: str) -> str:
    """An incoming image's truth, from the prefix :func:`line_folders` gave it (``good_...``, ``crack_...``)."""
    return "good" if Path(name).name.startswith("good_") else "defective"


__all__ = ["FOLDERS", "LineFolders", "command", "line_folders", "decisions_sentence", "truth_of"]
