"""In which order to offer chapters to the free slots of a run, from how long each took last time.

A chapter's expected time is what it took in this machine's last build of that scale
(``_build/chapter_seconds-<scale>.json``), else the seconds its metadata states for the scale
(``{"paper_repro": {"seconds": {"demo": 1787}}}``, measured), else 0. A freed slot takes the first
ready chapter of :func:`planned_order`: the chapters by the longest chain of work each heads
(critical-path list scheduling), then improved by moving or swapping chapters while a simulation of
the run on its slots finishes sooner: with chapters of very unequal length, the critical-path order
alone can leave one core idle for minutes at the end (simulated with the times the 5223407 build
measured: 3,714 s, as that build took; planned: 3,571 s).
"""
from __future__ import annotations

import json
from pathlib import Path

from paper_repro.book.chapters import BUILD_DIR, chapter_name, read_notebook
from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import atomic_write


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


def record_seconds(book_root: Path, scale: str, seconds: dict[str, float]) -> None:
    """Add this run's execution times (``{chapter: seconds}``) to :func:`seconds_file` (chapters not
    executed keep theirs)."""
    known = measured_seconds(book_root, scale, log=None)  # a damaged file was said when it was read
    known.update({name: round(value, 1) for name, value in seconds.items()})
    text = json.dumps(known, indent=1, sort_keys=True) + "\n"
    atomic_write(seconds_file(book_root, scale), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


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
    """When a build would end that runs the chapters of ``order`` as :func:`paper_repro.book.runner.run_chapters` does: each
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
    """The order :func:`paper_repro.book.runner.run_chapters` offers the chapters in: the earliest :func:`simulated_finish` a
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

