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

A chapter whose marker matches the parameters is skipped (``--force`` re-runs it), so a killed
batch picks up where it stopped. A failing chapter does not stop the batch: the others run, and
the command ends with exit status 1 and one line per failure naming the notebook and the cell.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from paper_repro.book.preflight import PreflightFailed, check_full_batch
from paper_repro.cli import device_name, output_folder, positive_int, seed_value
from paper_repro.config import DEFAULT_SEED, SCALES
from paper_repro.environment import exported
from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import atomic_write
from paper_repro.runs.precision import PRECISIONS
from paper_repro.runs.progress import tqdm

TOC_FILE = "_toc.yml"


def find_book_root(start: Path | None = None) -> Path:
    """The folder holding ``_toc.yml``: the current folder or an ancestor, else the repository of this package."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / TOC_FILE).is_file():
            return folder
    package_repo = Path(__file__).resolve().parents[2]
    if (package_repo / TOC_FILE).is_file():
        return package_repo
    raise UserError(f"{here}: no {TOC_FILE} here or above; run from the repository or pass --book DIR")


def _toc_files(entry: Any, where: Path | str = TOC_FILE) -> Iterable[str]:
    if isinstance(entry, dict):
        for key in ("root", "file"):
            if key in entry:
                yield entry[key]
        for key in ("parts", "chapters", "sections"):
            children = entry.get(key) or []
            if not isinstance(children, list):
                raise UserError(f"{where}: {key}: is {json.dumps(children, default=str)[:60]}; it must be a list "
                                f"of entries ({key}: [- file: book/composition])")
            for child in children:
                yield from _toc_files(child, where)
    elif isinstance(entry, list):
        for child in entry:
            yield from _toc_files(child, where)


def list_chapters(book_root: Path) -> list[Path]:
    """The notebooks of ``_toc.yml``, in reading order, as paths relative to ``book_root``."""
    import yaml

    toc_path = book_root / TOC_FILE
    try:
        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"{toc_path}: cannot read the table of contents "
                        f"({' '.join(str(err).split())[:200]})") from None
    root = toc.get("root") if isinstance(toc, dict) else None
    if not isinstance(root, str) or not root.strip():
        found = "no root" if not isinstance(toc, dict) or "root" not in toc else f"root: {json.dumps(root)[:60]}"
        raise UserError(f"{toc_path}: has {found}; its root must name the book's first page as text "
                        "(root: book/intro)")
    chapters = []
    for name in _toc_files(toc, toc_path):
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{toc_path}: a file entry is {json.dumps(name, default=str)[:60]}; each must name a "
                            "page as text (file: book/composition)")
        path = Path(name)
        path = path if path.suffix else path.with_suffix(".ipynb")
        if path.suffix == ".ipynb" and (book_root / path).is_file():
            chapters.append(path)
    return chapters


def chapter_name(path: Path) -> str:
    """``book/defect_gan/training.ipynb`` -> ``defect_gan/training``."""
    parts = path.with_suffix("").parts
    return "/".join(parts[1:] if parts[0] == "book" and len(parts) > 1 else parts)


def select(chapters: list[Path], only: list[str] | None) -> list[Path]:
    """Chapters matching any ``--only`` name: its full name (``defect_gan/training``) or its file stem."""
    if not only:
        return chapters
    wanted = [w.strip().removesuffix(".ipynb").removeprefix("book/") for o in only for w in o.split(",") if w.strip()]
    chosen = [c for c in chapters if chapter_name(c) in wanted or c.stem in wanted]
    unknown = [w for w in wanted if not any(w in (chapter_name(c), c.stem) for c in chapters)]
    if unknown:
        names = ", ".join(chapter_name(c) for c in chapters)
        raise UserError(f"--only {', '.join(unknown)}: no such chapter; chapters are: {names}")
    return chosen


@dataclass
class Outcome:
    chapter: str
    status: str  # "done", "skipped", "failed"
    seconds: float = 0.0
    message: str = ""


def _failure_message(notebook: Path, output: Path, err: Exception) -> str:
    """One line naming the notebook, the failing cell (counted from 1 in the source notebook, as a
    reader sees it) with its first line of code, and the exception."""
    index = getattr(err, "cell_index", None)
    where = "a cell"
    if index is not None:
        # papermill inserts its "injected-parameters" cell after the parameters cell.
        position = index if _has_injected_cell_before(output, index) else index + 1
        where = f"cell {position}"
        source = (str(getattr(err, "source", "") or "").strip().splitlines() or [""])[0]
        if source:
            where += f" ({source[:60]})"
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    first_line = (str(evalue).strip().splitlines() or [""])[0]
    return f"{notebook}: {where} raised {ename}: {first_line} (executed notebook: {output})"


def _has_injected_cell_before(output: Path, index: int) -> bool:
    try:
        import nbformat

        cells = nbformat.read(output, as_version=4).cells[:index]
    except Exception:  # no executed notebook to look at: count as written
        return False
    return any("injected-parameters" in cell.metadata.get("tags", []) for cell in cells)


def run_chapter(book_root: Path, chapter: Path, out: Path, parameters: dict[str, Any], force: bool,
                settings: dict[str, Any] | None = None) -> Outcome:
    """Execute one chapter with papermill (unless its marker says it already ran with these parameters
    and ``settings``); the executed notebook goes to ``out/notebooks``."""
    import papermill

    from paper_repro.book.build import chapter_code, notebook_digest, read_notebook
    from paper_repro.runs.cached import changed_files, listed

    name = chapter_name(chapter)
    marker = out / ".done" / f"{name}.json"
    output = out / "notebooks" / f"{name}.ipynb"
    notebook = read_notebook(book_root / chapter)
    # what decides a chapter's outputs: its parameters and settings, its own code and the package code it runs
    recorded = {"parameters": parameters, "settings": settings or {}, "notebook": notebook_digest(notebook),
                "code": chapter_code(notebook)}
    if not force and marker.is_file():
        previous = read_marker(marker, name)
        if previous is not None and {k: previous.get(k, {}) for k in recorded} == recorded:
            return Outcome(name, "skipped")
        if previous is not None and previous.get("code") and previous["code"] != recorded["code"]:
            tqdm.write(f"{name}: running again, the package code it runs changed "
                       f"({listed(changed_files(previous['code'], recorded['code']))})")
    marker.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(book_root / chapter), str(output), parameters=parameters,
            cwd=str((book_root / chapter).parent), progress_bar=False, log_output=False,
        )
    except Exception as err:  # papermill raises PapermillExecutionError; anything else is a failure too
        return Outcome(name, "failed", time.perf_counter() - started, _failure_message(chapter, output, err))
    seconds = time.perf_counter() - started
    text = json.dumps({**recorded, "seconds": round(seconds, 1)}, indent=2)
    atomic_write(marker, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return Outcome(name, "done", seconds)


def read_marker(marker: Path, chapter: str) -> dict[str, Any] | None:
    """The finished-chapter marker ``marker``: a JSON object whose ``parameters`` and ``settings`` are
    objects. A damaged one (not UTF-8, not JSON, another shape) is ``None``, said in one line: the chapter
    runs again rather than stopping the batch."""
    try:
        previous = json.loads(marker.read_text(encoding="utf-8"))
        problem = None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        previous, problem = None, type(err).__name__
    if problem is None and not (isinstance(previous, dict) and all(
            isinstance(previous.get(k, {}), dict) for k in ("parameters", "settings"))):
        previous, problem = None, "not an object with parameters and settings"
    if problem is not None:
        tqdm.write(f"{chapter}: its marker {marker} is damaged ({problem}); running the chapter again")
    return previous


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
        return run_chapters(book_root, chapters, out, parameters, settings, devices, force, scale)


def run_chapters(book_root: Path, chapters: list[Path], out: Path, parameters: dict[str, Any],
                 settings: dict[str, Any], devices: list[str], force: bool, scale: str) -> list[Outcome]:
    """Run ``chapters`` in reading order, ``len(devices)`` at a time, each worker on its own device."""
    from paper_repro.runs.progress import tqdm

    queue = list(chapters)
    lock = threading.Lock()
    outcomes: dict[Path, Outcome] = {}
    bar = tqdm(total=len(chapters), desc=f"reproduce ({scale})", unit="chapter")

    def worker(device: str) -> None:
        while True:
            with lock:
                if not queue:
                    return
                chapter = queue.pop(0)
            outcome = run_chapter(book_root, chapter, out, {**parameters, "device": device}, force, settings)
            with lock:
                outcomes[chapter] = outcome
                detail = f"{outcome.seconds:.0f} s" if outcome.status != "skipped" else "already done (--force re-runs)"
                where = f" on {device}" if len(devices) > 1 else ""
                bar.write(f"{outcome.status:>7}  {outcome.chapter}  {detail}{where}")
                bar.update()

    with ThreadPoolExecutor(len(devices)) as pool:
        for done in [pool.submit(worker, device) for device in devices]:
            done.result()
    bar.close()
    return [outcomes[c] for c in chapters]


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
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed in "
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
