"""Sphinx extension: typeset the book's math with a MathJax that ships inside a Python package.

Sphinx loads MathJax from a CDN by default, so a book opened offline shows raw TeX. This extension
points ``mathjax_path`` at MathJax 2.7 from the ``jupyter-server-mathjax`` wheel, copied into the
build's ``_static/mathjax/`` folder when the build finishes. The copy lives in the *output* only:
nothing is placed in a source ``_static/`` folder, where Jupyter Book would turn every one of
MathJax's hundreds of ``.js`` files into a ``<script>`` tag.

Enable it in ``_config.yml`` with ``sphinx: extra_extensions: [paper_repro.sphinx_offline_mathjax]``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"  # the one combined config the wheel ships
# Relative to _static/ (Sphinx prefixes it); "MathJax.js?config=" tells Sphinx this is MathJax 2.
MATHJAX_PATH = f"mathjax/MathJax.js?config={MATHJAX_CONFIG}"


def mathjax_source() -> Path:
    """The folder holding ``MathJax.js`` inside the installed ``jupyter_server_mathjax`` package."""
    try:
        import jupyter_server_mathjax
    except ImportError as err:  # the `book` extra is not installed
        raise RuntimeError("offline MathJax needs the 'jupyter-server-mathjax' package "
                           "(pip install 'paper-repro[book]')") from err
    folder = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (folder / "MathJax.js").is_file():
        raise RuntimeError(f"{folder}: MathJax.js is missing from jupyter-server-mathjax")
    return folder


def _configure(app) -> None:
    mathjax_source()  # fail early, before any page is written
    app.config.mathjax_path = MATHJAX_PATH
    # MathJax 2 reads `MathJax.Hub.Config`; the MathJax 3 configuration must not be emitted.
    app.config.mathjax3_config = None
    app.config.mathjax2_config = {
        "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                    "processEscapes": True, "processEnvironments": True},
        # The wheel ships only the STIX-Web web fonts; MathJax's default (TeX fonts) would fall back
        # to whatever the reader's system has and misplace sub- and superscripts.
        "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web",
                     "imageFont": None},
        "showMathMenu": False,
        "messageStyle": "none",
    }


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    source = mathjax_source()
    if (target / "MathJax.js").is_file() and \
            (target / "MathJax.js").stat().st_size == (source / "MathJax.js").stat().st_size:
        return  # already copied by an earlier build
    shutil.copytree(source, target, dirs_exist_ok=True)


def setup(app):
    # builder-inited runs after myst-parser/myst-nb have adjusted the MathJax settings (priority 900 = late).
    app.connect("builder-inited", _configure, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
