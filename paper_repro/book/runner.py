"""One chapter runner for ``python -m paper_repro book`` and ``python -m paper_repro reproduce``.

Both ask the same questions of every chapter and answer them here, once:

- **Has it run already?** A chapter's *record* is what decides its outputs: the parameters injected
  into it, the settings its kernel inherits (scale, dry run, SDGM checkpoint, precision), a digest of
  its own code cells and the fingerprint of the package code it imports
  (:func:`paper_repro.book.chapters.chapter_code`). A chapter runs again when its store holds no record
  or another one, and the line says why ("running again, the package code it runs changed
  (dadnet/losses.py)"). The book's store is its execution cache (jupyter-cache, which Jupyter Book then
  renders from); the batch's is its output folder (executed notebooks and ``.done`` markers).
- **In what order?** Each chapter starts only after the chapters it reads (its metadata
  ``{"paper_repro": {"after": [...]}}``); free slots take the first ready chapter of
  :func:`paper_repro.book.schedule.planned_order`. A failed chapter does not stop the others, but the
  chapters that read it are not started.
- **In what environment?** Every kernel inherits the scale, its share of the cores
  (``cores / slots`` threads), no progress bars (a static page cannot show them) and the run's settings
  (:func:`chapter_environment`).
- **How?** papermill executes each chapter in its folder (:func:`execute`); a failure is one line naming
  the notebook, the cell a reader counts and the exception.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from paper_repro.book.chapters import (chapter_code, chapter_name, list_chapters, needs_of, notebook_digest,
                                      read_notebook)
from paper_repro.book.schedule import expected_seconds, planned_order, record_seconds, simulated_finish
from paper_repro.environment import DRY_RUN_ENV, PRECISION_ENV, SCALE_ENV, SD_MODEL_ENV, exported_variables
from paper_repro.errors import UserError
from paper_repro.runs.cached import changed_files, listed
from paper_repro.runs.checkpoints import atomic_write


@dataclass
class Outcome:
    chapter: str
    status: str  # "done", "skipped" (its record matched), "failed", "blocked" (a chapter it reads failed)
    seconds: float = 0.0
    message: str = ""

    @property
    def error(self) -> str | None:
        """What went wrong, for a chapter that failed or could not start; else ``None``."""
        return self.message if self.status in ("failed", "blocked") else None


# ---- has it run already? ------------------------------------------------------------------------
def chapter_record(notebook, parameters: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """What decides a chapter's outputs: its parameters and settings, its own code, the package code it runs."""
    return {"parameters": parameters, "settings": settings, "notebook": notebook_digest(notebook),
            "code": chapter_code(notebook)}


NOT_RUN = "it has not run yet"


def stale_reason(previous: dict[str, Any] | None, record: dict[str, Any]) -> str | None:
    """Why a chapter whose store holds ``previous`` must run again for ``record``; ``None`` if it need not."""
    if previous is None:
        return NOT_RUN
    if "code" not in previous:
        return "its record does not say which package code it ran"
    if previous.get("code") != record["code"]:
        changed = changed_files(previous.get("code") or {}, record["code"])
        return f"the package code it runs changed ({listed(changed)})"
    if previous.get("notebook") != record["notebook"]:
        return "its code cells changed"
    for key in ("parameters", "settings"):
        old, new = previous.get(key) or {}, record[key]
        if old != new:
            names = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
            return f"its {key} changed ({', '.join(names)})"
    return None


class Store(Protocol):
    """Where a chapter's executed copy and its record are kept."""

    def previous(self, chapter: Path, notebook) -> dict[str, Any] | None: ...
    def output(self, chapter: Path) -> Path | None: ...
    def save(self, chapter: Path, source, executed, record: dict[str, Any], seconds: float) -> None: ...
    def finished(self, seconds: dict[str, float]) -> None: ...


# ---- in what environment? -----------------------------------------------------------------------
def chapter_environment(scale: str, slots: int, settings: dict[str, Any] | None = None) -> dict[str, str | None]:
    """What every chapter's kernel inherits: the scale, its share of the cores, no progress bars, and the
    run's settings (``dry_run``, ``sd_model``, ``precision``; ``None`` leaves a variable as it is)."""
    settings = settings or {}
    threads = str(max(1, (os.cpu_count() or 1) // max(1, slots)))
    return {SCALE_ENV: scale, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
            DRY_RUN_ENV: "1" if settings.get("dry_run") else None,
            SD_MODEL_ENV: settings.get("sd_model"), PRECISION_ENV: settings.get("precision")}


# ---- how? ----------------------------------------------------------------------------------------
def execute(book_root: Path, chapter: Path, parameters: dict[str, Any], output: Path | None,
            timeout: int | None = None):
    """Execute one chapter in its folder with papermill (``parameters`` injected after its parameters
    cell; none: the notebook as it is). Returns ``(executed notebook or None, seconds, error line or None)``."""
    import papermill

    started = time.perf_counter()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
    try:
        executed = papermill.execute_notebook(
            str(book_root / chapter), str(output) if output is not None else None, parameters=parameters,
            # the kernel starts in the chapter's folder; papermill's own `cwd=` would chdir this process,
            # which chapters executed side by side in threads would leave in one of their folders
            resources={"metadata": {"path": str((book_root / chapter).parent)}},
            progress_bar=False, log_output=False, execution_timeout=timeout)
    except Exception as err:  # papermill raises PapermillExecutionError; anything else is a failure too
        return None, time.perf_counter() - started, failure_message(chapter, output, err)
    return executed, time.perf_counter() - started, None


def failure_message(notebook: Path, output: Path | None, err: Exception) -> str:
    """One line naming the notebook, the failing cell (counted from 1 in the source notebook, as a
    reader sees it) with its first line of code, and the exception."""
    index = getattr(err, "cell_index", None)
    where = "a cell"
    if index is not None:
        # papermill puts an error-marker cell first, and its "injected-parameters" cell after the parameters
        position = index if _has_injected_cell_before(output, index) else index + 1
        where = f"cell {position}"
        source = (str(getattr(err, "source", "") or "").strip().splitlines() or [""])[0]
        if source:
            where += f" ({source[:60]})"
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    first_line = (str(evalue).strip().splitlines() or [""])[0]
    seen = f" (executed notebook: {output})" if output is not None else ""
    return f"{notebook}: {where} raised {ename}: {first_line}{seen}"


def _has_injected_cell_before(output: Path | None, index: int) -> bool:
    if output is None:
        return False
    try:
        import nbformat

        cells = nbformat.read(output, as_version=4).cells[:index]
    except Exception:  # no executed notebook to look at: count as written
        return False
    return any("injected-parameters" in cell.metadata.get("tags", []) for cell in cells)


def with_outputs(source, executed):
    """``source`` with the outputs and execution counts of its executed copy (papermill's injected cell
    and its metadata left out): the notebook as a reader's page shows it, and as jupyter-cache keys it."""
    import copy

    ran = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    result = copy.deepcopy(source)
    for cell, done in zip(result.cells, ran):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = done.get("outputs", []), done.get("execution_count")
    return result


# ---- the two stores ------------------------------------------------------------------------------
class BookCache:
    """The book's execution cache of one scale (jupyter-cache, keyed by a notebook's code cells; the
    record is kept beside each executed copy), and this machine's chapter times for the next plan."""

    RECORD = "paper_repro_record"

    def __init__(self, book_root: Path, scale: str, folder: Path):
        from jupyter_cache import get_cache

        self.book_root, self.scale, self.cache = book_root, scale, get_cache(str(folder))

    def previous(self, chapter, notebook):
        try:
            entry = self.cache.match_cache_notebook(notebook)
        except KeyError:
            return None
        return (entry.data or {}).get(self.RECORD) or {}  # an entry of an older build: no record, runs again

    def output(self, chapter):
        return None

    def save(self, chapter, source, executed, record, seconds):
        from jupyter_cache.base import CacheBundleIn

        bundle = CacheBundleIn(with_outputs(source, executed), str(self.book_root / chapter),
                               data={"execution_seconds": seconds, self.RECORD: record})
        self.cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)

    def finished(self, seconds):
        record_seconds(self.book_root, self.scale, seconds)


class MarkerFolder:
    """A batch's output folder: ``notebooks/<chapter>.ipynb`` (the executed copy) and
    ``.done/<chapter>.json`` (its record and time), written only when the chapter finished."""

    def __init__(self, out: Path):
        self.out = out

    def marker(self, chapter: Path) -> Path:
        return self.out / ".done" / f"{chapter_name(chapter)}.json"

    def previous(self, chapter, notebook):
        marker = self.marker(chapter)
        return read_marker(marker, chapter_name(chapter)) if marker.is_file() else None

    def output(self, chapter):
        self.marker(chapter).unlink(missing_ok=True)  # a chapter running again is not done until it ends
        return self.out / "notebooks" / f"{chapter_name(chapter)}.ipynb"

    def save(self, chapter, source, executed, record, seconds):
        text = json.dumps({**record, "seconds": round(seconds, 1)}, indent=2)
        atomic_write(self.marker(chapter), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def finished(self, seconds):
        pass


def read_marker(marker: Path, chapter: str, log=print) -> dict[str, Any] | None:
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
        log(f"{chapter}: its marker {marker} is damaged ({problem}); running the chapter again")
    return previous


# ---- the run -------------------------------------------------------------------------------------
def why_stale(book_root: Path, chapters: list[Path], store: Store, *, scale: str,
              parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
              device: str | None = None) -> dict[Path, str | None]:
    """For each chapter, why it must run (:func:`stale_reason`), or ``None`` when ``store`` holds its
    record for these parameters, settings and code."""
    injected = {**(parameters or {}), "device": device} if device is not None else dict(parameters or {})
    settings = {"scale": scale, **(settings or {})}
    reasons = {}
    for chapter in chapters:
        notebook = read_notebook(book_root / chapter)
        reasons[chapter] = stale_reason(store.previous(chapter, notebook), chapter_record(notebook, injected, settings))
    return reasons


def run_chapters(book_root: Path, chapters: list[Path], store: Store, *, scale: str,
                 parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                 slots: int = 1, devices: list[str] | None = None, force: bool = False,
                 timeout: int | None = None, log=print) -> list[Outcome]:
    """Run every chapter of ``chapters`` whose record ``store`` does not hold (all of them with ``force``),
    ``slots`` at a time (or one per device of ``devices``, each chapter given ``device`` as a parameter),
    each after the chapters it reads. Returns one :class:`Outcome` per chapter, in reading order."""
    parameters, settings = dict(parameters or {}), {"scale": scale, **(settings or {})}
    lanes = list(devices) if devices else [None] * slots
    notebooks = {c: read_notebook(book_root / c) for c in chapters}

    def record_of(chapter: Path, device: str | None) -> dict[str, Any]:
        injected = {**parameters, "device": device} if device is not None else parameters
        return chapter_record(notebooks[chapter], injected, settings)

    reasons = {} if force else why_stale(book_root, chapters, store, scale=scale, parameters=parameters,
                                         settings=settings, device=lanes[0])
    pending = [c for c in chapters if force or reasons[c] is not None]
    outcomes = {c: Outcome(chapter_name(c), "skipped", message="already done") for c in chapters if c not in pending}
    for chapter in pending:
        if reasons.get(chapter) not in (None, NOT_RUN):
            log(f"{chapter_name(chapter)}: running again, {reasons[chapter]}")
    if not pending:
        log(f"{scale}: every chapter has run with this code and these settings; nothing to execute")
        return [outcomes[c] for c in chapters]
    check_after(book_root, pending)

    all_names = {chapter_name(c) for c in chapters}
    names = {c: chapter_name(c) for c in pending}
    needs = {c: [n for n in needs_of(notebooks[c]) if n in all_names] for c in pending}
    seconds = expected_seconds(book_root, pending, scale, log)
    plan_needs = {names[c]: [n for n in needs[c] if n in names.values()] for c in pending}
    by_name = {names[c]: c for c in pending}
    planned = planned_order(seconds, plan_needs, len(lanes), list(by_name))
    order = [by_name[n] for n in planned]
    environment = chapter_environment(scale, len(lanes), settings)
    log(f"{scale}: executing {len(order)} chapter(s), {len(lanes)} at a time, {environment['OMP_NUM_THREADS']} "
        f"thread(s) each; expected {simulated_finish(planned, seconds, plan_needs, len(lanes)):.0f} s "
        "from the chapters' expected times")

    started = time.perf_counter()
    done = {o.chapter for o in outcomes.values()}  # the skipped chapters: done before this run
    failed: set[str] = set()
    condition = threading.Condition()
    saving = threading.Lock()  # one writer at a time: the execution cache (sqlite + folders) lost a record to two
    measured: dict[str, float] = {}

    def next_ready() -> Path | None:
        """The first chapter of the plan whose ``after`` chapters are done (waits while one runs)."""
        with condition:
            while order:
                for chapter in list(order):
                    blocked = [n for n in needs[chapter] if n in failed]
                    if blocked:  # it reads what a failed chapter should have written
                        order.remove(chapter)
                        failed.add(names[chapter])
                        outcomes[chapter] = Outcome(names[chapter], "blocked",
                                                    message=f"not run: it reads {', '.join(blocked)}, which failed")
                        log(f"  blocked   {names[chapter]}: it reads {', '.join(blocked)}, which failed")
                        condition.notify_all()
                        break
                    if all(n in done for n in needs[chapter]):
                        order.remove(chapter)
                        return chapter
                else:
                    condition.wait()
            return None

    def worker(device: str | None) -> None:
        while (chapter := next_ready()) is not None:
            record = record_of(chapter, device)
            took = 0.0
            try:
                output = store.output(chapter)
                executed, took, error = execute(book_root, chapter, record["parameters"], output, timeout)
                if error is None:
                    with saving:
                        store.save(chapter, notebooks[chapter], executed, record, took)
            except Exception as err:  # a store that cannot write (a full disk): this chapter failed, not the run
                error = f"{chapter}: {' '.join(str(err).split()) or type(err).__name__}"
            with condition:
                where = f" on {device}" if device is not None and len(lanes) > 1 else ""
                if error is None:
                    outcomes[chapter] = Outcome(names[chapter], "done", took)
                    done.add(names[chapter])
                    measured[names[chapter]] = took
                    log(f"  executed  {names[chapter]} in {took:.0f} s{where} "
                        f"({time.perf_counter() - started:.0f} s since the start; {len(done & set(names.values()))} "
                        f"of {len(pending)})")
                else:
                    outcomes[chapter] = Outcome(names[chapter], "failed", took, error)
                    failed.add(names[chapter])
                    log(f"  FAILED    {names[chapter]} after {took:.0f} s{where}: {error}")
                condition.notify_all()

    with exported_variables(environment):
        threads = [threading.Thread(target=worker, args=(lane,)) for lane in lanes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    store.finished(measured)
    log(f"{scale}: executed {len(measured)} chapter(s) in {time.perf_counter() - started:.0f} s")
    return [outcomes[c] for c in chapters]


def check_after(book_root: Path, chapters: list[Path]) -> None:
    """Every chapter named in a ``paper_repro.after`` must be a chapter of the book."""
    names = {chapter_name(c) for c in list_chapters(book_root)}
    unknown = {n for c in chapters for n in needs_of(read_notebook(book_root / c))} - names
    if unknown:
        raise UserError(f"chapters name unknown chapters in paper_repro.after: {', '.join(sorted(unknown))}")


__all__ = ["Outcome", "chapter_record", "stale_reason", "chapter_environment", "execute", "failure_message",
           "with_outputs", "BookCache", "why_stale", "MarkerFolder", "read_marker", "run_chapters", "check_after"]
