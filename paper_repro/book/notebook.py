"""Small helpers every chapter uses: resolve its parameters, show package source, show pictures.

A chapter's first code cell is the papermill ``parameters`` cell::

    scale = None        # None: $PAPER_REPRO_SCALE, else "smoke"
    device = "cpu"
    data_root = None    # None: the bundled synthetic data set
    seed = 42
    results_dir = None  # where tables go; `python -m paper_repro reproduce` sets it

and its second is ``ctx = chapter_setup(scale=scale, device=device, data_root=data_root, seed=seed,
results_dir=results_dir)``.
"""
from __future__ import annotations

import html
import inspect
import re
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import torch
from IPython import get_ipython
from IPython.display import Code, Image, display
from markdown_it import MarkdownIt

from paper_repro.context import RunContext
from paper_repro.environment import cache_dir
from paper_repro.runs.checkpoints import atomic_write
from paper_repro.runs.devices import seed_everything

LANDING_FOLDER = "landing"   # under cache_dir()/<this>/<scale>/: the figures the landing page shows


def chapter_setup(scale: str | None = None, device: str = "cpu", data_root: str | None = None,
                  seed: int = 42, results_dir: str | None = None, sd_model: str | None = None,
                  precision: str | None = None, dry_run: bool | None = None) -> RunContext:
    """Resolve a chapter's parameters into its :class:`~paper_repro.context.RunContext`, seed every
    generator, set the plotting style, print a banner.

    What the parameters leave ``None`` (the scale, SDGM's checkpoint, the precision, a dry run) comes from
    the kernel's environment, which the book build and ``reproduce`` set (:mod:`paper_repro.context`).
    """
    ctx = RunContext.create(scale=scale, device=device, data_root=data_root, seed=seed, results_dir=results_dir,
                            sd_model=sd_model, precision=precision, dry_run=dry_run)
    seed_everything(ctx.seed)
    _plot_style()
    _warnings_as_admonitions()
    print(ctx.banner())
    return ctx


def warning_admonition(message: str, category: str = "Warning") -> dict[str, str]:
    """A warning as the page shows it: a wrapped admonition box (HTML), and one line as plain text."""
    body = html.escape(" ".join(str(message).split()))
    return {"text/html": f'<div class="admonition warning"><p class="admonition-title">{html.escape(category)}</p>'
                         f"<p>{body}</p></div>",
            "text/plain": f"{category}: {' '.join(str(message).split())}"}


def _warnings_as_admonitions() -> None:
    """In a chapter's kernel, show each Python warning as an admonition instead of a raw stderr line that
    runs off the right edge of the page (outside IPython, warnings are left as they are)."""
    if get_ipython() is None:
        return

    def show(message, category, filename, lineno, file=None, line=None):
        display(warning_admonition(str(message), category.__name__), raw=True)

    warnings.showwarning = show


def _plot_style() -> None:
    matplotlib.rcParams.update({
        "figure.dpi": 96, "savefig.dpi": 96, "axes.titlesize": 9, "font.size": 8,
        "image.interpolation": "nearest",
    })


#: Listings longer than this many lines start collapsed behind a one-line summary.
OPEN_LISTING_LINES = 25


class Listing(Code):
    """Highlighted package source: open when short, folded in ``<details>`` when long.

    Its plain-text form is the source itself, so nbval compares the code, never the markup.
    """

    def __init__(self, source: str, name: str, path: str, collapsed: bool | None = None):
        super().__init__(source, language="python")
        self.name, self.path = name, path
        self.n_lines = len(source.splitlines())
        self.collapsed = self.n_lines > OPEN_LISTING_LINES if collapsed is None else bool(collapsed)

    @property
    def summary(self) -> str:
        return f"{self.name} · {self.n_lines} lines · {self.path}"

    def _repr_html_(self) -> str:
        code = super()._repr_html_()
        if not self.collapsed:
            return code
        return f"<details><summary>{html.escape(self.summary)}</summary>{code}</details>"


def show_source(obj: Any, collapsed: bool | None = None) -> Listing:
    """Display the package's own source of ``obj`` (a function, class or module), highlighted.

    Chapters show code this way instead of copying it, so the book and the package never drift.
    A listing longer than :data:`OPEN_LISTING_LINES` lines starts collapsed behind a summary line
    (qualified name, length, file); ``collapsed=True`` or ``False`` forces it shut or open.
    """
    name = obj.__name__ if inspect.ismodule(obj) else f"{obj.__module__}.{obj.__qualname__}"
    return Listing(inspect.getsource(obj), name, _package_path(obj), collapsed)


def _package_path(obj: Any) -> str:
    """The file defining ``obj``, relative to the folder holding the package (never a machine path)."""
    obj = inspect.unwrap(obj)  # a decorated function's file, not the decorator's (as getsource does)
    file = Path(inspect.getsourcefile(obj) or inspect.getfile(obj)).resolve()
    top = Path(__file__).resolve().parents[2]  # the folder that holds paper_repro/
    try:
        return file.relative_to(top).as_posix()
    except ValueError:
        return file.name


class Folded:
    """Something displayed folded behind a one-line summary (``<details>``): long reference material (a
    model card, every hyper-parameter of every scale) that a reader opens when wanted, not before the
    results. Its plain-text form is the content's, so nbval compares the content, never the markup."""

    def __init__(self, content: Any, summary: str, open_: bool = False):
        self.content, self.summary, self.open = content, summary, open_

    def _repr_html_(self) -> str:
        inner = self.content._repr_html_() if hasattr(self.content, "_repr_html_") else \
            f"<pre>{html.escape(str(self.content))}</pre>"
        return (f"<details{' open' if self.open else ''}><summary>{html.escape(self.summary)}</summary>"
                f"{inner}</details>")

    def __repr__(self) -> str:
        return self.content.to_string() if hasattr(self.content, "to_string") else str(self.content)


def folded(content: Any, summary: str) -> Folded:
    """``content`` (anything with an HTML form, or text) folded behind ``summary``."""
    return Folded(content, summary)


class MarkdownText:
    """A Markdown document (a model card) as HTML inside the page: its headings set three levels down, so
    a document's ``#`` title is a small heading of the chapter, not a page title; tables rendered."""

    def __init__(self, text: str, shift: int = 3):
        self.text, self.shift = text, shift

    def _repr_html_(self) -> str:
        body = MarkdownIt("commonmark").enable("table").render(self.text)
        body = re.sub(r"<(/?)h([1-6])>", lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + self.shift)}>", body)
        return f'<div class="markdown-document">{body}</div>'

    def __repr__(self) -> str:
        return self.text


def show_markdown_file(path: str | Path, summary: str | None = None) -> Folded:
    """A Markdown file (a model card) rendered into the page and folded behind ``summary``."""
    path = Path(path)
    return Folded(MarkdownText(path.read_text(encoding="utf-8")), summary or f"{path.name} (click to open)")


def to_numpy_image(image: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)):
    """(3, H, W) or (1, H, W) tensor in ``value_range`` -> (H, W, 3) or (H, W) float array in [0, 1]."""
    low, high = value_range
    array = ((image.detach().float().cpu() - low) / (high - low)).clamp(0, 1)
    array = array.permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def image_grid(rows: list[list[torch.Tensor]], row_titles: list[str] | None = None,
               col_titles: list[str] | None = None, value_range: tuple[float, float] = (0.0, 1.0),
               size: float = 1.6, cmap: str = "gray"):
    """A matplotlib figure of images laid out as ``rows``; returns the figure."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            if j < len(row) and row[j] is not None:
                ax.imshow(to_numpy_image(row[j], value_range), cmap=cmap, vmin=0, vmax=1)
            else:
                ax.axis("off")
            if i == 0 and col_titles and j < len(col_titles):
                ax.set_title(col_titles[j])
            if j == 0 and row_titles and i < len(row_titles):
                ax.set_ylabel(row_titles[i])
    fig.tight_layout()
    return fig


def keep_for_landing_page(fig, name: str, scale: str) -> None:
    """Keep ``fig`` (a matplotlib figure) as ``cache_dir()/landing/<scale>/<name>.png`` for the landing page's
    results snapshot (:func:`landing_figure`); the chapter still shows the figure itself."""
    folder = cache_dir() / LANDING_FOLDER / scale
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{name}.png", lambda tmp: fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight"))


def landing_figure(name: str, scale: str):
    """The figure a chapter kept under ``name`` at ``scale`` (:func:`keep_for_landing_page`), to display, or
    ``None`` (with one line saying which chapter draws it) before that chapter has run at this scale."""
    path = cache_dir() / LANDING_FOLDER / scale / f"{name}.png"
    if not path.is_file():
        print(f"{name}: not drawn yet at {scale} scale (its chapter has not run)")
        return None
    return Image(filename=str(path))
