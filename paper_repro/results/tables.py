"""This project's numbers beside the paper's: one join, one caption, one writer for every results table.

A results chapter measures its own numbers, then calls :func:`side_by_side` and :func:`save_table`
so the reader always sees "paper" next to "this run", with scale, data set and device named.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

import pandas as pd


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What produced "this run": always printed with a table. ``notes`` adds e.g. the FID extractor."""

    scale: str
    dataset: str
    device: str
    notes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, ctx: Any, dataset: str | None = None, **notes: Any) -> "RunInfo":
        """From a chapter's :class:`paper_repro.book.notebook.Chapter`."""
        return cls(scale=ctx.scale, dataset=dataset or ctx.data_label, device=str(ctx.device),
                   notes=tuple((k, str(v)) for k, v in notes.items()))

    def describe(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.notes)
        return f"this run: scale={self.scale}, data={self.dataset}, device={self.device}{extra}"


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
    """Write ``<results_dir>/<name>.csv`` and ``.md``; a no-op (returns ``[]``) when ``results_dir`` is None.

    The runner (``python -m paper_repro reproduce``) passes a ``results_dir`` to every chapter; a
    chapter opened by hand usually has none and only displays its tables.
    """
    if results_dir is None:
        return []
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = results_dir / f"{name}.csv", results_dir / f"{name}.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(table))
    return [csv_path, md_path]


def show_table(table: pd.DataFrame, name: str, results_dir: str | Path | None = None) -> pd.DataFrame:
    """Print the run description, save the table (when ``results_dir`` is set), and return it for display."""
    if "run_info" in table.attrs:
        print(table.attrs["run_info"])
    save_table(table, name, results_dir)
    return table


__all__ = ["RunInfo", "NOT_IN_PAPER", "side_by_side", "to_markdown", "save_table", "show_table"]
