"""An honest, automatic reading of a results table: the paper's claim, this run's answer, a verdict.

A results table ends with the claim the paper makes from it (Defect-GAN has the lowest FID; DADNet
has the best average AUROC), this run's answer in numbers, and one of these verdicts, each with the
number that decides it (:mod:`paper_repro.results.statistics` computes them):

- **holds**: the 95 % Welch t interval of the difference excludes 0 on the claimed side (an ordering:
  Kendall's tau is positive with an exact permutation p below 0.05);
- **contradicted**: the interval excludes 0 on the other side, or excludes the paper's own effect
  where that effect is in this run's units (an ordering: tau significantly negative);
- **not shown at this power**: the interval contains 0; the verdict gives the interval and how many
  seeds a side would detect the paper's effect with 80 % power. The run neither shows nor refutes it;
- **undecided at this budget**: a model has not converged (its curve still improves), so the budget,
  not the method, would decide. The verdict names the curve;
- **not testable**: an ordering of so few rows that even a perfect agreement cannot reach p < 0.05.

With tiny budgets and another FID feature space the values cannot match the paper's; differences and
orderings are what may agree. A verdict whose deciding bound lies within :data:`NEAR_LINE` standard
errors of its line says so: a rebuild on another machine could decide it the other way.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from scipy.stats import kendalltau

from paper_repro.environment import cache_dir
from paper_repro.runs.checkpoints import atomic_write
from paper_repro.results.statistics import ALPHA, POWER, holm, kendall_exact, seeds_for_power, trend, welch
from paper_repro.results.tables import MISSING, number_text, results_view, save_table

HOLDS, CONTRADICTED, NOT_SHOWN = "holds", "contradicted", "not shown at this power"
UNDECIDED, NOT_TESTABLE = "undecided at this budget", "not testable"
VERDICTS = (HOLDS, CONTRADICTED, NOT_SHOWN, UNDECIDED, NOT_TESTABLE)
NEAR_LINE = 0.05  # a deciding bound this close to its line (in standard errors) is "near the line"
TAU_ALPHA = ALPHA  # an ordering "agrees" when Kendall's tau is positive with exact one-sided p below this


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
        return f"{significant(self.mean, 4)} ± {significant(self.sd, 2)} ({self.n} seed{'s' if self.n != 1 else ''})"


def significant(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits as :func:`~paper_repro.results.tables.number_text` writes
    them (no exponent, no trailing zeros), with thousands separated: 250, 287.2, 0.0012, 12,350, 2."""
    text = number_text(float(value), digits)
    if "e" in text:  # below 1e-4: number_text's short exponent form
        return text
    whole, dot, fraction = text.partition(".")
    return f"{'-' if whole.startswith('-') else ''}{int(whole.lstrip('-')):,}{dot}{fraction}"


def spreads(frame: pd.DataFrame, by: str | list[str], value: str) -> dict:
    """{group key: :class:`Spread` of ``value``} of a long table with one row per seed."""
    return {key: Spread.of(group[value]) for key, group in frame.groupby(by, sort=False)}


@dataclass(frozen=True)
class Verdict:
    """The paper's claim, this run's answer, the verdict, the number that decides it and, where a test
    decides it, the p-value compared with :data:`ALPHA` (for Holm's correction over all claims)."""

    table: str
    claim: str
    answer: str
    verdict: str
    deciding: str
    p: float | None = None
    near_line: bool = False

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}: expected one of {VERDICTS}")

    def __str__(self) -> str:
        return (f"{self.table}: the paper claims {self.claim}.\n  this run: {self.answer}\n"
                f"  verdict: {self.verdict.upper()} ({self.deciding})")

    def row(self) -> dict:
        return {"table": self.table, "claim": self.claim, "this run": self.answer, "verdict": self.verdict,
                "deciding number": self.deciding, "p": self.p, "near the line": self.near_line}


def verdict_frame(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """The verdicts as a table, one row each."""
    columns = ["table", "claim", "this run", "verdict", "deciding number", "p", "near the line"]
    return pd.DataFrame([v.row() for v in verdicts], columns=columns)


VERDICT_COLOURS = {HOLDS: "#d8f0d8", CONTRADICTED: "#f8dada", NOT_SHOWN: "#f4ecd0", UNDECIDED: "#ececec",
                   NOT_TESTABLE: "#e4e8f4"}  # light backgrounds


def p_text(p: float) -> str:
    """A p-value as a table shows it: three decimals, "< 0.001" below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def verdicts_view(frame: pd.DataFrame, caption: str | None = None):
    """Verdicts formatted for reading (:func:`paper_repro.results.tables.results_view`, no index),
    each verdict cell shaded by its kind and long text left-aligned and wrapped."""
    styler = results_view(frame, caption=caption)
    p_values = [c for c in ("p", "Holm p") if c in frame]
    if p_values:  # not at the table's one decimal: a p of 0.042 is not "0.0"
        styler = styler.format(p_text, subset=p_values, na_rep=MISSING)
    if "verdict" in frame:
        styler = styler.map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, 'transparent')}; font-weight: bold",
                            subset=["verdict"])
    styler = styler.set_properties(**{"text-align": "left", "white-space": "normal", "min-width": "5em"})
    prose = [c for c in ("claim", "this run", "deciding number") if c in frame]
    # long sentences get room to read (the table scrolls inside the column rather than squeezing them)
    return styler.set_properties(subset=prose, **{"min-width": "18em"}) if prose else styler


VERDICTS_FOLDER = "verdicts"   # under cache_dir()/<this>/<scale>/: every results table's last verdicts


def record_verdicts(verdicts: Sequence[Verdict], name: str, scale: str, results_dir=None) -> pd.DataFrame:
    """Keep a results table's verdicts for the closing chapter (``cache_dir()/verdicts/<scale>/<name>.csv``),
    write them beside the tables when ``results_dir`` is set, and return them as a table."""
    frame = verdict_frame(verdicts)
    folder = cache_dir() / VERDICTS_FOLDER / scale
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{name}.csv", lambda tmp: frame.to_csv(tmp, index=False))
    save_table(frame, name, results_dir)
    return frame


def recorded_verdicts(scale: str, names: Sequence[str]) -> pd.DataFrame:
    """The verdicts the results chapters recorded at ``scale`` (:func:`record_verdicts`), in the order of
    ``names``, with a ``paper`` column from each name's prefix; a table with none recorded is left out, and
    so is a damaged file (not a verdict table: one line names it and the chapter that writes it again)."""
    folder = cache_dir() / VERDICTS_FOLDER / scale
    papers = {"defect_gan": "Defect-GAN", "dadnet": "DADNet"}
    columns = ["paper", "table", "claim", "this run", "verdict", "deciding number", "p", "near the line"]
    frames = []
    for name in names:
        path = folder / f"{name}.csv"
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path)
            if not set(columns[1:]) <= set(frame.columns) or not frame["verdict"].isin(VERDICTS).all():
                raise ValueError("not a table of verdicts")
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
            print(f"{path}: damaged ({' '.join(str(err).split())[:100]}); left out until its chapter runs again")
            continue
        paper = next((title for prefix, title in papers.items() if name.startswith(prefix)), "")
        frames.append(frame.assign(paper=paper))
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _not_converged(converged: bool | str) -> str | None:
    """``None`` when converged; else the reason (a string, or a generic one for ``False``)."""
    if converged is True:
        return None
    return converged if isinstance(converged, str) and converged else "the run had not converged"


def plateaued(curves: Mapping[str, Sequence[float]], name: str, fraction: float = 0.25,
              tolerance: float = 0.05, window: str | None = None, lower_is_better: bool = True,
              points: int = 4) -> bool | str:
    """True when no curve (one per run: a loss per epoch, a metric per milestone) still improves, else a
    sentence naming the run that improved most, for :func:`improvement`'s ``converged``.

    A curve "still improves" when the least-squares slope of its last ``fraction`` of values (at least
    ``points``) has a 95 % Newey-West interval (:func:`paper_repro.results.statistics.trend`, which
    tolerates the correlation of neighbouring points) that excludes 0 in the improving direction, *and*
    the fitted improvement over that window exceeds ``tolerance`` of the curve's level: a steady fall
    beyond the curve's own noise, and large enough to matter. ``window`` names what the values span
    when they are not the whole training (e.g. "FID at iterations 1,250-2,500").
    """
    sign = -1.0 if lower_is_better else 1.0
    worst, worst_run, worst_slope = 0.0, None, None
    for run, values in curves.items():
        values = [float(v) for v in values]
        k = max(points, int(round(len(values) * fraction)))
        if len(values) < k:
            return (f"{run} logged {len(values)} value{'s' if len(values) != 1 else ''} of {name}, too few to "
                    f"judge a trend (need {k})")
        last = values[-k:]
        slope = trend(last)
        level = abs(sum(last) / k) or 1.0
        relative = sign * slope.change / level
        significant = (slope.low > 0) if sign > 0 else (slope.high < 0)
        if significant and relative > tolerance and relative > worst:
            worst, worst_run, worst_slope = relative, run, slope
    if worst_run is not None:
        span = window or f"the last {100 * fraction:.0f} % of training"
        return (f"{name} of {worst_run} still {'fell' if lower_is_better else 'rose'} {100 * worst:.0f} % over "
                f"{span} (slope 95 % Newey-West interval "
                f"[{worst_slope.low:+.3g}, {worst_slope.high:+.3g}] per step, excluding 0)")
    return True


@dataclass(frozen=True)
class Effect:
    """The paper's effect for a claim, in this run's units and positive in the claimed direction.

    ``comparable``: the run measures it in the paper's own units (points of AUROC, F1 or accuracy), so an
    interval that lies below it contradicts the paper's size. An effect carried over as a *relative*
    size (FID on another feature space) is not comparable: it only plans the seeds a test would need."""

    size: float
    comparable: bool
    text: str

    @classmethod
    def points(cls, better: float, worse: float, higher_is_better: bool, unit: str = " pts") -> "Effect":
        """The paper's difference of two rows, in its own units."""
        size = (better - worse) if higher_is_better else (worse - better)
        return cls(size, True, f"the paper's {size:+.3g}{unit}")

    @classmethod
    def relative(cls, better: float, worse: float, ours_worse: float, higher_is_better: bool) -> "Effect":
        """The paper's relative difference of two rows, applied to this run's value of the worse row."""
        share = ((better - worse) if higher_is_better else (worse - better)) / abs(worse)
        return cls(share * abs(ours_worse), False, f"the paper's {100 * share:.0f} % applied to this run")


def _power_line(effect: Effect | None, a: Spread, b: Spread, b_is_constant: bool) -> str:
    """How many seeds a side would detect ``effect`` with 80 % power, given this run's spreads."""
    if effect is None:
        return "the paper gives no effect in this run's units to plan seeds for"
    if effect.size <= 0:
        return f"{effect.text} is not in the claimed direction, so no seed count is planned"
    n = seeds_for_power(effect.size, a.sd, b.sd, b_is_constant=b_is_constant)
    if n is None:
        return f"with these spreads no seed count up to 10,000 detects {effect.text} ({effect.size:.3g})"
    return f"{n} seeds a side would detect {effect.text} ({effect.size:.3g}) with {100 * POWER:.0f} % power"


def improvement(table: str, claim: str, better: tuple[str, Spread], worse: tuple[str, Spread],
                higher_is_better: bool, converged: bool | str = True, unit: str = "",
                paper_effect: Effect | None = None, worse_is_constant: bool = False) -> Verdict:
    """Is ``better`` better than ``worse``? Decided by the 95 % Welch t interval of the difference.

    ``converged`` is True, or False / a sentence saying why the budget may still decide (then the verdict
    is *undecided at this budget*). ``worse_is_constant``: ``worse`` is a number with no spread (a trivial
    floor), so the interval has exactly ``n - 1`` df. ``paper_effect`` (:class:`Effect`) plans the seeds a
    *not shown* verdict would need and, where comparable, contradicts a run whose interval lies below it.
    """
    (name_a, a), (name_b, b) = better, worse
    if a.n < 2 or (b.n < 2 and not worse_is_constant):
        raise ValueError(f"{table}: {name_a} has {a.n} and {name_b} {b.n} seeds; a verdict needs a spread (>= 2)")
    sign = 1.0 if higher_is_better else -1.0
    diff = welch(a.values, b.values)                       # a - b, as the reader reads it
    gain = welch([sign * v for v in a.values], [sign * v for v in b.values])   # positive = the claim's way
    if gain.se > 0:
        p = float(min(1.0, 2 * stats.t.sf(gain.estimate / gain.se, gain.df)))
    else:
        p = 0.0 if gain.estimate > 0 else 1.0
    answer = f"{name_a} {a}{unit}, {name_b} {b}{unit}"
    df = "exact" if math.isinf(diff.df) else f"df {diff.df:.1f}"
    deciding = (f"{name_a} − {name_b} = {diff.estimate:+.3g}{unit}, 95 % interval {diff.interval(unit)} "
                f"(Welch, {df})")
    lines = [0.0] + ([paper_effect.size] if paper_effect is not None and paper_effect.comparable else [])
    distance = min(min(abs(gain.low - line), abs(gain.high - line)) for line in lines)
    near = bool(gain.se > 0 and distance < NEAR_LINE * gain.se)
    if near:
        deciding += f"; a bound lies within {NEAR_LINE:g} SE of its line, so a rebuild may decide otherwise"
    reason = _not_converged(converged)
    if reason:
        return Verdict(table, claim, answer, UNDECIDED, f"{deciding}; but {reason}", p, near)
    if gain.low > 0:
        return Verdict(table, claim, answer, HOLDS, deciding, p, near)
    if gain.high < 0:
        return Verdict(table, claim, answer, CONTRADICTED, f"{deciding}: reversed", p, near)
    if paper_effect is not None and paper_effect.comparable and paper_effect.size > 0 and gain.high < paper_effect.size:
        return Verdict(table, claim, answer, CONTRADICTED,
                       f"{deciding}: it excludes {paper_effect.text} ({paper_effect.size:.3g})", p, near)
    power_line = _power_line(paper_effect, a, b, worse_is_constant)
    return Verdict(table, claim, answer, NOT_SHOWN, f"{deciding} contains 0; {power_line}", p, near)


def best_of(table: str, claim: str, candidate: str, rows: Mapping[str, Spread], higher_is_better: bool,
            converged: bool | str = True, unit: str = "", paper: Mapping[str, float] | None = None,
            paper_units: bool = True) -> Verdict:
    """Is ``candidate`` better than every other row of ``rows``? Each pair is an :func:`improvement`.

    It holds when every pair holds (its p is the largest pairwise p), is contradicted when any pair is,
    and is otherwise decided by the closest call: the pair with the largest p, which the deciding number
    names (with unequal spreads, not always the row nearest in mean). ``paper`` ({row: the paper's value})
    gives each pair the paper's effect: in points when ``paper_units``, else as a relative size
    (:meth:`Effect.relative`, for FID on another feature space)."""
    others = {name: s for name, s in rows.items() if name != candidate}
    if candidate not in rows or not others:
        raise ValueError(f"{table}: {candidate!r} and at least one other row are needed, got {list(rows)}")

    def effect(name: str) -> Effect | None:
        if paper is None or candidate not in paper or name not in paper:
            return None
        if not paper_units:
            return Effect.relative(paper[candidate], paper[name], rows[name].mean, higher_is_better)
        return Effect.points(paper[candidate], paper[name], higher_is_better, unit or "")

    pairwise = {name: improvement(table, claim, (candidate, rows[candidate]), (name, s), higher_is_better,
                                  converged, unit, effect(name)) for name, s in others.items()}
    kinds = {v.verdict for v in pairwise.values()}
    closest = max(pairwise.values(), key=lambda v: v.p)
    if CONTRADICTED in kinds and UNDECIDED not in kinds:
        closest = next(v for v in pairwise.values() if v.verdict == CONTRADICTED)
    answer = "; ".join(f"{name} {s}{unit}" for name, s in rows.items())
    verdict = (UNDECIDED if UNDECIDED in kinds else CONTRADICTED if CONTRADICTED in kinds
               else HOLDS if kinds == {HOLDS} else NOT_SHOWN)
    label = "a rival ahead" if closest.verdict == CONTRADICTED else "closest call (largest p)"
    return Verdict(table, claim, answer, verdict, f"{label}: {closest.deciding}", closest.p,
                   any(v.near_line for v in pairwise.values()))


def ordering(table: str, claim: str, paper: Mapping[str, float], run: Mapping[str, Spread],
             lower_is_better: bool, converged: bool | str = True) -> Verdict:
    """Does this run order the rows as the paper does? Kendall's tau-b of the run's means against the
    paper's values, with its exact permutation p (:func:`paper_repro.results.statistics.kendall_exact`,
    ties included). Rows first by construction (a reference such as the ideal synthesizer) must be left
    out by the caller. With so few rows that no order reaches p < :data:`ALPHA` the claim is *not testable*."""
    names = [name for name in paper if name in run]
    if len(names) < 3:
        raise ValueError(f"{table}: an ordering needs three rows both sides have, got {names}")
    ours = [run[name].mean for name in names]
    theirs = [paper[name] for name in names]
    test = kendall_exact(theirs, ours)

    def order(values: Sequence[float]) -> str:
        ranked = sorted(zip(values, names), reverse=not lower_is_better)
        return (" < " if lower_is_better else " > ").join(name for _, name in ranked)

    answer = f"this run {order(ours)}; the paper {order(theirs)}"
    deciding = f"Kendall's tau-b {test.tau:+.2f} over {len(names)} rows, exact one-sided p = {test.p_greater:.3f}"
    gaps = [abs(x - y) for i, x in enumerate(ours) for y in ours[i + 1:]]
    scale = max(abs(v) for v in ours) or 1.0
    near = bool(min(gaps) < 1e-4 * scale)   # two means that agree to 4 digits may swap on another machine
    if near:
        deciding += "; two of this run's means agree to 4 digits, so a rebuild may order them otherwise"
    if test.p_min >= ALPHA:
        return Verdict(table, claim, answer, NOT_TESTABLE,
                       f"not testable with {len(names)} rows: even the paper's exact order has p = "
                       f"{test.p_min:.3f} >= {ALPHA:g}; {deciding}", test.p_greater, near)
    reason = _not_converged(converged)
    if reason:
        return Verdict(table, claim, answer, UNDECIDED, f"{deciding}; but {reason}", test.p_greater, near)
    if test.tau > 0 and test.p_greater < ALPHA:
        return Verdict(table, claim, answer, HOLDS, deciding, test.p_greater, near)
    if test.tau < 0 and test.p_less < ALPHA:
        return Verdict(table, claim, answer, CONTRADICTED, f"{deciding}; reversed, p = {test.p_less:.3f}",
                       test.p_greater, near)
    return Verdict(table, claim, answer, NOT_SHOWN, f"{deciding} (smallest attainable {test.p_min:.3f})",
                   test.p_greater, near)


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


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def ranking_sentence(frame: pd.DataFrame, by: str, value: str, label: str, higher_is_better: bool = True,
                     groups: Mapping[str, Sequence[str]] | None = None, unit: str = " points",
                     digits: int = 1) -> str:
    """What a table of rows measured over runs shows, written from its numbers: the rows ranked by the mean
    of ``value`` (with the spread over runs), the gap from the best to the worst against that spread, and,
    for two named ``groups`` of rows, whether every row of one lies below every row of the other.

    ``frame`` has one row per (``by``, run). With one run a row has no spread, and the sentence says that
    no gap is resolved."""
    if frame.empty or value not in frame:
        return f"No {label} to read: the table is empty."
    grouped = frame.groupby(by, sort=False)[value]
    means, sds, counts = grouped.mean(), grouped.std(), grouped.count()
    order = means.sort_values(ascending=not higher_is_better)
    runs = int(counts.min())

    def shown(name) -> str:
        spread = f" ± {sds[name]:.{digits}f}" if runs > 1 else ""
        return f"{name} {means[name]:.{digits}f}{spread}"

    mean_of = f"mean of {runs} runs" if runs > 1 else "one run"
    parts = [f"By {label} ({mean_of}) the rows rank {_join([shown(n) for n in order.index])}."]
    best, worst = order.index[0], order.index[-1]
    gap = abs(means[best] - means[worst])
    if len(order) > 1:
        if runs > 1 and sds.max() > 0:
            parts.append(f"The best, {best}, is {gap:.{digits}f}{unit} ahead of the last, {worst}: "
                         f"{gap / sds.max():.1f} times the largest spread over runs ({sds.max():.{digits}f}).")
        else:
            parts.append(f"The best, {best}, is {gap:.{digits}f}{unit} ahead of the last, {worst}; with "
                         f"{'one run' if runs < 2 else 'no spread'} no gap between rows is resolved.")
    if groups and len(groups) == 2:
        (name_a, rows_a), (name_b, rows_b) = [(n, [r for r in rows if r in means]) for n, rows in groups.items()]
        if rows_a and rows_b:
            sign = 1 if higher_is_better else -1
            low_a, high_a = min(sign * means[r] for r in rows_a), max(sign * means[r] for r in rows_a)
            low_b, high_b = min(sign * means[r] for r in rows_b), max(sign * means[r] for r in rows_b)
            better = "higher" if higher_is_better else "lower"
            if high_a < low_b:
                parts.append(f"Every {name_a} row is below every {name_b} row: the best of them trails the "
                             f"worst {name_b} row by {low_b - high_a:.{digits}f}{unit} ({better} is better).")
            elif high_b < low_a:
                parts.append(f"Every {name_a} row is ahead of every {name_b} row, by at least "
                             f"{low_a - high_b:.{digits}f}{unit} ({better} is better).")
            else:
                parts.append(f"The {name_a} and {name_b} rows overlap: neither group is ahead of the other "
                             f"on every row.")
    return " ".join(parts)


def value_text(value: float) -> str:
    """A logged value in prose: ``0`` for exactly 0, "below 0.001" for a tiny one, else 3 digits."""
    if value == 0:
        return "exactly 0"
    if abs(value) < 1e-3:
        return f"{'-' if value < 0 else ''}below 0.001"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"


def curve_trend(values: Sequence[float], flat: float = 0.1, settled: float = 0.05) -> str:
    """How one logged curve moved, in words, from its numbers: where it started (mean of the first tenth),
    where it ended (mean of the last quarter), and whether the last quarter still moves.

    "stayed near X" when start and end differ by less than ``flat`` of the larger of the two (in size);
    otherwise "rose" or "fell from X to Y", and "and levelled off" when the least-squares change over
    the last quarter is below ``settled`` of the end level, else "and was still rising / falling"."""

    values = np.asarray([float(v) for v in values if v == v], dtype=float)
    if len(values) < 4:
        return f"logged {len(values)} value{'s' if len(values) != 1 else ''}, too few to describe"
    head = values[:max(1, len(values) // 10)].mean()
    tail_values = values[-max(2, len(values) // 4):]
    tail = tail_values.mean()
    size = max(abs(head), abs(tail))
    if size == 0 or abs(tail - head) < flat * size:
        return f"stayed near {value_text(tail)}"
    direction = "rose" if tail > head else "fell"
    slope = np.polyfit(np.arange(len(tail_values)), tail_values, 1)[0] * (len(tail_values) - 1)
    moving = abs(slope) >= settled * max(abs(tail), 1e-12)
    still = ("still rising" if slope > 0 else "still falling") if moving else "levelled off"
    return f"{direction} from {value_text(head)} to {value_text(tail)} and {'was ' if moving else ''}{still}"


def curves_sentence(log: pd.DataFrame, columns: Mapping[str, str]) -> str:
    """One sentence per logged column (``columns``: column -> what to call it), each from
    :func:`curve_trend` of that column; a column the log lacks is named as absent."""
    parts = []
    for column, label in columns.items():
        if column not in log or log[column].dropna().empty:
            parts.append(f"{label} was not logged")
        else:
            parts.append(f"{label} {curve_trend(log[column].dropna().tolist())}")
    return "In this run, " + "; ".join(parts) + "."


#: Below this share of their own change, two classes' outputs are "painted almost alike"; above
#: :data:`APART`, "clearly told apart" (a description of a figure, not a verdict).
ALIKE, APART = 0.2, 0.5


def columns_sentence(normal, outputs: Mapping[str, object], value_range: float = 2.0) -> str:
    """What a figure of one normal image per row and one requested class per column shows, from its
    pixels: how much each request changes the image (mean absolute difference from the normal, in
    percent of the value range), and how much two requests' outputs differ from each other, as a share
    of that change: whether the columns paint different things at all.

    ``normal`` is (N, C, H, W); ``outputs`` maps a column title to the (N, C, H, W) outputs for it."""


    normal = torch.as_tensor(normal).float()
    outs = {k: torch.as_tensor(v).float() for k, v in outputs.items()}
    change = {k: 100 * (v - normal).abs().mean().item() / value_range for k, v in outs.items()}
    pairs = list(itertools.combinations(outs, 2))
    between = (sum(100 * (outs[a] - outs[b]).abs().mean().item() / value_range for a, b in pairs) / len(pairs)
               if pairs else 0.0)
    mean_change = sum(change.values()) / len(change)
    low, high = min(change, key=change.get), max(change, key=change.get)
    text = (f"Measured on these {normal.shape[0]} images: a request changes the image by {mean_change:.1f} % of "
            f"its range on average ({low} least, {change[low]:.1f} %; {high} most, {change[high]:.1f} %)")
    if not pairs or mean_change == 0:
        return text + "."
    share = between / mean_change
    kind = ("painted almost alike: the columns do not show different defects" if share < ALIKE else
            "clearly told apart" if share > APART else "partly told apart")
    return (text + f"; two different requests' outputs differ from each other by {between:.1f} %, "
            f"{100 * share:.0f} % of that change: the classes are {kind}.")


def threshold_sentence(name: str, pred, masks, f1_at: float, f1_max: float, threshold: float = 0.5) -> str:
    """Why a pixel F1 at a fixed cut is what it is, from the maps: the mean predicted value on the defect
    pixels and on the others, the share of defect pixels above ``threshold`` and of the others above it,
    beside the F1 at the cut (``f1_at``) and the best F1 any single cut reaches (``f1_max``), in percent."""

    pred = torch.as_tensor(pred).float().flatten()
    masks = torch.as_tensor(masks).float().flatten() > 0.5
    if masks.sum() == 0:
        return f"{name}: no defect pixels in the test set, so no pixel F1."
    inside, outside = pred[masks], pred[~masks]
    hit = 100 * (inside > threshold).float().mean().item()
    false = 100 * (outside > threshold).float().mean().item() if len(outside) else 0.0
    text = (f"{name}: the maps average {inside.mean().item():.2f} on the defect pixels and "
            f"{outside.mean().item():.2f} elsewhere; {hit:.0f} % of the defect pixels and {false:.1f} % of the others "
            f"lie above the cut at {threshold:g}, so the F1 at that cut is {f1_at:.1f}")
    if f1_max > f1_at + 5:
        reason = ("the maps stay below the cut on most defect pixels" if hit < 50 else
                  "the cut also marks many normal pixels")
        return (text + f", against {f1_max:.1f} at the best single cut: {reason}, so the cut's place, not only "
                "how the maps rank the pixels, keeps the F1 low.")
    return text + f", close to the {f1_max:.1f} of the best single cut."


def reconstruction_sentence(share: float, paper_share: float, kept: Mapping[str, float]) -> str:
    """What the reconstructive network can pass, and what it did: ``share`` is its bottleneck's numbers per
    input number at this run's widths and size (:func:`paper_repro.dadnet.networks.bottleneck_share`),
    ``paper_share`` the same at the paper's, ``kept`` the share of the input's contrast R kept per category
    (:func:`paper_repro.dadnet.evaluate.contrast_kept`)."""
    mean = sum(kept.values()) / len(kept)
    each = ", ".join(f"{name} {100 * value:.0f} %" for name, value in kept.items())
    room = (f"The reconstructive network's bottleneck holds {share:.2f} numbers per number of its input here, "
            f"{paper_share:.2f} at the paper's widths and size")
    if mean < 0.35:
        what = ("so only a coarse summary of the image passes: R is nearly flat, and the discriminative "
                "network, which sees A beside it, works here as a one-stage segmenter of A")
    elif mean < 0.7:
        what = "so R is a blur of A: the defect goes, and much of the fine texture with it"
    else:
        what = "and R keeps most of the detail of A"
    return f"{room}. R keeps {100 * mean:.0f} % of the input's contrast ({each}), {what}."


def target_sentences(frame, targets: Mapping[str, float]) -> list[str]:
    """Per category of ``frame`` (rows: ``category``, ``world``, one row per seed, metrics in %): its mean
    and sd over seeds of each metric in ``targets`` ({metric: the least mean that meets it}), and whether it
    meets every target, from the numbers."""
    names = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC"}
    out = []
    for category, part in frame.groupby("category", sort=False):
        said, short = [], []
        for metric, target in targets.items():
            mean = part[metric].mean()
            spread = f" ± {part[metric].std():.1f}" if len(part) > 1 else ""
            said.append(f"{names.get(metric, metric)} {mean:.1f}{spread}")
            if mean < target:
                short.append(f"{names.get(metric, metric)} by {target - mean:.1f} points")
        verdict = "meets every target" if not short else "falls short: " + ", ".join(short)
        seeds = f"{len(part)} seed{'s' if len(part) > 1 else ''}"
        out.append(f"{category} ({part['world'].iloc[0]}, {seeds}): {', '.join(said)}; {verdict}.")
    return out


def paper_gap_sentence(label: str, paper: Mapping[str, float], run: Mapping[str, "Spread"],
                       unit: str = " points", digits: int = 1) -> str:
    """How this run's rows stand against the paper's, from the numbers: the range of this run minus the
    paper over the rows both have (naming the largest), and whether the spread over seeds is as wide as
    the gaps between this run's rows (then the rows are not told apart at this power)."""
    names = [n for n in paper if n in run]
    if not names:
        return f"{label}: no row both the paper and this run have."
    gaps = {n: run[n].mean - paper[n] for n in names}
    widest = max(names, key=lambda n: abs(gaps[n]))
    low, high = min(gaps.values()), max(gaps.values())
    if low > 0 or high < 0:
        near, far = sorted((abs(low), abs(high)))
        where = f"{near:.{digits}f} to {far:.{digits}f}{unit} {'above' if low > 0 else 'below'} the paper's"
    else:
        where = f"between {abs(low):.{digits}f}{unit} below and {high:.{digits}f}{unit} above the paper's"
    text = (f"{label}: this run's rows lie {where}, most for {widest} "
            f"({run[widest].mean:.{digits}f} against {paper[widest]:.{digits}f})")
    means = [run[n].mean for n in names]
    spread = max(run[n].sd for n in names)
    between = max(means) - min(means)
    if len(names) > 1 and run[names[0]].n > 1:
        if spread >= between:
            text += (f"; the spread over seeds reaches {spread:.{digits}f}{unit}, as wide as the whole gap between "
                     f"this run's rows ({between:.{digits}f}), so the seeds, not the rows, decide their order")
        else:
            text += (f"; the largest spread over seeds, {spread:.{digits}f}{unit}, is narrower than the gap between "
                     f"this run's best and worst rows ({between:.{digits}f})")
    return text + "."


#: The verdict tables the results chapters record, in reading order (the closing chapter and the landing
#: page read them).
RESULTS_TABLES = ("defect_gan_table1_verdicts", "defect_gan_table2_verdicts", "defect_gan_table3_verdicts",
                  "dadnet_tables_1_3_verdicts", "dadnet_table4_verdicts")


def verdict_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """How many claims of each paper got each verdict (a row per paper, a column per verdict, a total)."""
    counts = pd.crosstab(frame["paper"], frame["verdict"]).reindex(columns=list(VERDICTS), fill_value=0)
    counts["claims"] = counts.sum(axis=1)
    return counts.rename_axis(index="paper", columns=None)


def snapshot_sentence(frame: pd.DataFrame) -> str:
    """The landing page's one paragraph of what this build found, from the recorded verdicts."""
    if frame.empty:
        return ("No results chapter has recorded a verdict at this scale yet (at `smoke` each table runs one "
                "seed, and a verdict needs a spread over seeds): build the book at `demo` to see what it finds.")
    parts = []
    for paper, rows in frame.groupby("paper", sort=False):
        counts = rows["verdict"].value_counts()
        said = [f"{int(counts[v])} {v}" for v in VERDICTS if counts.get(v, 0)]
        parts.append(f"of {paper}'s {len(rows)} claim{'s' if len(rows) != 1 else ''}, {_join(said)}")
    return "In this build, " + "; ".join(parts) + "."


def with_holm(frame: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """A verdict table with Holm's correction over the family of every claim that has a p-value: the
    columns ``Holm p`` and ``holds after Holm`` (a raw *holds* whose adjusted p is still below ``alpha``)."""
    out = frame.copy()
    tested = out["p"].notna() if "p" in out else pd.Series(False, index=out.index)
    out["Holm p"] = float("nan")
    out["holds after Holm"] = False
    if tested.any():
        adjusted, _ = holm(out.loc[tested, "p"].astype(float).tolist(), alpha)
        out.loc[tested, "Holm p"] = adjusted
        out["holds after Holm"] = (out["verdict"] == HOLDS) & (out["Holm p"] < alpha)
    return out


def family_summary(frame: pd.DataFrame, alpha: float = ALPHA) -> str:
    """One paragraph, computed from a :func:`with_holm` table, of what the claims as a family show."""
    counts = frame["verdict"].value_counts()
    n = len(frame)
    holds, after = int(counts.get(HOLDS, 0)), int(frame["holds after Holm"].sum())
    tested = int(frame["p"].notna().sum())
    parts = [f"Of {n} claims, {holds} hold at the {100 * (1 - alpha):.0f} % level one by one and {after} still "
             f"hold after Holm's correction over the {tested} that have a p-value"]
    if after:
        kept = frame[frame["holds after Holm"]]
        parts.append(" (" + "; ".join(f"{p} {t}: {c}" for p, t, c in zip(kept["paper"], kept["table"], kept["claim"])) + ")")
    parts.append(". ")
    sentences = {CONTRADICTED: "{k} {are} contradicted: the interval excludes the claim (reversed, or below the paper's "
                               "own effect in its units)",
                 NOT_SHOWN: "{k} {are} not shown at this power: the interval contains 0, so this build neither shows "
                            "nor refutes {them}, and the deciding number says how many seeds would",
                 UNDECIDED: "{k} {are} undecided at this budget: a model had not converged (the deciding number "
                            "says which, and why)",
                 NOT_TESTABLE: "{k} {are} orderings of too few rows to be tested at all"}
    for kind, sentence in sentences.items():
        k = int(counts.get(kind, 0))
        if k:
            parts.append(sentence.format(k=k, are="is" if k == 1 else "are", them="it" if k == 1 else "them")
                         + ". ")
    near = int(frame["near the line"].fillna(False).astype(bool).sum())
    parts.append(f"{near} verdict{'s' if near != 1 else ''} lie{'s' if near == 1 else ''} within rounding of "
                 "{its} line.".format(its="its" if near == 1 else "their") if near else
                 "No verdict lies within rounding of its line, so a rebuild that reproduces the numbers to a few "
                 "digits gives the same verdicts.")
    return "".join(parts)


__all__ = ["HOLDS", "CONTRADICTED", "NOT_SHOWN", "UNDECIDED", "NOT_TESTABLE", "VERDICTS", "NEAR_LINE", "TAU_ALPHA",
           "Spread", "significant", "spreads", "Verdict", "Effect",
           "verdict_frame", "VERDICT_COLOURS", "p_text", "verdicts_view", "VERDICTS_FOLDER", "record_verdicts", "recorded_verdicts", "plateaued", "improvement",
           "best_of", "ordering", "compare_ordering", "ranking_sentence", "value_text", "curve_trend", "curves_sentence", "ALIKE", "APART", "columns_sentence", "threshold_sentence", "reconstruction_sentence", "target_sentences", "paper_gap_sentence", "RESULTS_TABLES", "verdict_counts", "snapshot_sentence", "with_holm", "family_summary"]
