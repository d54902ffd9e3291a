"""This project's numbers beside the paper's: one join, one caption, one writer for every results table.

A results chapter measures its own numbers, then calls :func:`side_by_side` and :func:`save_table`
so the reader always sees "paper" next to "this run", with scale, data set, device and precision named;
every written table also records its provenance (git commit, the package versions that matter).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd


# The packages whose version can change a number in a table.
PROVENANCE_PACKAGES = ("paper-repro", "torch", "torchvision", "diffusers", "transformers", "anomalib", "timm",
                       "torchmetrics", "numpy")


@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, str]:
    """The git commit of this checkout (``+dirty`` with uncommitted changes) and the versions of
    :data:`PROVENANCE_PACKAGES`, as strings."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = "unknown (not a git checkout)"
    versions = {}
    for package in PROVENANCE_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"git_commit": commit, "python": platform.python_version(), **versions}


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What produced "this run": always printed with a table. ``notes`` adds e.g. the FID extractor."""

    scale: str
    dataset: str
    device: str
    notes: tuple[tuple[str, str], ...] = ()
    precision: str = "fp32"

    @classmethod
    def of(cls, ctx: Any, dataset: str | None = None, **notes: Any) -> "RunInfo":
        """From a :class:`paper_repro.context.RunContext`; the precision is the one its training runs
        resolved on its device (the context's, else ``auto``)."""
        scale = f"{ctx.scale} (dry run: counts capped)" if ctx.scale == "full" and ctx.dry_run else ctx.scale
        return cls(scale=scale, dataset=dataset or ctx.data_label, device=str(ctx.device),
                   notes=tuple((k, str(v)) for k, v in notes.items()), precision=ctx.precision_label)

    def describe(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.notes)
        return (f"this run: scale={self.scale}, data={self.dataset}, device={self.device}, "
                f"precision={self.precision}{extra}")

    def record(self) -> dict[str, Any]:
        """Everything that produced the numbers, for the files a table is written to."""
        return {"scale": self.scale, "data": self.dataset, "device": self.device, "precision": self.precision,
                **dict(self.notes), "provenance": provenance()}


# The ``source`` of a row this run has and the paper does not (a bundled category, say).
NOT_IN_PAPER = "this run only (not in the paper)"


def side_by_side(paper: pd.DataFrame, run: pd.DataFrame, on: Iterable[str], value: str,
                 run_info: RunInfo) -> pd.DataFrame:
    """Join the paper's ``value`` and this run's ``value`` on the key columns ``on``.

    Rows either side lacks stay, with an empty cell; the result has columns ``*on, paper, this run``
    and a ``source`` column naming the paper table (:data:`NOT_IN_PAPER` for a row only this run has).
    ``run_info`` goes into ``attrs`` and the caption.
    """
    on = list(on)
    left = paper[on + [value, "source"]].rename(columns={value: "paper"})
    right = run[on + [value]].rename(columns={value: "this run"})
    table = left.merge(right, on=on, how="left")  # the paper's rows, in the paper's order
    only_run = right.merge(left[on], on=on, how="left", indicator=True)
    only_run = only_run[only_run["_merge"] == "left_only"].drop(columns="_merge")
    only_run["source"] = NOT_IN_PAPER
    table = pd.concat([table, only_run], ignore_index=True)[on + ["paper", "this run", "source"]]
    table.attrs["run_info"] = run_info.describe()
    table.attrs["record"] = run_info.record()
    return table


def to_markdown(table: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A Markdown table, with the run description (if any) as a caption line above it.

    Four significant digits, not two decimals: an FID of 2010 and a pixel change of 0.0184 both keep
    what they say (".2f" printed the latter as 0.02, and a noise diversity of 0.00087 as 0.00).
    """
    caption = table.attrs.get("run_info")
    cells = table.astype(object).where(table.notna(), None)  # an empty cell, not "nan", where a side has no number
    body = cells.to_markdown(index=False, floatfmt=floatfmt, missingval="")
    return f"*{caption}*\n\n{body}\n" if caption else f"{body}\n"


def save_table(table: pd.DataFrame, name: str, results_dir: str | Path | None) -> list[Path]:
    """Write ``<results_dir>/<name>.csv``, ``.md`` and ``.json`` (what produced it: scale, data, device,
    precision, notes, git commit and package versions); a no-op (returns ``[]``) when ``results_dir`` is None.

    The runner (``python -m paper_repro reproduce``) passes a ``results_dir`` to every chapter; a
    chapter opened by hand usually has none and only displays its tables.
    """
    if results_dir is None:
        return []
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, json_path = (results_dir / f"{name}.{ext}" for ext in ("csv", "md", "json"))
    table.to_csv(csv_path, index=False)
    record = {"table": name, "caption": table.attrs.get("run_info"), **table.attrs.get("record", {}),
              "provenance": provenance()}
    footer = ", ".join(f"{k} {v}" for k, v in record["provenance"].items())
    md_path.write_text(to_markdown(table) + f"\n<sub>{footer}</sub>\n")
    json_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return [csv_path, md_path, json_path]


MISSING = "—"  # a cell one side has no number for


def results_view(table: pd.DataFrame, precision: int = 1, caption: str | None = None, index: bool = False):
    """The one way a results table is shown: a pandas ``Styler`` without the index, numbers at the
    paper's ``precision`` (decimals), :data:`MISSING` for an empty cell, and a caption naming what
    produced "this run" (``table.attrs["run_info"]``) and, when every row has the same one, the paper
    table the numbers come from (its ``source`` column is then not repeated on every row).
    ``index=True`` keeps the index: the row labels of a pivoted or transposed table."""
    shown = table.copy()
    parts = [caption] if caption else []
    if "source" in shown and shown["source"].nunique(dropna=False) == 1:
        parts.append(f"paper: {shown['source'].iloc[0]}")
        shown = shown.drop(columns="source")
    if table.attrs.get("run_info") and not any(table.attrs["run_info"] in part for part in parts):
        parts.append(table.attrs["run_info"])   # once: a caller's caption may already name the run
    numeric = shown.select_dtypes("number").columns
    styler = shown.style if index else shown.style.hide(axis="index")
    styler = styler.format(precision=precision, na_rep=MISSING, subset=list(numeric))
    styler = styler.format(na_rep=MISSING, subset=[c for c in shown.columns if c not in numeric])
    styler = styler.set_table_styles(TABLE_STYLES, overwrite=False)
    return styler.set_caption(". ".join(parts)) if parts else styler


#: Every results table on a page: cells apart (no "96.789.8"), headers that wrap, and a table wider than
#: the text column scrolls inside it instead of being cut off at the right.
TABLE_STYLES = [  # each selector is prefixed with the table's id by pandas: one selector an entry
    {"selector": "", "props": "display: block; max-width: 100%; overflow-x: auto; border-collapse: collapse"},
    {"selector": "th", "props": "padding: 0.2em 0.65em"},
    {"selector": "td", "props": "padding: 0.2em 0.65em"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 0.9em; padding-bottom: 0.3em"},
]


def number_text(value: Any, digits: int = 4) -> str:
    """A number as a reader reads it in a mixed table (a hyper-parameter, a count): an integer-valued float
    as an integer (``3000``, never ``3000.0``), any other float to ``digits`` significant digits without
    an exponent (``0.0001``, never ``1e-04`` or ``0.000100``) down to 1e-4 and in short exponent form below
    it (``1e-6``, never ``0.000001``), a tuple item by item; anything else as is."""

    if isinstance(value, (bool, np.bool_)) or value is None:
        return str(value)
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(number_text(v, digits) for v in value) + ")"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if value != value:
            return MISSING
        if float(value).is_integer() and abs(value) < 1e15:
            return str(int(value))
        if abs(value) < 1e-4:   # a small rate: 1e-6, not 0.000001 or 1e-06
            mantissa, exponent = f"{float(value):.{digits - 1}e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return np.format_float_positional(float(value), precision=digits, unique=False, fractional=False,
                                          trim="-")
    return str(value)


def mixed_view(table: pd.DataFrame, caption: str | None = None, index: bool = True):
    """A table of mixed cells (hyper-parameters per scale): every cell by :func:`number_text`, the index
    kept (the row names), the results tables' spacing, ``caption`` above."""
    styler = table.style.format(number_text).set_table_styles(TABLE_STYLES, overwrite=False)
    styler = styler if index else styler.hide(axis="index")
    return styler.set_caption(caption) if caption else styler


def show_table(table: pd.DataFrame, name: str, results_dir: str | Path | None = None, precision: int = 1):
    """Save the table (when ``results_dir`` is set) and return it formatted for display
    (:func:`results_view`: no index, ``precision`` decimals, "—" for missing, the run in the caption)."""
    save_table(table, name, results_dir)
    return results_view(table, precision)


__all__ = ["PROVENANCE_PACKAGES", "provenance", "RunInfo", "NOT_IN_PAPER", "side_by_side", "to_markdown",
           "save_table", "MISSING", "TABLE_STYLES", "number_text", "mixed_view", "results_view", "show_table"]
