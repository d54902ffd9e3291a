"""``python -m paper_repro reproduce``: run every chapter with papermill and collect its tables.

    python -m paper_repro reproduce --scale full --out results/full --data-root /data --device cuda
    python -m paper_repro reproduce --scale full --dry-run --out /tmp/dry --data-root /data [--sd-model PATH]
    python -m paper_repro reproduce --scale full --out results/full --data-root /data --devices cuda:0,cuda:1

A ``full`` batch first checks everything it will need - the data sets, the weights (Stable Diffusion,
Inception-v3, the baselines' ImageNet backbones), the device - and stops before any training with one
line per missing thing and the command that fetches it. ``--dry-run`` then runs every chapter at the
full geometry (image sizes, widths, batch sizes, the real loaders and weights) with every count capped
to a step or two (:data:`paper_repro.config.DRY_RUN_CAPS`): minutes instead of days. ``--devices`` runs
independent chapters side by side, one per device; chapters that need the same trained model wait for
the one training it (the run folder is locked) and then read it.

For each chapter listed in ``_toc.yml`` (in reading order) the runner injects the parameters
``scale, device, data_root, seed, results_dir`` (and ``runs`` when given) and writes

    <out>/notebooks/<chapter>.ipynb     the executed notebook
    <out>/tables/<table>.csv, .md       every table the chapter saved (paper beside this run)
    <out>/.done/<chapter>.json          a marker: the chapter finished with these parameters

The chapters run through the runner ``book`` uses too (:mod:`paper_repro.book.runner`): each after
the chapters it reads, in a planned order, each kernel with its share of the cores. A chapter whose
marker records these parameters and settings, its own code cells and the package code it imports is
skipped (``--force`` re-runs it; the line says what changed when one runs again), so a killed batch
picks up where it stopped. A failing chapter does not stop the batch: the others run (not those that
read it), and the command ends with exit status 1 and one line per failure naming the notebook and the cell.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from paper_repro.book.chapters import TOC_FILE, find_book_root, list_chapters, select
from paper_repro.book.preflight import PreflightFailed, check_full_batch
from paper_repro.book.runner import MarkerFolder, Outcome, run_chapters
from paper_repro.cli import device_name, output_folder, positive_int, seed_value
from paper_repro.config import DEFAULT_SEED, SCALES
from paper_repro.environment import exported
from paper_repro.errors import UserError
from paper_repro.runs.precision import PRECISIONS


def reproduce(scale: str, out: Path, only: list[str] | None = None, force: bool = False,
              data_root: str | None = None, device: str = "cpu", seed: int = DEFAULT_SEED,
              book_root: Path | None = None, runs: int | None = None, dry_run: bool = False,
              sd_model: str | None = None, precision: str | None = None,
              devices: list[str] | None = None) -> list[Outcome]:
    """Run the selected chapters; return one :class:`Outcome` per chapter (in reading order).

    At ``full`` a preflight checks data, weights and devices first (:mod:`.preflight`). ``devices`` (one
    or more) run that many chapters at a time, each on its own device; ``device`` is the one device otherwise.
    """
    book_root = book_root or find_book_root()
    chapters = select(list_chapters(book_root), only)
    if not chapters:
        raise UserError(f"{book_root / TOC_FILE}: lists no notebook chapters")
    if data_root is not None and not Path(data_root).expanduser().exists():
        raise UserError(f"--data-root {data_root}: no such folder")
    if dry_run and scale != "full":
        raise UserError(f"--dry-run checks the full batch; got --scale {scale} (use --scale full)")
    devices = devices or [device]
    with exported(dry_run, sd_model, precision):
        if scale == "full":
            check_full_batch(data_root, devices, seed, sd_model)
        out = Path(out).resolve()
        parameters = {
            "scale": scale, "seed": seed, "results_dir": str(out / "tables"),
            "data_root": str(Path(data_root).expanduser().resolve()) if data_root else None,
        }
        if runs is not None:  # chapters that average several runs (DADNet §3.4.1: 3) read `runs`
            parameters["runs"] = runs
        # what else decides a chapter's outputs: a marker written under other settings does not count
        settings = {"dry_run": dry_run, "sd_model": sd_model, "precision": precision}
        return run_chapters(book_root, chapters, MarkerFolder(out), scale=scale, parameters=parameters,
                            settings=settings, devices=devices, force=force)


def _command(args: argparse.Namespace) -> int:
    import sys

    devices = args.devices
    started = time.perf_counter()
    try:
        outcomes = reproduce(args.scale, Path(args.out), args.only, args.force, args.data_root, args.device,
                             args.seed, Path(args.book) if args.book else None, args.runs, args.dry_run,
                             args.sd_model, args.precision, devices)
    except PreflightFailed as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    failed = [o for o in outcomes if o.error]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "blocked")}
    blocked = f", {counts['blocked']} not run (they read a failed one)" if counts["blocked"] else ""
    print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed{blocked} in "
          f"{time.perf_counter() - started:.0f} s; tables in {Path(args.out) / 'tables'}")
    for outcome in failed:
        print(f"FAILED {outcome.message}", file=sys.stderr)
    return 1 if failed else 0


def device_list(text: str) -> list[str]:
    """``--devices cuda:0,cuda:1``: each one checked as ``--device`` is."""
    devices = [device_name(d.strip()) for d in text.split(",") if d.strip()]
    if not devices:
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated devices, got {text!r}")
    return devices


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="run the book's chapters with papermill and collect their tables",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, required=True, help="smoke (CI), demo (laptop) or full (the papers)")
    parser.add_argument("--out", required=True, type=output_folder, help="output folder, e.g. results/<scale>")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this chapter (name like defect_gan/training or its stem); repeatable, comma-separated")
    parser.add_argument("--force", action="store_true", help="re-run chapters already done")
    parser.add_argument("--data-root", help="a real data set, or a folder holding MVTec AD and CODEBRIM side by side "
                        "(default: the bundled synthetic data)")
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda, cuda:N, mps (default cpu)")
    parser.add_argument("--seed", type=seed_value, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--runs", type=positive_int, help="independent runs to average, for chapters that take "
                        "a `runs` parameter (default: each chapter's own; the DADNet paper uses 3)")
    parser.add_argument("--book", help="repository root holding _toc.yml (default: found from here)")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --scale full: every chapter at the full geometry, real loaders and weights, with "
                        "iterations, epochs, runs and sample counts capped to a step or two")
    parser.add_argument("--sd-model", help="SDGM's Stable Diffusion inpainting checkpoint, a folder or a model id "
                        "(default: $PAPER_REPRO_SD_MODEL, else the scale's; full: stable-diffusion-v1-5/"
                        "stable-diffusion-inpainting)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="mixed precision of every training run (default: auto: bf16 on GPUs that have it, "
                        "fp16 on others, fp32 on the CPU)")
    parser.add_argument("--devices", type=device_list, help="comma-separated devices (cuda:0,cuda:1): run that "
                        "many chapters side by side, one per device")
    parser.set_defaults(func=_command)
