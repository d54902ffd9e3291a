"""The statistics behind the verdicts, each checked against a value computed independently: scipy's own
tests and exact distributions, a published worked example, or a textbook formula (named in each test)."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats

from paper_repro.results.statistics import (holm, kendall_exact, newey_west_lags, power, satterthwaite_df,
                                            seeds_for_power, trend, welch)


def test_satterthwaite_df_matches_a_worked_example():
    # Worked example (solvely.ai, "two-sample test of means ... Welch-Satterthwaite"): n 8 and 9, s 4 and 3,
    # df = 9 / 0.6964 = 12.9231.
    assert satterthwaite_df(16, 8, 9, 9) == pytest.approx(12.9231, abs=1e-4)
    # Against a constant (no spread) the df are exactly the other side's n - 1: 2 with three seeds.
    assert satterthwaite_df(4.0, 3, 0.0, 3) == 2


@pytest.mark.parametrize("a, b", [([1.0, 2.0, 4.0], [3.0, 5.0, 7.5]), ([80.1, 82.4, 79.9], [60.0, 61.5, 58.2, 63.0]),
                                  ([0.5, 0.52, 0.49], [0.51, 0.50, 0.53])])
def test_welch_interval_and_p_match_scipy(a, b):
    ours = welch(a, b)
    theirs = stats.ttest_ind(a, b, equal_var=False)
    ci = theirs.confidence_interval(0.95)
    assert ours.df == pytest.approx(theirs.df)
    assert ours.p == pytest.approx(theirs.pvalue)
    assert (ours.low, ours.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_welch_against_a_constant_floor_uses_two_df_with_three_seeds():
    d = welch([50.0, 52.0, 47.0], [42.0] * 3)
    assert d.df == 2
    # the one-sample t interval of the same numbers minus the floor (scipy's one-sample test)
    one = stats.ttest_1samp([50.0, 52.0, 47.0], 42.0).confidence_interval(0.95)
    assert (d.low + 42.0, d.high + 42.0) == (pytest.approx(one.low), pytest.approx(one.high))
    assert stats.t.ppf(0.975, 2) == pytest.approx(4.303, abs=1e-3)   # the 4.30 SE cut, not 2


def test_welch_refuses_single_values_and_handles_no_spread():
    with pytest.raises(ValueError):
        welch([1.0], [2.0])
    exact = welch([3.0, 3.0], [1.0, 1.0])
    assert exact.low == exact.high == 2.0 and exact.p == 0.0


@pytest.mark.parametrize("d, n", [(0.2, 394), (0.5, 64), (0.8, 26)])
def test_seeds_for_power_matches_cohens_table(d, n):
    # Cohen (1988), Statistical Power Analysis, Table 2.4.1: two-sided alpha 0.05, power 0.80, per group.
    # The same numbers follow from the noncentral t (OriginLab "PSS Two-Sample T-Test Algorithm").
    assert seeds_for_power(d, 1.0, 1.0) == n
    assert power(d, 1.0, 1.0, n) >= 0.80 > power(d, 1.0, 1.0, n - 1)


def test_seeds_for_power_edge_cases():
    assert seeds_for_power(0.0, 1.0, 1.0) is None
    assert seeds_for_power(1.0, 0.0, 0.0) is None
    assert seeds_for_power(100.0, 1.0, 1.0) == 2
    assert seeds_for_power(1e-6, 1.0, 1.0) is None   # more than 10,000 seeds


def _permutation_p(x, y):
    """scipy's own exact permutation test of Kendall's tau-b ('pairings': every assignment of y to the rows)."""
    def tau(y_perm):
        return stats.kendalltau(x, y_perm).statistic
    res = stats.permutation_test((y,), tau, permutation_type="pairings", alternative="greater",
                                 n_resamples=math.factorial(len(y)))
    return res.pvalue


@pytest.mark.parametrize("x, y", [
    ([1, 2, 3, 4, 5], [2, 1, 3, 5, 4]),
    ([98.4, 96.3, 96.3, 95.1, 92.0], [97.0, 95.0, 96.0, 94.0, 93.0]),  # paper ties, as DADNet's RD = STFPM
    ([65.6, 94.5, 103.0, 295.1], [60.0, 61.0, 70.0, 80.0]),
    ([1, 2, 3, 4, 5, 6], [1, 1, 2, 3, 3, 6]),                          # ties on this run's side
])
def test_kendall_exact_matches_scipys_permutation_test(x, y):
    ours = kendall_exact(x, y)
    assert ours.tau == pytest.approx(stats.kendalltau(x, y).statistic)
    assert ours.p_greater == pytest.approx(_permutation_p(x, y))


def test_kendall_exact_without_ties_matches_scipys_exact_method():
    x, y = [1, 2, 3, 4, 5, 6, 7], [2, 1, 4, 3, 6, 7, 5]
    assert kendall_exact(x, y).p_greater == pytest.approx(
        stats.kendalltau(x, y, method="exact", alternative="greater").pvalue)


def test_kendall_exact_smallest_attainable_p():
    assert kendall_exact([1, 2, 3], [1, 2, 3]).p_min == pytest.approx(1 / 6)   # 3 rows: never below 0.05
    assert kendall_exact([1, 2, 3, 4], [4, 3, 2, 1]).p_min == pytest.approx(1 / 24)
    assert kendall_exact([1, 2, 3, 4], [4, 3, 2, 1]).p_less == pytest.approx(1 / 24)
    with pytest.raises(ValueError):
        kendall_exact(range(9), range(9))


def test_holm_matches_the_textbook_step_down():
    # Holm (1979): sorted p (0.005, 0.01, 0.03, 0.04), multipliers 4, 3, 2, 1, made monotone.
    adjusted, reject = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert reject == [True, False, False, True]


def _textbook_newey_west_se(x, y, lags):
    """Var(slope) = [sum u_t^2 + 2 sum_l w_l sum_t u_t u_(t-l)] / Sxx^2, u_t = (x_t - mean x) e_t, Bartlett
    w_l = 1 - l / (L + 1) (Newey and West 1987; the scalar form in Greene, Econometric Analysis, ch. 20)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc = x - x.mean()
    slope = (xc @ (y - y.mean())) / (xc @ xc)
    e = y - y.mean() - slope * xc
    u = xc * e
    total = sum(u[t] ** 2 for t in range(len(u)))
    for lag in range(1, lags + 1):
        total += 2 * (1 - lag / (lags + 1)) * sum(u[t] * u[t - lag] for t in range(lag, len(u)))
    return slope, math.sqrt(total) / (xc @ xc)


@pytest.mark.parametrize("lags", [0, 1, 2, 3])
def test_trend_matches_the_textbook_newey_west_formula(lags):
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=12)) + np.linspace(5, 0, 12)   # an autocorrelated, falling curve
    x = np.arange(250, 3250, 250)
    ours = trend(y, x, lags=lags)
    slope, se = _textbook_newey_west_se(x, y, lags)
    assert ours.slope == pytest.approx(slope) and ours.se == pytest.approx(se)
    assert ours.high - ours.slope == pytest.approx(stats.t.ppf(0.975, 10) * se)
    assert ours.slope == pytest.approx(stats.linregress(x, y).slope)


def test_newey_west_rule_of_thumb():
    assert [newey_west_lags(n) for n in (6, 36, 100)] == [2, 3, 4]
