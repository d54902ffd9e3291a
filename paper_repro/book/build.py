"""``python -m paper_repro book``: build the rendered book, executing its stale chapters side by side first.

    python -m paper_repro book                      # demo scale, as many chapters at a time as cores / 1
    python -m paper_repro book --scale smoke --jobs 1

Jupyter Book executes notebooks one after another, each with every core. This command first asks the
book's execution cache (jupyter-cache, one per scale under ``_build/.jupyter_cache/<scale>``, keyed by
each notebook's code, and each executed copy records the fingerprint of the package code it imported,
:func:`chapter_code`) which chapters it does not hold or holds for other package code, executes those ``--jobs`` at a time - each kernel
with ``cores / jobs`` threads, progress bars off (they are widgets a static page cannot show) - prints
each chapter's execution time, caches the executed notebooks, then runs ``jupyter-book build``, which
finds every chapter in the cache and only renders. A rebuild with nothing changed executes nothing.

A chapter that reads what another trains (a table reading the training chapter's runs) names it in
its notebook metadata, ``{"paper_repro": {"after": ["dadnet/training_evaluation"]}}``, and is started
only when that chapter has finished. A freed kernel slot takes the first ready chapter of a planned
order: the chapters by the longest chain of work each heads (critical-path list scheduling), then
improved by moving or swapping chapters while a simulation of the build on ``--jobs`` slots finishes
sooner: with chapters of very unequal length, the critical-path order alone can leave one core idle
for minutes at the end (simulated with the times the 5223407 build measured: 3,714 s, as that build
took; planned: 3,571 s). The log prints the expected time of the planned order. A chapter's expected time is what it took in
this machine's last build of that scale (``_build/chapter_seconds-<scale>.json``), else the seconds
its metadata states for the scale (``{"paper_repro": {"seconds": {"demo": 1787}}}``, measured), else
0; ties go in reading order. Two chapters that still ask for the same cached run meet at its lock:
one trains, the other waits and reads it.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from paper_repro.book.reproduce import chapter_name, find_book_root, list_chapters
from paper_repro.cli import positive_int
from paper_repro.config import SCALES
from paper_repro.environment import SCALE_ENV, environment
from paper_repro.errors import UserError
from paper_repro.runs.cached import changed_files, code_manifest, is_module, listed
from paper_repro.runs.checkpoints import atomic_write

# nbformat, yaml and jupyter-cache are imported where they are used: jupyter-cache alone takes ~2 s to
# import, and every command of the CLI loads this module to register `book`.
CONFIG_FILE = "_config.yml"
BUILD_DIR = "_build"


@dataclass
class Executed:
    chapter: str
    seconds: float
    error: str | None = None


def cache_folder(book_root: Path, scale: str) -> Path:
    """The execution cache of ``scale``: a demo build never reads a smoke build's outputs."""
    return book_root / BUILD_DIR / ".jupyter_cache" / scale


def web_url(remote: str) -> str | None:
    """The web address of a git remote (``https://host/owner/repo`` or ``git@host:owner/repo.git``);
    ``None`` for a remote that is no web repository (a local folder, ``file://``)."""
    remote = remote.strip()
    if match := re.fullmatch(r"(?:ssh://)?git@([^:/]+)[:/](.+?)(?:\.git)?/?", remote):
        return f"https://{match.group(1)}/{match.group(2)}"
    if match := re.fullmatch(r"https?://(?:[^@/]+@)?(.+?)(?:\.git)?/?", remote):
        return f"https://{match.group(1)}"
    return None


def repository_url(book_root: Path) -> str | None:
    """Where the book's source lives: ``$PAPER_REPRO_REPOSITORY_URL``, else the web address of the
    clone's ``origin`` remote, else ``None`` (a clone of a local folder links nowhere)."""
    if environment().repository_url:
        return environment().repository_url
    try:
        remote = subprocess.run(["git", "remote", "get-url", "origin"], cwd=book_root, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return web_url(remote.stdout) if remote.returncode == 0 else None


def scale_config(book_root: Path, scale: str) -> Path:
    """``_config.yml`` with the execution cache of ``scale`` and, when known, the repository's address
    (each page's repository button), written to ``_build/config-<scale>.yml``."""
    import yaml

    config = yaml.safe_load((book_root / CONFIG_FILE).read_text())
    config.setdefault("execute", {})["cache"] = str(cache_folder(book_root, scale))
    if url := repository_url(book_root):
        config.setdefault("repository", {}).update(url=url, path_to_book="", branch="main")
        config.setdefault("html", {}).update(use_repository_button=True)
    path = book_root / BUILD_DIR / f"config-{scale}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# written by `python -m paper_repro book --scale {scale}` from {CONFIG_FILE}\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return path


def read_notebook(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def notebook_digest(notebook) -> str:
    """A hash of a notebook's code cells (their sources, in order): what a chapter runs of its own."""
    import hashlib

    code = "\n\x00".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def needs_of(notebook) -> list[str]:
    """The chapters this one runs after (its metadata ``paper_repro.after``)."""
    return list(notebook.metadata.get("paper_repro", {}).get("after", []))


def seconds_file(book_root: Path, scale: str) -> Path:
    """Where a build records each chapter's execution time at ``scale``, for the next build's order."""
    return book_root / BUILD_DIR / f"chapter_seconds-{scale}.json"


def measured_seconds(book_root: Path, scale: str, log=print) -> dict[str, float]:
    """The times :func:`record_seconds` kept: ``{chapter: seconds}``. A file that is not that (truncated,
    not UTF-8, not JSON, another shape) is ignored, said in one line when ``log`` is given."""
    path = seconds_file(book_root, scale)
    if not path.is_file():
        return {}
    try:
        measured = json.loads(path.read_text(encoding="utf-8"))
        problem = None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        measured, problem = {}, type(err).__name__
    if problem is None and not (isinstance(measured, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in measured.values())):
        measured, problem = {}, "not an object of chapter: seconds"
    if problem is not None and log is not None:
        log(f"{path}: damaged ({problem}); ignored, the chapters' stated times order this build")
    return measured


def expected_seconds(book_root: Path, chapters: list[Path], scale: str, log=print) -> dict[str, float]:
    """Each chapter's expected execution time: this machine's last build, else its metadata, else 0."""
    measured = measured_seconds(book_root, scale, log)
    expected = {}
    for chapter in chapters:
        name = chapter_name(chapter)
        stated = read_notebook(book_root / chapter).metadata.get("paper_repro", {}).get("seconds", {})
        expected[name] = float(measured.get(name, stated.get(scale, 0.0)))
    return expected


def critical_paths(seconds: dict[str, float], needs: dict[str, list[str]]) -> dict[str, float]:
    """For each chapter, its own expected time plus the longest chain of chapters waiting on it."""
    waiting = {name: [other for other, its_needs in needs.items() if name in its_needs] for name in seconds}
    paths: dict[str, float] = {}

    def path(name: str) -> float:
        if name not in paths:
            paths[name] = seconds[name] + max((path(other) for other in waiting[name]), default=0.0)
        return paths[name]

    return {name: path(name) for name in seconds}


def simulated_finish(order: list[str], seconds: dict[str, float], needs: dict[str, list[str]], jobs: int) -> float:
    """When a build would end that runs the chapters of ``order`` as :func:`execute_stale` does: each
    freed slot of ``jobs`` takes the first chapter in ``order`` whose ``needs`` have finished, else waits
    for the next chapter to finish; every chapter takes its expected ``seconds``."""
    free, finished, pending = [0.0] * jobs, {}, list(order)
    while pending:
        slot = min(range(jobs), key=free.__getitem__)
        now = free[slot]
        ready = next((c for c in pending if all(finished.get(n, float("inf")) <= now for n in needs[c])), None)
        if ready is None:
            later = [t for t in finished.values() if t > now]
            if not later:
                raise UserError(f"chapters wait on each other in paper_repro.after: {', '.join(pending)}")
            free[slot] = min(later)
            continue
        pending.remove(ready)
        finished[ready] = free[slot] = now + seconds[ready]
    return max(finished.values(), default=0.0)


def _neighbours(order: list[str]):
    """Every order one move (a chapter taken out and put elsewhere) or one swap away from ``order``."""
    n = len(order)
    for i in range(n):
        for j in range(n):
            if i != j:
                moved = order[:i] + order[i + 1:]
                moved.insert(j, order[i])
                yield moved
    for i in range(n):
        for j in range(i + 1, n):
            swapped = order[:]
            swapped[i], swapped[j] = swapped[j], swapped[i]
            yield swapped


def planned_order(seconds: dict[str, float], needs: dict[str, list[str]], jobs: int,
                  reading_order: list[str] | None = None) -> list[str]:
    """The order :func:`execute_stale` offers the chapters in: the earliest :func:`simulated_finish` a
    local search reaches from three starting orders - by critical path, by the chapter's own time
    (both ties in ``reading_order``) and the reading order - taking any move or swap of two chapters
    that finishes sooner, until none does. Deterministic; the critical-path order when nothing beats it."""
    reading = {c: i for i, c in enumerate(reading_order or sorted(seconds))}
    priority = critical_paths(seconds, needs)
    starts = [sorted(seconds, key=lambda c: (-priority[c], reading[c])),
              sorted(seconds, key=lambda c: (-seconds[c], reading[c])),
              sorted(seconds, key=reading.__getitem__)]
    best_order, best = starts[0], float("inf")
    for order in starts:
        finish = simulated_finish(order, seconds, needs, jobs)
        improved = True
        while improved:
            improved = False
            for candidate in _neighbours(order):
                candidate_finish = simulated_finish(candidate, seconds, needs, jobs)
                if candidate_finish < finish - 1e-6:
                    order, finish, improved = candidate, candidate_finish, True
                    break
        if finish < best - 1e-6:
            best_order, best = order, finish
    return best_order


def record_seconds(book_root: Path, scale: str, results: list[Executed]) -> None:
    """Add this build's execution times to :func:`seconds_file` (chapters not executed keep theirs)."""
    known = measured_seconds(book_root, scale, log=None)  # a damaged file was said when it was read
    known.update({r.chapter: round(r.seconds, 1) for r in results if r.error is None})
    text = json.dumps(known, indent=1, sort_keys=True) + "\n"
    atomic_write(seconds_file(book_root, scale), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


CODE_KEY = "paper_repro_code"  # the executed copy's record: the manifest of the package code it ran


def chapter_modules(notebook) -> list[str]:
    """The modules of this package a chapter's code cells import (shell and magic lines skipped)."""
    modules: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module)
                modules.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return sorted(m for m in modules if is_module(m))


def chapter_code(notebook) -> dict[str, str]:
    """The fingerprint of the package code a chapter runs (:func:`paper_repro.runs.cached.code_manifest`)."""
    return code_manifest(*chapter_modules(notebook), exclude=())  # settings and verdict code change its output too


def stale_chapters(book_root: Path, scale: str, log=None) -> list[Path]:
    """The chapters (reading order) the cache of ``scale`` holds no executed copy of: their code cells
    changed, or the package code they import did (``log`` is told which files)."""
    from jupyter_cache import get_cache

    cache = get_cache(str(cache_folder(book_root, scale)))
    stale = []
    for chapter in list_chapters(book_root):
        notebook = read_notebook(book_root / chapter)
        try:
            record = cache.match_cache_notebook(notebook)
        except KeyError:
            stale.append(chapter)
            continue
        changed = changed_files((record.data or {}).get(CODE_KEY) or {}, chapter_code(notebook))
        if changed:
            stale.append(chapter)
            if log is not None:
                log(f"{chapter_name(chapter)}: re-executing, the package code it runs changed ({listed(changed)})")
    return stale


def kernel_environment(scale: str, jobs: int) -> dict[str, str]:
    """What every chapter's kernel inherits: the scale, its share of the cores, no progress bars."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return {SCALE_ENV: scale, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def execute_chapter(book_root: Path, chapter: Path, scale: str, timeout: int | None) -> Executed:
    """Execute one chapter in its folder and store it in the cache of ``scale``."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    path = book_root / chapter
    notebook = read_notebook(path)
    result = single_nb_execution(notebook, cwd=str(path.parent), timeout=timeout, allow_errors=False)
    if result.err is not None:
        last = [line for line in (result.exc_string or "").strip().splitlines() if line.strip()][-1:]
        return Executed(chapter_name(chapter), result.time, f"{chapter}: {last[0] if last else result.err}")
    cache = get_cache(str(cache_folder(book_root, scale)))
    data = {"execution_seconds": result.time, CODE_KEY: chapter_code(notebook)}
    cache.cache_notebook_bundle(CacheBundleIn(result.nb, str(path), data=data),
                                check_validity=False, overwrite=True)
    return Executed(chapter_name(chapter), result.time)


def execute_stale(book_root: Path, scale: str, jobs: int, timeout: int | None = None,
                  log=print) -> list[Executed]:
    """Execute every stale chapter, ``jobs`` at a time, each after the chapters it names in ``after``,
    offered in :func:`planned_order`."""
    pending = stale_chapters(book_root, scale, log)
    if not pending:
        log(f"book ({scale}): every chapter is in the cache; nothing to execute")
        return []
    names = {chapter_name(c) for c in list_chapters(book_root)}
    needs = {c: [n for n in needs_of(read_notebook(book_root / c)) if n in names] for c in pending}
    unknown = {n for c in pending for n in needs_of(read_notebook(book_root / c))} - names
    if unknown:
        raise UserError(f"chapters name unknown chapters in paper_repro.after: {', '.join(sorted(unknown))}")
    seconds = expected_seconds(book_root, pending, scale, log)
    by_name = {chapter_name(c): c for c in pending}
    plan_needs = {chapter_name(c): [n for n in needs[c] if n in by_name] for c in pending}
    order = planned_order(seconds, plan_needs, jobs, list(by_name))
    pending = [by_name[name] for name in order]
    os.environ.update(kernel_environment(scale, jobs))
    log(f"book ({scale}): executing {len(pending)} chapter(s), {jobs} at a time, "
        f"{os.environ['OMP_NUM_THREADS']} thread(s) each; expected {simulated_finish(order, seconds, plan_needs, jobs):.0f} s "
        f"from the chapters' expected times")
    started = time.perf_counter()
    done: set[str] = {n for n in names if n not in {chapter_name(c) for c in pending}}
    condition = threading.Condition()
    results: list[Executed] = []
    failed = threading.Event()

    def next_ready() -> Path | None:
        """The first pending chapter whose ``after`` chapters are done (waits while one is running)."""
        with condition:
            while pending and not failed.is_set():
                for chapter in pending:
                    if all(n in done for n in needs[chapter]):
                        pending.remove(chapter)
                        return chapter
                condition.wait()
            return None

    def worker() -> None:
        while (chapter := next_ready()) is not None:
            outcome = execute_chapter(book_root, chapter, scale, timeout)
            with condition:
                results.append(outcome)
                if outcome.error:
                    failed.set()
                    log(f"  FAILED    {outcome.chapter} after {outcome.seconds:.0f} s: {outcome.error}")
                else:
                    done.add(outcome.chapter)
                    log(f"  executed  {outcome.chapter} in {outcome.seconds:.0f} s "
                        f"({time.perf_counter() - started:.0f} s since the start)")
                condition.notify_all()

    with ThreadPoolExecutor(jobs) as pool:
        for future in [pool.submit(worker) for _ in range(jobs)]:
            future.result()
    record_seconds(book_root, scale, results)
    log(f"book ({scale}): executed {sum(r.error is None for r in results)} chapter(s) in "
        f"{time.perf_counter() - started:.0f} s")
    return results


def build_book(book_root: Path, scale: str, jobs: int, timeout: int | None = None) -> int:
    """Execute the stale chapters, then render with Jupyter Book; 0 on success."""
    started = time.perf_counter()
    results = execute_stale(book_root, scale, jobs, timeout)
    failures = [r for r in results if r.error]
    if failures:
        for failure in failures:
            print(f"error: {failure.error}", file=sys.stderr)
        return 1
    config = scale_config(book_root, scale)
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_root), "--builder", "html",
               "--config", str(config)]
    status = subprocess.call(command, cwd=book_root, env={**os.environ, **kernel_environment(scale, 1)})
    print(f"book ({scale}): built in {time.perf_counter() - started:.0f} s; "
          f"{book_root / BUILD_DIR / 'html' / 'index.html'}")
    return status


def default_jobs() -> int:
    """One chapter per core (the book's networks are small: one thread each uses a core well)."""
    return max(1, os.cpu_count() or 1)


def check_built_book(book_root: Path, screenshots: str | None = None) -> int:
    """Open every built page in headless Chromium, offline (:mod:`paper_repro.book.browser_check`);
    print one line per page, save screenshots of a chapter opener, a results page and the painter's
    figure when asked; 0 when every page is clean."""
    from paper_repro.book.browser_check import check_pages, screenshot

    html = book_root / BUILD_DIR / "html"
    reports = check_pages(html)
    for report in reports:
        print(report)
    bad = [r for r in reports if not r.ok]
    print(f"book check: {len(reports) - len(bad)} of {len(reports)} pages clean")
    if screenshots:
        for page, name in (("book/dadnet/training_evaluation.html", "chapter_opener"),
                           ("book/dadnet/table4_ablation.html", "results_page"),
                           ("book/defect_gan/control.html", "painter_page")):
            if (html / page).is_file():
                print(f"screenshot: {screenshot(html, page, Path(screenshots) / f'{name}.png', full_page=True)}")
    return 1 if bad else 0


def _command(args: argparse.Namespace) -> int:
    book_root = Path(args.book).resolve() if args.book else find_book_root()
    if args.check:
        return check_built_book(book_root, args.screenshots)
    return build_book(book_root, args.scale, args.jobs, args.timeout)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("book", help="build the rendered book (stale chapters executed side by side)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="demo", help="the chapters' scale (default demo)")
    parser.add_argument("--jobs", type=positive_int, default=default_jobs(),
                        help="chapters executed at a time (default: one per core)")
    parser.add_argument("--timeout", type=positive_int, default=None,
                        help="seconds a cell may run (default: no limit)")
    parser.add_argument("--book", help="repository root holding _toc.yml (default: found from here)")
    parser.add_argument("--check", action="store_true",
                        help="do not build: open every built page in headless Chromium, offline, and report "
                        "MathJax errors, raw TeX, failed requests, console errors and horizontal scrolling")
    parser.add_argument("--screenshots", metavar="DIR", help="with --check: save three pages as PNG into DIR")
    parser.set_defaults(func=_command)


__all__ = ["cache_folder", "scale_config", "needs_of", "critical_paths", "simulated_finish", "planned_order",
           "stale_chapters", "kernel_environment", "execute_chapter", "notebook_digest",
           "execute_stale", "build_book", "check_built_book", "register"]
