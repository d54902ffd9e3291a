"""``python -m paper_repro book``: build the rendered book, executing its stale chapters side by side first.

    python -m paper_repro book                      # demo scale, as many chapters at a time as cores / 1
    python -m paper_repro book --scale smoke --jobs 1

Jupyter Book executes notebooks one after another, each with every core. This command first runs the
chapters the book's execution cache of the scale (jupyter-cache, under ``_build/.jupyter_cache/<scale>``)
does not hold with this code - their cells changed, or the package code they import did - through the
chapter runner that ``reproduce`` uses too (:mod:`paper_repro.book.runner`): ``--jobs`` at a time, each
kernel with ``cores / jobs`` threads and no progress bars (widgets a static page cannot show), each
after the chapters it reads, in a planned order (:mod:`paper_repro.book.schedule`), printing each
chapter's time. Then ``jupyter-book build`` finds every chapter in the cache and only renders. A
rebuild with nothing changed executes nothing. Two chapters that still ask for the same cached run
meet at its lock: one trains, the other waits and reads it.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from paper_repro.book.chapters import BUILD_DIR, chapter_name, find_book_root, list_chapters
from paper_repro.book.runner import NOT_RUN, BookCache, Outcome, chapter_environment, run_chapters, why_stale
from paper_repro.cli import positive_int
from paper_repro.config import SCALES
from paper_repro.environment import environment

# nbformat, yaml and jupyter-cache are imported where they are used: jupyter-cache alone takes ~2 s to
# import, and every command of the CLI loads this module to register `book`.
CONFIG_FILE = "_config.yml"


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


def book_cache(book_root: Path, scale: str) -> BookCache:
    """The store the runner keeps the book's executed chapters of ``scale`` in."""
    return BookCache(book_root, scale, cache_folder(book_root, scale))


def stale_chapters(book_root: Path, scale: str, log=None) -> list[Path]:
    """The chapters (reading order) the cache of ``scale`` holds no executed copy of with this code:
    their code cells changed, or the package code they import did (``log`` is told why)."""
    reasons = why_stale(book_root, list_chapters(book_root), book_cache(book_root, scale), scale=scale)
    for chapter, reason in reasons.items():
        if log is not None and reason not in (None, NOT_RUN):
            log(f"{chapter_name(chapter)}: running again, {reason}")
    return [chapter for chapter, reason in reasons.items() if reason is not None]


def execute_stale(book_root: Path, scale: str, jobs: int, timeout: int | None = None,
                  log=print) -> list[Outcome]:
    """Execute every stale chapter, ``jobs`` at a time (:func:`paper_repro.book.runner.run_chapters`);
    the outcomes of the chapters that ran or could not."""
    outcomes = run_chapters(book_root, list_chapters(book_root), book_cache(book_root, scale), scale=scale,
                            slots=jobs, timeout=timeout, log=log)
    return [o for o in outcomes if o.status != "skipped"]


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
    if results:
        # Sphinx re-reads a page only when its source file changed; a chapter re-executed because the
        # package code changed keeps its source, so without --all its page would show the old outputs.
        command.append("--all")
    render = {k: v for k, v in chapter_environment(scale, 1).items() if v is not None}
    status = subprocess.call(command, cwd=book_root, env={**os.environ, **render})
    print(f"book ({scale}): built in {time.perf_counter() - started:.0f} s; "
          f"{book_root / BUILD_DIR / 'html' / 'index.html'}")
    return status


def default_jobs() -> int:
    """One chapter per core (the book's networks are small: one thread each uses a core well)."""
    return max(1, os.cpu_count() or 1)


def check_built_book(book_root: Path, screenshots: str | None = None) -> int:
    """Open every built page in headless Chromium, offline (:mod:`paper_repro.book.browser_check`);
    print one line per page, save screenshots of a chapter opener, two results pages, the painter's
    figure, the closing page and the landing page when asked; 0 when every page is clean."""
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
                           ("book/defect_gan/control.html", "painter_page"),
                           ("book/dadnet/tables_1_3.html", "dadnet_tables_1_3"),
                           ("book/closing.html", "closing_page"),
                           ("book/intro.html", "landing_page")):
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
                        "MathJax errors, raw TeX, failed requests, console errors, horizontal scrolling, tables "
                        "wider than their column, the package's log lines in outputs, floats with more digits than "
                        "meant and figures without a caption")
    parser.add_argument("--screenshots", metavar="DIR", help="with --check: save six pages as PNG into DIR")
    parser.set_defaults(func=_command)


__all__ = ["cache_folder", "scale_config", "book_cache", "stale_chapters", "execute_stale", "build_book",
           "check_built_book", "register"]
