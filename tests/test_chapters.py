"""The chapters as files: package code listings are checked by nbval, and test markers are cell tags
(which the rendered book does not show), never comments in the code a reader sees."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(BOOK.rglob("*.ipynb"))


def code_cells(path: Path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: str(p.relative_to(BOOK)))
def test_every_listing_is_checked_and_markers_are_tags(chapter):
    for cell in code_cells(chapter):
        source = "".join(cell["source"])
        assert "NBVAL_" not in source, "use the nbval-* cell tags, not comments"
        if "show_source(" in source:
            # nbval re-runs the cell and compares the listing with the committed one: a stale listing fails CI
            assert "nbval-check-output" in cell["metadata"].get("tags", []), source


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: str(p.relative_to(BOOK)))
def test_no_execution_timestamps_in_cell_metadata(chapter):
    """jupyter-cache keys a chapter by its cells' metadata too: timestamps would make every
    re-execution look like a code change to the book's build (fix: tests/strip_execution_metadata.py)."""
    stamped = [i for i, cell in enumerate(code_cells(chapter)) if "execution" in cell["metadata"]]
    assert not stamped, f"code cells {stamped} carry nbconvert's execution timestamps"
