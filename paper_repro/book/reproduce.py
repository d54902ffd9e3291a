"""``python -m paper_repro reproduce``: run every chapter with papermill and collect its tables.

    python -m paper_repro reproduce --scale full --out results/full --data-root /data --device cuda

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from paper_repro.cli import device_name, output_folder, positive_int, seed_value
from paper_repro.config import DEFAULT_SEED, SCALES
from paper_repro.errors import UserError

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


def _toc_files(entry: Any) -> Iterable[str]:
    if isinstance(entry, dict):
        for key in ("root", "file"):
            if key in entry:
                yield entry[key]
        for key in ("parts", "chapters", "sections"):
            for child in entry.get(key, []) or []:
                yield from _toc_files(child)
    elif isinstance(entry, list):
        for child in entry:
            yield from _toc_files(child)


def list_chapters(book_root: Path) -> list[Path]:
    """The notebooks of ``_toc.yml``, in reading order, as paths relative to ``book_root``."""
    import yaml

    toc_path = book_root / TOC_FILE
    try:
        toc = yaml.safe_load(toc_path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{toc_path}: cannot read the table of contents ({err})") from err
    chapters = []
    for name in _toc_files(toc):
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


def run_chapter(book_root: Path, chapter: Path, out: Path, parameters: dict[str, Any], force: bool) -> Outcome:
    import papermill

    name = chapter_name(chapter)
    marker = out / ".done" / f"{name}.json"
    output = out / "notebooks" / f"{name}.ipynb"
    if not force and marker.is_file():
        try:
            if json.loads(marker.read_text()).get("parameters") == parameters:
                return Outcome(name, "skipped")
        except json.JSONDecodeError:
            pass  # a damaged marker: run the chapter again
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
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"parameters": parameters, "seconds": round(seconds, 1)}, indent=2))
    return Outcome(name, "done", seconds)


def reproduce(scale: str, out: Path, only: list[str] | None = None, force: bool = False,
              data_root: str | None = None, device: str = "cpu", seed: int = DEFAULT_SEED,
              book_root: Path | None = None, runs: int | None = None) -> list[Outcome]:
    """Run the selected chapters; return one :class:`Outcome` per chapter."""
    from tqdm.auto import tqdm

    book_root = book_root or find_book_root()
    chapters = select(list_chapters(book_root), only)
    if not chapters:
        raise UserError(f"{book_root / TOC_FILE}: lists no notebook chapters")
    if data_root is not None and not Path(data_root).expanduser().exists():
        raise UserError(f"--data-root {data_root}: no such folder")
    out = Path(out).resolve()
    parameters = {
        "scale": scale, "device": device, "seed": seed, "results_dir": str(out / "tables"),
        "data_root": str(Path(data_root).expanduser().resolve()) if data_root else None,
    }
    if runs is not None:  # chapters that average several runs (DADNet §3.4.1: 3) read `runs`
        parameters["runs"] = runs
    outcomes = []
    bar = tqdm(chapters, desc=f"reproduce ({scale})", unit="chapter")
    for chapter in bar:
        bar.set_postfix_str(chapter_name(chapter))
        outcome = run_chapter(book_root, chapter, out, parameters, force)
        outcomes.append(outcome)
        detail = f"{outcome.seconds:.0f} s" if outcome.status != "skipped" else "already done (--force re-runs)"
        bar.write(f"{outcome.status:>7}  {outcome.chapter}  {detail}")
    return outcomes


def _command(args: argparse.Namespace) -> int:
    import sys

    outcomes = reproduce(args.scale, Path(args.out), args.only, args.force, args.data_root, args.device,
                         args.seed, Path(args.book) if args.book else None, args.runs)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
          f"tables in {Path(args.out) / 'tables'}")
    for outcome in failed:
        print(f"FAILED {outcome.message}", file=sys.stderr)
    return 1 if failed else 0


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
    parser.set_defaults(func=_command)
