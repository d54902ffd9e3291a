"""Cached runs that cannot go stale: a run folder remembers the code that produced it.

A cached run (:func:`paper_repro.runs.folders.cached_run_dir`) is keyed by its configuration. That
alone goes stale: change ``dadnet/losses.py`` and rebuild, and the chapters read the model the *old*
loss trained. So each cached run also records, in ``code.json``, a fingerprint of every module of this
package that the code which trains it imports, directly or through other modules
(:func:`code_manifest`: a static walk of the ``import`` statements, lazy imports inside functions
included). A module's fingerprint is the hash of its syntax tree with docstrings removed
(:func:`source_fingerprint`), so editing a comment or a docstring changes nothing and editing a line of
code changes it.

:func:`ensure_current` compares a run folder's ``code.json`` with the code on this machine before the
run is used; when they differ it prints one line naming what changed ("retraining dadnet: dadnet/losses.py
changed") and empties the folder, so the run is trained again from the start. Runs written before
``code.json`` existed count as stale.

Four parts of the package are left out of a cached run's manifest (:data:`NOT_FINGERPRINTED`):
``paper_repro/config.py`` holds the settings, and the settings a run used are already its cache key (a new
profile for one paper must not retrain the other paper's runs); ``paper_repro/context.py`` and
``paper_repro/environment.py`` only resolve those settings from flags and variables; ``paper_repro/results`` reads trained runs
into tables and verdicts and never produces one. A book chapter's manifest (``paper_repro.book.chapters``)
leaves nothing out: a chapter's output depends on all of them.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from paper_repro.environment import cache_dir
from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import (DamagedCheckpoint, atomic_write, latest_checkpoint, read_verified, save_verified,
                                          verify_checkpoint)
from paper_repro.runs.folders import config_hash, run_lock

PACKAGE = "paper_repro"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "code.json"
# settings (in every key), the context and environment that resolve them, tables and verdicts
NOT_FINGERPRINTED = (f"{PACKAGE}.config", f"{PACKAGE}.context", f"{PACKAGE}.environment", f"{PACKAGE}.results")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_fingerprint(source: str) -> str:
    """The hash of ``source``'s syntax tree without docstrings: comments, docstrings, blank lines and
    formatting do not change it; any change to the code does."""
    tree = _strip_docstrings(ast.parse(source))
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()[:16]


def _module_file(name: str, root: Path, package: str) -> Path | None:
    """The file of module ``name`` (``package.a.b``) under ``root`` (the package's folder), if it is one."""
    parts = name.split(".")
    if parts[0] != package:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def is_module(name: str, root: Path = PACKAGE_ROOT, package: str = PACKAGE) -> bool:
    """Whether ``name`` is a module (or package) of ``package`` (not a function or class inside one)."""
    return _module_file(name, root, package) is not None


def _imports(path: Path, name: str, root: Path, package: str) -> set[str]:
    """The modules of ``package`` that the module ``name`` (file ``path``) imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upwards
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    modules = set()
    for module in found:
        parts = module.split(".")
        # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
        modules.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    return {m for m in modules if _module_file(m, root, package) is not None}


def code_manifest(*modules: str, exclude: tuple[str, ...] = NOT_FINGERPRINTED, root: Path = PACKAGE_ROOT,
                  package: str = PACKAGE) -> dict[str, str]:
    """``{relative path: fingerprint}`` of ``modules`` and every module of ``package`` they import,
    transitively; modules in ``exclude`` (and their submodules) are neither listed nor followed."""
    return dict(_manifest(tuple(sorted(modules)), tuple(exclude), root, package))


def code_fingerprint(*modules: str, exclude: tuple[str, ...] = NOT_FINGERPRINTED) -> str:
    """One short hash of :func:`code_manifest`: for a cache key or a folder name that must change when
    the code behind it does."""
    manifest = json.dumps(code_manifest(*modules, exclude=exclude), sort_keys=True)
    return hashlib.sha256(manifest.encode()).hexdigest()[:10]


def _excluded(name: str, exclude: tuple[str, ...]) -> bool:
    return any(name == e or name.startswith(e + ".") for e in exclude)


@functools.lru_cache(maxsize=None)
def _manifest(modules: tuple[str, ...], exclude: tuple[str, ...], root: Path,
              package: str) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    todo = [".".join(m.split(".")[:k]) for m in modules for k in range(1, m.count(".") + 2)]  # with its packages
    while todo:
        name = todo.pop()
        if name in seen or _excluded(name, exclude):
            continue
        path = _module_file(name, root, package)
        if path is None:
            raise ValueError(f"{name}: not a module of {package} under {root}")
        seen.add(name)
        todo.extend(_imports(path, name, root, package) - seen)
    entries = []
    for name in sorted(seen):
        path = _module_file(name, root, package)
        entries.append((path.relative_to(root).as_posix(), source_fingerprint(path.read_text(encoding="utf-8"))))
    return tuple(entries)


def changed_files(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """The files whose fingerprint differs between two manifests (added and removed ones included)."""
    return sorted(f for f in set(recorded) | set(current) if recorded.get(f) != current.get(f))


def listed(files: list[str], shown: int = 3) -> str:
    """``a, b, c and 2 more``: the first ``shown`` files of a list, for a one-line message."""
    return ", ".join(files[:shown]) + (f" and {len(files) - shown} more" if len(files) > shown else "")


def stale_reason(run_dir: str | Path, manifest: dict[str, str]) -> str | None:
    """Why the run in ``run_dir`` was produced by other code than ``manifest`` says, or None if it was not
    (or the folder holds nothing yet)."""
    run_dir = Path(run_dir)
    contents = [p for p in run_dir.iterdir() if p.name not in (".lock", MANIFEST)] if run_dir.is_dir() else []
    if not contents:
        return None
    path = run_dir / MANIFEST
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        return "it was trained before runs recorded their code"
    except (OSError, ValueError):
        return f"its {MANIFEST} is unreadable"
    changed = changed_files(recorded, manifest)
    return f"{listed(changed)} changed" if changed else None


def _drop_damaged(run_dir: Path, what: str) -> None:
    """Verify the weights a reader of ``run_dir`` would load (its latest checkpoint, and any other weight
    file); a damaged one is announced and removed, so training resumes from the checkpoint before it (or
    starts again) and rebuilds it."""
    while True:
        weights = [p for p in run_dir.glob("*.safetensors") if not p.name.startswith("checkpoint_")]
        latest = latest_checkpoint(run_dir)
        damaged = None
        for path in weights + ([latest] if latest is not None else []):
            try:
                verify_checkpoint(path)
            except DamagedCheckpoint as err:
                damaged = (path, err)
                break
        if damaged is None:
            return
        path, err = damaged
        if not os.access(run_dir, os.W_OK):
            raise UserError(f"{err}; the folder is read-only, so it cannot be rebuilt: make it writable") from None
        print(f"rebuilding {what}: {err}")
        path.unlink()


def ensure_current(run_dir: str | Path, modules: Iterable[str], what: str = "", *, root: Path = PACKAGE_ROOT,
                   package: str = PACKAGE) -> Path:
    """Make ``run_dir`` hold only a run of the current code of ``modules`` (and what they import): a run
    of other code is announced in one line and removed, so the caller trains it again; a damaged weight
    file is announced and removed, so the caller rebuilds it; the manifest is then written. Call it while
    holding the folder's lock."""
    run_dir = Path(run_dir)
    manifest = code_manifest(*modules, root=root, package=package)
    reason = stale_reason(run_dir, manifest)
    if reason is not None and not os.access(run_dir, os.W_OK):
        raise UserError(f"{run_dir}: cannot retrain {what or 'this run'} ({reason}): the folder is read-only; "
                        "make it writable, or point PAPER_REPRO_CACHE at a writable folder")
    if reason is not None:
        print(f"retraining {what or run_dir.name}: {reason}")
        empty_folder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _drop_damaged(run_dir, what or run_dir.name)
    path = run_dir / MANIFEST
    text = json.dumps(manifest, indent=1, sort_keys=True)
    if not path.is_file() or path.read_text() != text:
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return run_dir


def file_digests(folder: str | Path, skip: Iterable[str] = ()) -> dict[str, str]:
    """sha256 (first 16 hex digits) of every file below ``folder`` by relative path, but those named in
    ``skip`` (a marker that holds the digests, a lock, a manifest): what a folder of generated files records
    when it is finished, so that :func:`changed_files_of` can tell later whether it is still whole."""
    folder, skip = Path(folder), set(skip)
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


def changed_files_of(folder: str | Path, recorded: dict[str, str], skip: Iterable[str] = ()) -> list[str]:
    """The files of ``folder`` missing, changed or added since ``recorded`` (:func:`file_digests`)."""
    found = file_digests(folder, skip)
    return sorted(name for name in set(recorded) | set(found) if recorded.get(name) != found.get(name))


def damaged_since_marker(folder: str | Path, marker: str, skip: Iterable[str] = ()) -> list[str]:
    """The files of a finished folder of generated files missing, changed or added since its JSON
    ``marker`` recorded their digests under ``"files"``; ``[marker]`` when the marker itself is unreadable
    or records none. Empty when the folder is whole."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / marker).read_text(encoding="utf-8"))["files"]
        return changed_files_of(folder, recorded, {marker, *skip})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [marker]


def empty_folder(folder: str | Path, keep: Iterable[str] = (".lock",)) -> None:
    """Remove everything in ``folder`` but the entries named in ``keep`` (its lock, by default)."""
    keep = set(keep)
    for entry in Path(folder).iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


TENSORS_FILE = "tensors.safetensors"


def cached_tensors(kind: str, key: Any, compute: Callable[[], dict[str, torch.Tensor]],
                   modules: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """``compute()``'s tensors, computed once per ``key`` by the current code of ``modules``.

    They live in ``cache_dir()/<kind>/<hash of key>/tensors.safetensors``, written atomically with a digest
    of every tensor, in a folder that records the code that computed them (:func:`ensure_current`). Two
    processes asking at once compute once (the second waits on the folder's lock); a change to that code
    computes them again, naming the file ("retraining sdgm: dadnet/sdgm.py changed"); a damaged file
    (unreadable, truncated, a tensor missing, changed or added, or no digest) is named in one line and
    computed again."""
    folder = cache_dir() / kind / config_hash(key)
    with run_lock(folder, wait=True):
        ensure_current(folder, modules, what=kind)
        path = folder / TENSORS_FILE
        if path.is_file():
            try:
                return read_verified(path)
            except DamagedCheckpoint as err:
                if not os.access(folder, os.W_OK):
                    raise UserError(f"{err}; the folder is read-only, so it cannot be rebuilt: make it writable") from None
                print(f"rebuilding {kind}: {err}")
                path.unlink()
        tensors = {name: value.contiguous() for name, value in compute().items()}
        save_verified(path, tensors)
        return tensors


__all__ = ["file_digests", "changed_files_of", "damaged_since_marker", "empty_folder", "TENSORS_FILE", "cached_tensors", "MANIFEST", "NOT_FINGERPRINTED", "source_fingerprint", "is_module", "code_manifest",
           "code_fingerprint", "changed_files", "listed",
           "stale_reason", "ensure_current"]
