"""Results: the papers' numbers as data, this project's numbers beside them, and their reading.

- :mod:`.papers`: every row of every results table of both papers (:func:`paper_table`).
- :mod:`.published`: independent published numbers for DADNet's baselines (anomalib's READMEs).
- :mod:`.tables`: :class:`RunInfo`, :func:`side_by_side`, :func:`save_table`, :func:`show_table`.
- :mod:`.reading`: does this run order the rows as the paper does (Kendall's tau)?
"""
from paper_repro.results.papers import PAPER_TABLES, dadnet_table, paper_table
from paper_repro.results.reading import compare_ordering
from paper_repro.results.tables import (NOT_IN_PAPER, RunInfo, results_view, save_table, show_table, side_by_side,
                                         to_markdown)

__all__ = ["PAPER_TABLES", "paper_table", "dadnet_table", "compare_ordering", "RunInfo", "NOT_IN_PAPER",
           "side_by_side", "to_markdown", "save_table", "results_view", "show_table"]
