"""An honest, automatic reading of a results table: does this run order the rows as the paper does?

With tiny budgets and another FID feature space the values cannot match the paper's; the ordering
is what may agree. :func:`compare_ordering` states both orderings and Kendall's rank correlation.
"""
from __future__ import annotations

import pandas as pd
from scipy.stats import kendalltau


def compare_ordering(table: pd.DataFrame, label: str | list[str], lower_is_better: bool) -> str:
    """Lines naming the paper's and this run's orderings of the rows both have, and Kendall's tau."""
    labels = [label] if isinstance(label, str) else list(label)
    both = table.dropna(subset=["paper", "this run"]).copy()
    if len(both) < 2:
        return "fewer than two rows have both a paper value and a value of this run: nothing to compare"
    both["row"] = both[labels].astype(str).agg(" / ".join, axis=1)
    sign = "<" if lower_is_better else ">"

    def order(column: str) -> str:
        ranked = both.sort_values(column, ascending=lower_is_better)
        return f" {sign} ".join(ranked["row"])

    tau = kendalltau(both["paper"], both["this run"]).statistic
    best_paper = both.sort_values("paper", ascending=lower_is_better)["row"].iloc[0]
    best_run = both.sort_values("this run", ascending=lower_is_better)["row"].iloc[0]
    verdict = "the same" if best_paper == best_run else "a different"
    return "\n".join([
        f"paper:    {order('paper')}",
        f"this run: {order('this run')}",
        f"Kendall's tau between the two orderings: {tau:+.2f} (+1 same order, -1 reversed, "
        f"{len(both)} rows); best row: {verdict} one ({best_run!r} here, {best_paper!r} in the paper)",
    ])


__all__ = ["compare_ordering"]
