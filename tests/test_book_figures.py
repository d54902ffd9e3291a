"""Every picture in the book is a numbered figure with a caption (myst-nb's cell metadata
``mystnb.figure``), read from the committed notebooks of the chapters in ``_toc.yml``."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
CHAPTERS = [name for name in [TOC["root"], *(c["file"] for part in TOC["parts"] for c in part["chapters"])]
            if (REPO / f"{name}.ipynb").exists()]

DISPLAY = ("display_data", "execute_result")
REFERENCE = re.compile(r"\{numref\}`([^`<]+?)`|\{numref\}`[^`]*<([^>]+)>`")


def cells(name: str) -> list[dict]:
    return json.loads((REPO / f"{name}.ipynb").read_text())["cells"]


def figure_options(cell: dict) -> dict | None:
    return cell["metadata"].get("mystnb", {}).get("figure")


def shows_image(cell: dict) -> bool:
    return any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def figure_problems(name: str) -> list[str]:
    problems = []
    for index, cell in enumerate(cells(name)):
        if cell["cell_type"] != "code":
            continue
        options = figure_options(cell)
        where = f"{name} cell {index} ({''.join(cell['source']).splitlines()[0] if cell['source'] else ''!r})"
        if shows_image(cell) and options is None:
            problems.append(f"{where}: shows an image but has no mystnb.figure")
        if options is None:
            continue
        if not str(options.get("caption", "")).strip():
            problems.append(f"{where}: empty caption")
        if not str(options.get("name", "")).startswith("fig-"):
            problems.append(f"{where}: name {options.get('name')!r} does not start with 'fig-'")
        # myst-nb wraps *every* display output of the cell in the figure: one figure, one output
        displays = [out for out in cell.get("outputs", []) if out["output_type"] in DISPLAY]
        if len(displays) != 1 or "image/png" not in displays[0].get("data", {}):
            kinds = [sorted(out.get("data", {})) for out in displays]
            problems.append(f"{where}: a figure cell needs exactly one display output, an image; has {kinds}")
        # a caption holds at every scale: it says what to look for, never this run's numbers
        if re.search(r"\b(smoke|demo)\b", str(options.get("caption", ""))):
            problems.append(f"{where}: caption names a scale")
    return problems


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_image_cell_is_a_captioned_figure_with_one_output(name):
    assert not figure_problems(name), "\n".join(figure_problems(name))


def test_figure_names_are_unique_and_references_resolve():
    names = [figure_options(c)["name"] for n in CHAPTERS for c in cells(n) if figure_options(c)]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    for name in CHAPTERS:
        for cell in cells(name):
            if cell["cell_type"] == "markdown":
                for match in REFERENCE.finditer("".join(cell["source"])):
                    target = match.group(1) or match.group(2)
                    assert target in names, f"{name}: {{numref}} to unknown figure {target!r}"

