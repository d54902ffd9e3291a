"""The book's chapters as files: which notebooks ``_toc.yml`` lists, in reading order, what each is
called, what it reads from other chapters, and what decides its outputs (its own code cells and the
package code they import). Both ways of running chapters - ``python -m paper_repro book`` and
``python -m paper_repro reproduce`` - read the chapters through this module (:mod:`.runner`).
"""
from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from paper_repro.errors import UserError
from paper_repro.runs.cached import code_manifest, is_module

TOC_FILE = "_toc.yml"
BUILD_DIR = "_build"  # the book's build output (pages, execution caches, measured chapter times)


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



def read_notebook(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def notebook_digest(notebook) -> str:
    """A hash of a notebook's code cells (their sources, in order): what a chapter runs of its own."""
    code = "\n\x00".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def needs_of(notebook) -> list[str]:
    """The chapters this one runs after (its metadata ``paper_repro.after``)."""
    return list(notebook.metadata.get("paper_repro", {}).get("after", []))


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

