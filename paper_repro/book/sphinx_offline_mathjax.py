"""Sphinx extension: typeset the book's math with a MathJax that ships inside a Python package.

Sphinx loads MathJax from a CDN by default, so a book opened offline shows raw TeX. This extension
points ``mathjax_path`` at MathJax 3.2.2 from the ``sphinx-mathjax-offline`` wheel (its
``static/mathjax`` folder: the combined ``tex-chtml.js`` component, the TeX extensions it loads on
demand, and the woff fonts of its CommonHTML output), copied into the build's ``_static/mathjax/``
when the build finishes. The copy lives in the *output* only: nothing is placed in a source
``_static/`` folder, where Jupyter Book would turn every one of MathJax's files into a ``<script>`` tag.

MathJax 3 rather than the 2.7 of ``jupyter-server-mathjax``: MathJax 2's HTML-CSS output probes the
reader's fonts (an ``about:blank`` font request) and asks for TeX ``.otf`` fonts the wheel lacks, so
every page with math logged failed requests offline; MathJax 3's CommonHTML output reads only its own
woff files.

Enable it in ``_config.yml`` with ``sphinx: extra_extensions: [paper_repro.book.sphinx_offline_mathjax]``.
"""
from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "sphinx-mathjax-offline"
COMPONENT = "tex-chtml.js"  # TeX input, CommonHTML output
MATHJAX_PATH = f"mathjax/{COMPONENT}"  # relative to _static/ (Sphinx prefixes it)


def mathjax_source() -> Path:
    """The folder holding MathJax 3's ``tex-chtml.js`` inside the installed ``sphinx-mathjax-offline``."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as err:  # the `book` extra is not installed
        raise RuntimeError(f"offline MathJax needs the '{DISTRIBUTION}' package "
                           "(pip install 'paper-repro[book]')") from err
    folder = Path(dist.locate_file("sphinx-mathjax-offline/static/mathjax"))
    if not (folder / COMPONENT).is_file():
        raise RuntimeError(f"{folder}: {COMPONENT} is missing from {DISTRIBUTION} {dist.version}")
    return folder


def _configure(app) -> None:
    mathjax_source()  # fail early, before any page is written
    app.config.mathjax_path = MATHJAX_PATH
    app.config.mathjax2_config = None
    # MathJax 3's defaults read \( \) and \[ \] (what MyST writes) and the AMS environments; the
    # context menu is off (it offers, among others, to load the speech engine from a CDN).
    app.config.mathjax3_config = {"options": {"enableMenu": False}}


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    source = mathjax_source()
    if (target / COMPONENT).is_file() and \
            (target / COMPONENT).stat().st_size == (source / COMPONENT).stat().st_size:
        return  # already copied by an earlier build
    shutil.copytree(source, target, dirs_exist_ok=True)


def setup(app):
    # builder-inited runs after myst-parser/myst-nb have adjusted the MathJax settings (priority 900 = late).
    app.connect("builder-inited", _configure, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
