"""Shared pytest fixtures. Tests run on the CPU with tiny sizes; caches go to a temporary folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Point ``cache_dir()`` at a per-session temporary folder unless the caller chose one."""
    if "PAPER_REPRO_CACHE" not in os.environ:
        os.environ["PAPER_REPRO_CACHE"] = str(tmp_path_factory.mktemp("paper_repro_cache"))
    yield


def make_notebook(path: Path, cells: list[tuple[str, str]], parameters: str | None = None) -> Path:
    """Write a notebook of ``(kind, source)`` cells; ``parameters`` becomes a tagged parameters cell first."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    for kind, source in cells:
        maker = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(maker(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
