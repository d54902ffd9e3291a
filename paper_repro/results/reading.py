"""An honest, automatic reading of a results table: the paper's claim, this run's answer, a verdict.

A results table ends with the claim the paper makes from it (Defect-GAN has the lowest FID; DADNet
has the best average AUROC), this run's answer in numbers, and one of three verdicts:

- **holds**: this run agrees, and by more than seed noise (the difference of means exceeds
  :data:`Z` standard errors of that difference, or an ordering's Kendall tau is significant);
- **does not hold**: the run has converged and the claimed difference is absent, within seed noise or
  reversed;
- **undecided at this budget**: the run has *not* converged (a learning curve still falling), so the
  budget, not the method, would decide. A chapter says so, with the number that shows it.

With tiny budgets and another FID feature space the values cannot match the paper's; differences and
orderings are what may agree. Every verdict names the number that decides it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import pandas as pd
from scipy.stats import kendalltau

from paper_repro.config import cache_dir
from paper_repro.results.tables import results_view, save_table

HOLDS, DOES_NOT_HOLD, UNDECIDED = "holds", "does not hold", "undecided at this budget"
VERDICTS = (HOLDS, DOES_NOT_HOLD, UNDECIDED)
Z = 2.0  # a difference "beyond seed noise" exceeds Z standard errors (about 95 % two-sided)
TAU_ALPHA = 0.05  # an ordering "agrees" when Kendall's tau is positive with one-sided p below this


@dataclass(frozen=True)
class Spread:
    """One number measured over several seeds: the values, their mean and sample standard deviation."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> "Spread":
        values = tuple(float(v) for v in values)
        if not values or any(math.isnan(v) for v in values):
            raise ValueError(f"a spread needs at least one number and no NaN, got {values}")
        return cls(values)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n

    @property
    def sd(self) -> float:
        """Sample standard deviation (n - 1); 0 for one value, which :func:`improvement` refuses."""
        if self.n < 2:
            return 0.0
        return math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (self.n - 1))

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.sd:.2g} ({self.n} seed{'s' if self.n != 1 else ''})"


def spreads(frame: pd.DataFrame, by: str | list[str], value: str) -> dict:
    """{group key: :class:`Spread` of ``value``} of a long table with one row per seed."""
    return {key: Spread.of(group[value]) for key, group in frame.groupby(by, sort=False)}


@dataclass(frozen=True)
class Verdict:
    """The paper's claim, this run's answer, the verdict and the number that decides it."""

    table: str
    claim: str
    answer: str
    verdict: str
    deciding: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}: expected one of {VERDICTS}")

    def __str__(self) -> str:
        return (f"{self.table}: the paper claims {self.claim}.\n  this run: {self.answer}\n"
                f"  verdict: {self.verdict.upper()} ({self.deciding})")

    def row(self) -> dict[str, str]:
        return {"table": self.table, "claim": self.claim, "this run": self.answer, "verdict": self.verdict,
                "deciding number": self.deciding}


def verdict_frame(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """The verdicts as a table, one row each."""
    return pd.DataFrame([v.row() for v in verdicts])


VERDICT_COLOURS = {HOLDS: "#d8f0d8", DOES_NOT_HOLD: "#f8dada", UNDECIDED: "#ececec"}  # light backgrounds


def verdicts_view(frame: pd.DataFrame, caption: str | None = None):
    """Verdicts formatted for reading (:func:`paper_repro.results.tables.results_view`, no index),
    each verdict cell shaded by its kind and long text left-aligned and wrapped."""
    styler = results_view(frame, caption=caption)
    if "verdict" in frame:
        styler = styler.map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, 'transparent')}; font-weight: bold",
                            subset=["verdict"])
    return styler.set_properties(**{"text-align": "left", "white-space": "normal"})


VERDICTS_FOLDER = "verdicts"   # under cache_dir()/<this>/<scale>/: every results table's last verdicts


def record_verdicts(verdicts: Sequence[Verdict], name: str, scale: str, results_dir=None) -> pd.DataFrame:
    """Keep a results table's verdicts for the closing chapter (``cache_dir()/verdicts/<scale>/<name>.csv``),
    write them beside the tables when ``results_dir`` is set, and return them as a table."""
    frame = verdict_frame(verdicts)
    folder = cache_dir() / VERDICTS_FOLDER / scale
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{name}.csv", index=False)
    save_table(frame, name, results_dir)
    return frame


def recorded_verdicts(scale: str, names: Sequence[str]) -> pd.DataFrame:
    """The verdicts the results chapters recorded at ``scale`` (:func:`record_verdicts`), in the order of
    ``names``; a table with none recorded yet is left out."""
    folder = cache_dir() / VERDICTS_FOLDER / scale
    frames = [pd.read_csv(folder / f"{name}.csv") for name in names if (folder / f"{name}.csv").is_file()]
    columns = ["table", "claim", "this run", "verdict", "deciding number"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _not_converged(converged: bool | str) -> str | None:
    """``None`` when converged; else the reason (a string, or a generic one for ``False``)."""
    if converged is True:
        return None
    return converged if isinstance(converged, str) and converged else "the run had not converged"


def plateaued(curves: Mapping[str, Sequence[float]], name: str, fraction: float = 0.1,
              tolerance: float = 0.05, window: str | None = None) -> bool | str:
    """True when every curve (a training loss per epoch, one per run) has flattened, else a sentence
    naming the run whose ``name`` still fell most, for :func:`improvement`'s ``converged``.

    A curve "still falls" when the mean of its last ``fraction`` of values is below the mean of the
    ``fraction`` before by more than ``tolerance`` (relative) *and* by more than :data:`Z` standard
    errors of that difference: a per-epoch loss jitters (10-20 % at demo), and a drop within that
    jitter is no evidence of further progress. With few epochs the test has little power: a curve
    called flat may still fall slowly. ``window`` names what the values span when they are not the
    whole training (e.g. "FID at iterations 1,250-2,500").
    """
    worst, worst_run = 0.0, None
    for run, values in curves.items():
        values = [float(v) for v in values]
        k = max(2, int(len(values) * fraction))
        if len(values) < 2 * k:
            return f"{run} logged {len(values)} values of {name}, too few to see a plateau"
        before, last = Spread.of(values[-2 * k:-k]), Spread.of(values[-k:])
        drop = before.mean - last.mean
        noise = Z * math.sqrt(before.sd ** 2 / k + last.sd ** 2 / k)
        relative = drop / abs(before.mean) if before.mean else 0.0
        if drop > noise and relative > tolerance and relative > worst:
            worst, worst_run = relative, run
    if worst_run is not None:
        span = f"of {window}" if window else "of training"
        return (f"{name} of {worst_run} still fell {100 * worst:.0f} % over the last {100 * fraction:.0f} % "
                f"{span}, beyond its epoch-to-epoch noise")
    return True


def improvement(table: str, claim: str, better: tuple[str, Spread], worse: tuple[str, Spread],
                higher_is_better: bool, converged: bool | str = True, unit: str = "") -> Verdict:
    """Is ``better`` better than ``worse`` by more than :data:`Z` standard errors of the difference?

    ``converged`` is True, or False / a sentence saying why the budget may still decide (then the
    verdict is *undecided at this budget*). Both sides need at least two seeds: one run has no spread.
    """
    (name_a, a), (name_b, b) = better, worse
    if a.n < 2 or b.n < 2:
        raise ValueError(f"{table}: {name_a} has {a.n} and {name_b} {b.n} seeds; a verdict needs a spread (>= 2)")
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (a.mean - b.mean)
    se = math.sqrt(a.sd ** 2 / a.n + b.sd ** 2 / b.n)
    # the direction of the raw difference, worded for the reader ("0.58 pts lower than B", not "-0.58 higher")
    word = "higher" if (a.mean >= b.mean) else "lower"
    answer = f"{name_a} {a}{unit}, {name_b} {b}{unit}"
    deciding = (f"{name_a} is {abs(a.mean - b.mean):.3g}{unit} {word} than {name_b}; "
                f"{Z:g} standard errors of the difference = {Z * se:.3g}{unit}")
    reason = _not_converged(converged)
    if reason:
        return Verdict(table, claim, answer, UNDECIDED, f"{deciding}; but {reason}")
    if gain > Z * se:
        return Verdict(table, claim, answer, HOLDS, deciding)
    how = "reversed" if gain < -Z * se else "within seed noise"
    return Verdict(table, claim, answer, DOES_NOT_HOLD, f"{deciding} ({how})")


def best_of(table: str, claim: str, candidate: str, rows: Mapping[str, Spread], higher_is_better: bool,
            converged: bool | str = True, unit: str = "") -> Verdict:
    """Is ``candidate`` better than every other row of ``rows`` beyond seed noise?

    Decided by the closest call: the row it beats by the fewest standard errors of the difference
    (with unequal spreads, not always the row nearest in mean), which the deciding number names.
    """
    others = {name: s for name, s in rows.items() if name != candidate}
    if candidate not in rows or not others:
        raise ValueError(f"{table}: {candidate!r} and at least one other row are needed, got {list(rows)}")
    pairwise = {name: improvement(table, claim, (candidate, rows[candidate]), (name, s), higher_is_better,
                                  converged, unit) for name, s in others.items()}

    def margin(name: str) -> float:
        a, b = rows[candidate], others[name]
        se = math.sqrt(a.sd ** 2 / a.n + b.sd ** 2 / b.n) or 1e-12
        return (1 if higher_is_better else -1) * (a.mean - b.mean) / se

    rival = pairwise[min(others, key=margin)]
    answer = "; ".join(f"{name} {s}{unit}" for name, s in rows.items())
    return Verdict(table, claim, answer, rival.verdict, f"closest call (fewest standard errors): {rival.deciding}")


def ordering(table: str, claim: str, paper: Mapping[str, float], run: Mapping[str, Spread],
             lower_is_better: bool, converged: bool | str = True) -> Verdict:
    """Does this run order the rows as the paper does? Kendall's tau of the run's means against the
    paper's values; *holds* when tau > 0 with one-sided p < :data:`TAU_ALPHA`."""
    names = [name for name in paper if name in run]
    if len(names) < 3:
        raise ValueError(f"{table}: an ordering needs three rows both sides have, got {names}")
    ours = [run[name].mean for name in names]
    theirs = [paper[name] for name in names]
    result = kendalltau(theirs, ours, alternative="greater")
    tau, p = float(result.statistic), float(result.pvalue)

    def order(values: Sequence[float]) -> str:
        ranked = sorted(zip(values, names), reverse=not lower_is_better)
        return (" < " if lower_is_better else " > ").join(name for _, name in ranked)

    answer = f"this run {order(ours)}; the paper {order(theirs)}"
    deciding = f"Kendall's tau {tau:+.2f} over {len(names)} rows, one-sided p = {p:.3f}"
    reason = _not_converged(converged)
    if reason:
        return Verdict(table, claim, answer, UNDECIDED, f"{deciding}; but {reason}")
    return Verdict(table, claim, answer, HOLDS if tau > 0 and p < TAU_ALPHA else DOES_NOT_HOLD, deciding)


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


__all__ = ["HOLDS", "DOES_NOT_HOLD", "UNDECIDED", "VERDICTS", "Z", "TAU_ALPHA", "Spread", "spreads", "Verdict",
           "verdict_frame", "VERDICT_COLOURS", "verdicts_view", "VERDICTS_FOLDER", "record_verdicts", "recorded_verdicts", "plateaued", "improvement",
           "best_of", "ordering", "compare_ordering"]
