import math

import pandas as pd
import pytest

from paper_repro.results import (NOT_IN_PAPER, PAPER_TABLES, RunInfo, dadnet_table, paper_table, save_table,
                                 side_by_side, to_markdown)
from paper_repro.results.papers import DADNET_CATEGORIES, DADNET_METHODS


def test_every_table_of_both_papers_is_kept_and_cited():
    sizes = {"defect_gan.table1": 9, "defect_gan.table2": 6, "defect_gan.table3": 8,
             "dadnet.table1": 45, "dadnet.table2": 45, "dadnet.table3": 45, "dadnet.table4": 4}
    assert set(PAPER_TABLES) == set(sizes)
    for key, rows in sizes.items():
        table = paper_table(key)
        assert len(table) == rows, key
        number = key.split("table")[1]
        assert table["source"].str.endswith(f"Table {number}").all(), key


@pytest.mark.parametrize("metric", ["image_auroc", "pixel_auroc", "pixel_f1"])
def test_dadnet_average_rows_match_the_categories_they_average(metric):
    # A check on the transcription: each "Average" row of Tables 1-3 is the mean of its 8 categories.
    table = dadnet_table(metric).pivot(index="category", columns="method", values=metric)
    means = table.loc[list(DADNET_CATEGORIES)].mean()
    for method in DADNET_METHODS:
        assert abs(means[method] - table.loc["average", method]) <= 0.11, (metric, method)


def test_defect_gan_headline_numbers():
    fid = paper_table("defect_gan.table1").set_index("method")["fid"]
    assert fid["Defect-GAN"] == 65.6 and fid["StarGAN"] == 295.1 and fid["Ideal Defect Synthesizer"] == 25.0
    # Table 2's first and last rows are Table 1's StarGAN and Defect-GAN.
    ablation = paper_table("defect_gan.table2")
    assert ablation["fid"].iloc[0] == fid["StarGAN"] and ablation["fid"].iloc[-1] == fid["Defect-GAN"]


def test_side_by_side_names_the_run_and_keeps_unmatched_rows(tmp_path):
    paper = paper_table("dadnet.table4")
    run = pd.DataFrame({"experiment": ["Baseline+DGM", "DADNet", "Defect-GAN samples"],
                        "image_auroc": [80.0, 90.0, 85.0]})
    info = RunInfo(scale="smoke", dataset="bundled synthetic (MVTec layout)", device="cpu",
                   notes=(("pretrained", "no"),))
    table = side_by_side(paper, run, on=["experiment"], value="image_auroc", run_info=info)
    assert list(table.columns) == ["experiment", "paper", "this run", "source"]
    row = table.set_index("experiment")
    assert row.loc["DADNet", "paper"] == 98.4 and row.loc["DADNet", "this run"] == 90.0
    assert pd.isna(row.loc["Baseline+SDGM", "this run"]) and pd.isna(row.loc["Defect-GAN samples", "paper"])
    assert row.loc["Defect-GAN samples", "source"] == NOT_IN_PAPER and "Table 4" in row.loc["DADNet", "source"]
    caption = "this run: scale=smoke, data=bundled synthetic (MVTec layout), device=cpu, precision=fp32, pretrained=no"
    assert table.attrs["run_info"] == caption
    written = save_table(table, "table4", tmp_path)
    assert [p.name for p in written] == ["table4.csv", "table4.md", "table4.json"]
    assert pd.read_csv(written[0])["paper"].tolist()[:4] == [78.0, 97.2, 97.6, 98.4]
    markdown = written[1].read_text()
    assert markdown.startswith(f"*{caption}*") and "| experiment" in markdown
    assert save_table(table, "table4", None) == []
    assert to_markdown(pd.DataFrame({"a": [1.0]})).startswith("|")


def test_markdown_keeps_small_numbers_readable():
    markdown = to_markdown(pd.DataFrame({"value": [2010.39, 65.6, 0.0184, 0.00087, float("nan")]}))
    for shown in ("2010", "65.6", "0.0184", "0.00087"):
        assert shown in markdown
    assert "nan" not in markdown  # a missing number is an empty cell


# ------------------------------------------------------------------------------------------
# Verdicts: the paper's claim, this run's answer, and the number that decides it
# ------------------------------------------------------------------------------------------
def test_spread_is_the_mean_and_sample_standard_deviation():
    from paper_repro.results.reading import Spread

    spread = Spread.of([1.0, 2.0, 3.0])
    assert (spread.n, spread.mean, spread.sd) == (3, 2.0, 1.0)
    assert str(spread) == "2 ± 1 (3 seeds)"
    with pytest.raises(ValueError, match="NaN"):
        Spread.of([1.0, float("nan")])


@pytest.mark.parametrize("better, worse, expected, how", [
    ([60.0, 61.0, 62.0], [70.0, 71.0, 72.0], "holds", ""),                 # 10 lower, SE 0.82
    ([60.0, 70.0, 80.0], [65.0, 75.0, 85.0], "not shown at this power", "contains 0"),
    ([80.0, 81.0, 82.0], [60.0, 61.0, 62.0], "contradicted", "reversed"),
])
def test_an_improvement_is_decided_by_the_welch_interval_of_its_difference(better, worse, expected, how):
    from paper_repro.results.reading import Spread, improvement

    verdict = improvement("Table 1", "Defect-GAN has a lower FID than StarGAN", ("Defect-GAN", Spread.of(better)),
                          ("StarGAN", Spread.of(worse)), higher_is_better=False)
    assert verdict.verdict == expected
    assert how in verdict.deciding and "95 % interval" in verdict.deciding and "Welch, df 4.0" in verdict.deciding
    assert "Defect-GAN" in verdict.answer and "StarGAN" in verdict.answer
    assert 0 <= verdict.p <= 1


def test_not_shown_says_how_many_seeds_would_detect_the_papers_effect():
    from paper_repro.results.reading import NOT_SHOWN, Effect, Spread, improvement

    verdict = improvement("Table 4", "SDGM beats DGM", ("SDGM", Spread.of([90.0, 94.0, 92.0])),
                          ("DGM", Spread.of([91.0, 89.0, 93.0])), True, unit=" pts",
                          paper_effect=Effect.points(92.0, 90.0, True))
    assert verdict.verdict == NOT_SHOWN
    # d = 2 / 2 = 1: Cohen's table gives 17 a side for d = 1.0 at 80 % power, two-sided 0.05
    assert "17 seeds a side would detect the paper's +2 pts" in verdict.deciding


def test_an_interval_below_the_papers_own_effect_contradicts_it():
    from paper_repro.results.reading import CONTRADICTED, NOT_SHOWN, Effect, Spread, improvement

    a, b = Spread.of([90.0, 90.5, 91.0]), Spread.of([90.2, 90.4, 90.6])
    points = improvement("T", "c", ("a", a), ("b", b), True, unit=" pts", paper_effect=Effect.points(97.0, 78.0, True))
    assert points.verdict == CONTRADICTED and "excludes the paper's +19 pts" in points.deciding
    # a relative effect (FID on another feature space) plans seeds but contradicts nothing
    fid = Effect.relative(65.6, 103.0, ours_worse=90.4, higher_is_better=False)
    assert not fid.comparable and fid.size == pytest.approx(37.4 / 103.0 * 90.4)
    assert improvement("T", "c", ("a", a), ("b", b), True, paper_effect=fid).verdict == NOT_SHOWN


def test_a_constant_floor_is_compared_on_two_degrees_of_freedom():
    from paper_repro.results.reading import HOLDS, NOT_SHOWN, Spread, improvement

    # +7.8 over the floor with sd 8.8 (issue 26's Table 3 case): t = 1.54 on 2 df, far from the 4.30 cut
    none = Spread.of([41.1 - 8.8, 41.1, 41.1 + 8.8])
    floor = Spread.of([33.3] * 3)
    verdict = improvement("Table 3", "c", ("None", none), ("trivial", floor), True, worse_is_constant=True)
    assert verdict.verdict == NOT_SHOWN and "df 2.0" in verdict.deciding
    tight = Spread.of([41.0, 41.5, 42.0])
    assert improvement("Table 3", "c", ("None", tight), ("trivial", floor), True, worse_is_constant=True).verdict == HOLDS


def test_a_verdict_near_its_line_says_a_rebuild_may_decide_otherwise():
    from paper_repro.results.reading import Spread, improvement
    from paper_repro.results.statistics import welch

    a, b = [10.0, 11.0, 12.0], [0.0, 1.0, 2.0]
    shift = welch(a, b).low                # move a so that the interval's lower bound sits just above 0
    near = improvement("T", "c", ("a", Spread.of([v - shift + 1e-3 for v in a])), ("b", Spread.of(b)), True)
    assert near.near_line and "a rebuild may decide otherwise" in near.deciding
    assert not improvement("T", "c", ("a", Spread.of(a)), ("b", Spread.of(b)), True).near_line


def test_holds_is_rare_when_there_is_no_effect_and_common_when_it_is_large():
    """Two groups of 3 seeds, 2,000 simulated draws: with no true difference the interval rule says
    "holds" at most 2.5 % of the time (5 % plus 3 Monte Carlo SE allowed); with a true difference of
    4 standard deviations it says "holds" at least 80 % of the time."""
    import numpy as np

    from paper_repro.results.reading import HOLDS, Spread, improvement

    rng = np.random.default_rng(26)
    draws = 2000

    def rate(effect: float) -> float:
        hits = 0
        for _ in range(draws):
            a, b = rng.normal(effect, 1.0, 3), rng.normal(0.0, 1.0, 3)
            hits += improvement("T", "c", ("a", Spread.of(a)), ("b", Spread.of(b)), True).verdict == HOLDS
        return hits / draws

    null = rate(0.0)
    assert null <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / draws), null
    assert rate(4.0) >= 0.80


def test_a_run_that_has_not_converged_is_undecided_whatever_the_numbers():
    from paper_repro.results.reading import UNDECIDED, Spread, improvement

    verdict = improvement("Table 3", "augmenting helps", ("Defect-GAN", Spread.of([80, 81, 82])),
                          ("None", Spread.of([50, 51, 52])), higher_is_better=True,
                          converged="validation accuracy still rose in the last 5 epochs")
    assert verdict.verdict == UNDECIDED and "still rose" in verdict.deciding


def test_one_seed_has_no_spread_and_gets_no_verdict():
    from paper_repro.results.reading import Spread, improvement

    with pytest.raises(ValueError, match="needs a spread"):
        improvement("T", "c", ("a", Spread.of([1.0])), ("b", Spread.of([2.0, 3.0])), higher_is_better=True)


def test_best_of_is_decided_by_the_closest_call():
    from paper_repro.results.reading import CONTRADICTED, HOLDS, NOT_SHOWN, Spread, best_of

    rows = {"DADNet": Spread.of([97, 98, 99]), "PaDiM": Spread.of([96, 97, 98]), "RD": Spread.of([70, 71, 72])}
    verdict = best_of("Table 1", "DADNet has the best image AUROC", "DADNet", rows, higher_is_better=True)
    assert verdict.verdict == NOT_SHOWN
    assert "closest call (largest p): DADNet − PaDiM = +1" in verdict.deciding
    rows["PaDiM"] = Spread.of([80, 81, 82])
    assert best_of("Table 1", "c", "DADNet", rows, higher_is_better=True).verdict == HOLDS
    # a wide-spread row far behind in mean can be the closer call than a tight row nearer in mean
    rows = {"DADNet": Spread.of([96.0, 96.3, 96.6]), "PaDiM": Spread.of([89.5, 90.0, 90.4]),
            "STFPM": Spread.of([64.0, 67.0, 70.0])}
    deciding = best_of("Table 1", "c", "DADNet", rows, higher_is_better=True).deciding
    assert "DADNet − STFPM" in deciding, deciding
    # a rival clearly ahead contradicts "the best"
    rows["PaDiM"] = Spread.of([99.0, 99.2, 99.4])
    ahead = best_of("Table 1", "c", "DADNet", rows, higher_is_better=True)
    assert ahead.verdict == CONTRADICTED and "a rival ahead: DADNet − PaDiM" in ahead.deciding


def test_a_difference_is_stated_with_its_sign_and_interval():
    from paper_repro.results.reading import Spread, improvement

    behind = improvement("Table 4", "c", ("DADNet", Spread.of([93, 93.5, 94])), ("DRAM", Spread.of([94, 94.5, 95])),
                         higher_is_better=True)
    assert "DADNet − DRAM = -1, 95 % interval [-2.13, +0.133]" in behind.deciding
    assert behind.verdict == "not shown at this power"   # 2.78 SE on 4 df, where a 2-SE rule said "reversed"
    fid = improvement("Table 2", "c", ("LWC", Spread.of([70, 71, 72])), ("SCC", Spread.of([100, 101, 102])),
                      higher_is_better=False)
    assert "LWC − SCC = -30" in fid.deciding and fid.verdict == "holds"


def test_an_ordering_is_decided_by_its_exact_permutation_p():
    from paper_repro.results.reading import CONTRADICTED, HOLDS, NOT_SHOWN, NOT_TESTABLE, Spread, ordering

    paper = {"a": 295.1, "b": 103.0, "c": 99.7, "d": 76.8, "e": 69.5, "f": 65.6}
    same = {k: Spread.of([v, v + 1]) for k, v in paper.items()}
    verdict = ordering("Table 2", "each component lowers FID", paper, same, lower_is_better=True)
    assert verdict.verdict == HOLDS and "tau-b +1.00" in verdict.deciding and verdict.p == pytest.approx(1 / 720)
    assert verdict.answer.startswith("this run f < e < d < c < b < a")
    shuffled = dict(zip(paper, [Spread.of([v, v]) for v in (70.0, 90.0, 60.0, 100.0, 80.0, 65.0)]))
    assert ordering("Table 2", "c", paper, shuffled, lower_is_better=True).verdict == NOT_SHOWN
    backwards = {k: Spread.of([-v, -v]) for k, v in paper.items()}
    assert ordering("Table 2", "c", paper, backwards, lower_is_better=True).verdict == CONTRADICTED
    three = {k: paper[k] for k in "abc"}
    small = ordering("Table 1", "c", three, same, lower_is_better=True)
    assert small.verdict == NOT_TESTABLE and "not testable with 3 rows" in small.deciding


def test_a_verdict_frame_has_one_row_per_claim_and_holm_corrects_the_family():
    from paper_repro.results.reading import Verdict, verdict_frame, with_holm

    frame = verdict_frame([Verdict("Table 1", "c", "a", "holds", "d", 0.01),
                           Verdict("Table 2", "c", "a", "holds", "d", 0.04),
                           Verdict("Table 3", "c", "a", "not shown at this power", "d", 0.5)])
    assert list(frame.columns) == ["table", "claim", "this run", "verdict", "deciding number", "p", "near the line"]
    corrected = with_holm(frame)
    assert corrected["Holm p"].tolist() == pytest.approx([0.03, 0.08, 0.5])
    assert corrected["holds after Holm"].tolist() == [True, False, False]
    with pytest.raises(ValueError, match="verdict"):
        Verdict("T", "c", "a", "probably", "d")


def test_plateaued_names_the_run_still_improving_beyond_its_noise():
    from paper_repro.results.reading import plateaued

    flat = [1.0] * 10 + [0.5] * 20
    assert plateaued({"a": flat, "b": flat}, "L") is True
    falling = [1.0 - 0.03 * i for i in range(30)]
    reason = plateaued({"a": flat, "b": falling}, "L")
    assert isinstance(reason, str) and "b" in reason and "still fell" in reason and "Newey-West" in reason
    # a flat curve that jitters by +-20 % epoch to epoch is not still falling
    jitter = [1.0, 1.2, 0.8, 1.1, 0.9] * 8 + [0.9, 1.1, 0.7, 1.0, 0.8]
    assert plateaued({"a": jitter}, "L") is True
    assert "too few" in plateaued({"a": [1.0]}, "L")
    # a metric where higher is better (AUROC at the milestones) still rising
    rising = [80.0, 84.0, 87.0, 89.0, 91.0, 92.5]
    assert "still rose" in plateaued({"DADNet seed 42": rising}, "image AUROC", fraction=1.0, lower_is_better=False)


def _ablation_frame(gains: dict[str, float], noise: float = 0.5):
    import pandas as pd

    rows = []
    for run in range(3):
        for category in ("tile", "wood"):
            for experiment, gain in gains.items():
                jitter = noise * ((run * 7 + len(category) + len(experiment)) % 3 - 1)
                rows.append({"experiment": experiment, "category": category, "run": run,
                             "image_auroc": 80 + gain + jitter, "pixel_auroc": 85 + gain + jitter,
                             "pixel_f1": 30 + gain + jitter})
    return pd.DataFrame(rows)


def test_table4_verdicts_follow_the_measured_differences():
    from paper_repro.experiments.dadnet_table4 import verdicts
    from paper_repro.results.reading import CONTRADICTED, HOLDS, UNDECIDED

    paper_like = _ablation_frame({"Baseline+DGM": 0, "Baseline+SDGM": 10, "Baseline+DGM+DRAM": 9, "DADNet": 15})
    found = verdicts(paper_like)
    assert [v.verdict for v in found] == [HOLDS] * 5
    assert "97.2 vs 78.0" in found[0].claim            # the paper's numbers, read from its table
    reversed_sdgm = _ablation_frame({"Baseline+DGM": 10, "Baseline+SDGM": 0, "Baseline+DGM+DRAM": 12, "DADNet": 11})
    found = verdicts(reversed_sdgm)
    assert found[0].verdict == CONTRADICTED and "reversed" in found[0].deciding
    assert found[2].verdict == CONTRADICTED            # DADNet is behind Baseline+DGM+DRAM
    assert {v.verdict for v in verdicts(paper_like, converged="L_Focal still fell")} == {UNDECIDED}


def test_tables_1_3_verdicts_best_of_and_ordering():
    import pandas as pd

    from paper_repro.experiments.dadnet_tables_1_3 import verdicts
    from paper_repro.results.reading import HOLDS

    level = {"FastFlow": 60, "PaDiM": 80, "RD": 70, "STFPM": 75, "DADNet": 95}
    rows = [{"method": m, "category": c, "run": r, "image_auroc": v + r * 0.3, "pixel_auroc": v + r * 0.2,
             "pixel_f1": v / 2 + r * 0.1} for r in range(3) for c in ("tile", "metal") for m, v in level.items()]
    found = verdicts(pd.DataFrame(rows))
    assert len(found) == 6 and {v.table for v in found} == {"Table 1", "Table 2", "Table 3"}
    assert all(v.verdict == HOLDS for v in found if "best" in v.claim)
    assert "Kendall" in found[1].deciding


def test_results_view_hides_the_index_rounds_and_names_the_source_once():
    import pandas as pd

    from paper_repro.results.tables import MISSING, RunInfo, results_view, side_by_side

    paper = pd.DataFrame({"method": ["a", "b"], "fid": [12.34, 56.78], "source": ["Paper, Table 1"] * 2})
    run = pd.DataFrame({"method": ["a"], "fid": [10.06]})
    table = side_by_side(paper, run, ["method"], "fid", RunInfo("demo", "bundled", "cpu"))
    html = results_view(table).to_html()
    assert "12.3" in html and "10.1" in html and "12.34" not in html
    assert MISSING in html and "nan" not in html.lower()
    assert "paper: Paper, Table 1" in html and "scale=demo" in html
    assert ">source<" not in html and "row0_col" in html and "level0_row0" not in html  # no index column


def test_results_view_keeps_the_row_labels_of_a_pivoted_table():
    import pandas as pd

    from paper_repro.results.tables import MISSING, results_view

    wide = pd.DataFrame({"concrete": [96.41, None], "tile": [92.1, 88.0]}, index=["DADNet", "PaDiM"])
    html = results_view(wide, index=True, caption="run").to_html()
    assert "DADNet" in html and "PaDiM" in html and "96.4<" in html and MISSING in html
    assert "DADNet" not in results_view(wide).to_html()  # the default hides it


def test_verdicts_are_shaded_by_kind():
    from paper_repro.results.reading import (CONTRADICTED, HOLDS, VERDICT_COLOURS, Spread, improvement,
                                             verdict_frame, verdicts_view)

    found = [improvement("T", "a beats b", ("a", Spread.of([3.0, 3.1, 2.9])), ("b", Spread.of([1.0, 1.1, 0.9])), True),
             improvement("T", "b beats a", ("b", Spread.of([1.0, 1.1, 0.9])), ("a", Spread.of([3.0, 3.1, 2.9])), True)]
    html = verdicts_view(verdict_frame(found)).to_html()
    assert [v.verdict for v in found] == [HOLDS, CONTRADICTED]
    assert VERDICT_COLOURS[HOLDS] in html and VERDICT_COLOURS[CONTRADICTED] in html


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00", b"not,a,verdict\n1,2,3\n", b'"unclosed\n'])
def test_a_damaged_verdict_file_is_left_out_in_one_line(content, tmp_path, monkeypatch, capsys):
    from paper_repro.results.reading import HOLDS, Verdict, record_verdicts, recorded_verdicts

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path))
    record_verdicts([Verdict("Table 1", "a claim", "numbers", HOLDS, "an interval", 0.01)], "dadnet_tables_1_3_verdicts",
                    "demo")
    (tmp_path / "verdicts" / "demo" / "defect_gan_table1_verdicts.csv").write_bytes(content)
    found = recorded_verdicts("demo", ["defect_gan_table1_verdicts", "dadnet_tables_1_3_verdicts"])
    assert list(found["table"]) == ["Table 1"] and list(found["paper"]) == ["DADNet"]
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "defect_gan_table1_verdicts.csv: damaged" in out[0]


def test_the_ranking_sentence_is_written_from_the_numbers():
    from paper_repro.results.reading import ranking_sentence

    frame = pd.DataFrame({"source": ["DGM", "DGM", "SDGM", "SDGM", "GAN own", "GAN own", "GAN M_g", "GAN M_g"],
                          "auroc": [90.0, 92.0, 88.0, 90.0, 60.0, 62.0, 70.0, 74.0]})
    text = ranking_sentence(frame, "source", "auroc", "image AUROC",
                            groups={"Defect-GAN": ["GAN own", "GAN M_g"], "pasted": ["DGM", "SDGM"]})
    assert text.startswith("By image AUROC (mean of 2 runs) the rows rank DGM 91.0 ± 1.4, SDGM 89.0 ± 1.4, "
                           "GAN M_g 72.0 ± 2.8 and GAN own 61.0 ± 1.4.")
    assert "DGM, is 30.0 points ahead of the last, GAN own" in text
    assert "Every Defect-GAN row is below every pasted row" in text and "by 17.0 points" in text
    # the same numbers the other way round: the sentence follows them
    flipped = frame.assign(auroc=200 - frame["auroc"])
    text = ranking_sentence(flipped, "source", "auroc", "image AUROC",
                            groups={"Defect-GAN": ["GAN own", "GAN M_g"], "pasted": ["DGM", "SDGM"]})
    assert "rank GAN own 139.0" in text and "Every Defect-GAN row is ahead of every pasted row" in text
    one = ranking_sentence(frame.iloc[::2], "source", "auroc", "image AUROC")
    assert "(one run)" in one and "no gap between rows is resolved" in one
    mixed = frame.assign(auroc=[90.0, 92.0, 60.0, 62.0, 95.0, 93.0, 70.0, 74.0])
    assert "overlap" in ranking_sentence(mixed, "source", "auroc", "x", groups={"a": ["GAN own", "GAN M_g"],
                                                                                   "b": ["DGM", "SDGM"]})


def test_a_curve_is_described_as_its_numbers_move():
    from paper_repro.results.reading import curve_trend, curves_sentence

    rising_then_flat = [0.0] * 10 + [0.1 * k for k in range(1, 40)] + [4.0] * 50
    assert curve_trend(rising_then_flat) == "rose from exactly 0 to 4 and levelled off"
    assert curve_trend([10 - 0.1 * k for k in range(100)]).startswith("fell from 9.55 to")
    assert curve_trend([10 - 0.1 * k for k in range(100)]).endswith("and was still falling")
    assert curve_trend([2.0, 2.05, 1.98, 2.01] * 10) == "stayed near 2.01"
    assert curve_trend([0.0] * 20) == "stayed near exactly 0"
    assert curve_trend([1e-5] * 20) == "stayed near below 0.001"
    log = pd.DataFrame({"G/rec": rising_then_flat, "G/adv": [1.0] * 99})
    text = curves_sentence(log, {"G/rec": "L_rec", "G/adv": "the generator's term", "G/sd": "L_sd"})
    assert text == ("In this run, L_rec rose from exactly 0 to 4 and levelled off; the generator's term stayed "
                    "near 1; L_sd was not logged.")


def test_the_columns_sentence_says_whether_the_columns_differ():
    import torch

    from paper_repro.results.reading import columns_sentence

    normal = torch.zeros(2, 3, 8, 8)
    same = {"Crack": normal + 0.5, "Spallation": normal + 0.5}
    text = columns_sentence(normal, same)
    assert text.startswith("Measured on these 2 images: a request changes the image by 25.0 % of its range")
    assert "differ from each other by 0.0 %, 0 % of that change" in text and "painted almost alike" in text
    apart = {"Crack": normal + 0.5, "Spallation": normal - 0.5}
    assert "clearly told apart" in columns_sentence(normal, apart)


def test_the_threshold_sentence_reads_the_maps():
    import torch

    from paper_repro.results.reading import threshold_sentence

    masks = torch.zeros(1, 1, 10, 10)
    masks[..., :2] = 1                                 # 20 defect pixels
    grey = torch.full((1, 1, 10, 10), 0.1)
    grey[..., :2] = 0.4                                # brighter on the defect, but below the cut
    text = threshold_sentence("tile", grey, masks, f1_at=0.0, f1_max=100.0)
    assert text.startswith("tile: the maps average 0.40 on the defect pixels and 0.10 elsewhere; 0 % of the defect "
                           "pixels and 0.0 % of the others lie above the cut at 0.5")
    assert "the maps stay below the cut on most defect pixels, so the cut's place" in text
    sharp = masks.clone()
    assert "close to the 100.0 of the best single cut" in threshold_sentence("x", sharp, masks, 100.0, 100.0)


def test_the_paper_gap_sentence_is_written_from_both_sides():
    from paper_repro.results.reading import Spread, paper_gap_sentence

    paper = {"Baseline+DGM": 78.0, "DADNet": 98.4}
    run = {"Baseline+DGM": Spread.of([94.0, 95.0]), "DADNet": Spread.of([96.0, 97.0])}
    text = paper_gap_sentence("image AUROC", paper, run)
    assert text.startswith("image AUROC: this run's rows lie between 1.9 points below and 16.5 points above the "
                           "paper's, most for Baseline+DGM (94.5 against 78.0)")
    assert "narrower than the gap" in text
    noisy = {"Baseline+DGM": Spread.of([10.0, 30.0]), "DADNet": Spread.of([20.0, 30.0])}
    text = paper_gap_sentence("pixel F1", {"Baseline+DGM": 25.4, "DADNet": 70.2}, noisy)
    assert "lie 5.4 to 45.2 points below the paper's" in text and "the seeds, not the rows, decide their order" in text


def test_the_landing_snapshot_counts_each_papers_verdicts():
    from paper_repro.results.reading import snapshot_sentence, verdict_counts

    frame = pd.DataFrame({"paper": ["Defect-GAN", "Defect-GAN", "DADNet"],
                          "verdict": ["holds", "not shown at this power", "contradicted"]})
    counts = verdict_counts(frame)
    assert counts.loc["Defect-GAN", "holds"] == 1 and counts.loc["DADNet", "claims"] == 1
    assert counts.loc["DADNet", "holds"] == 0
    assert snapshot_sentence(frame) == ("In this build, of Defect-GAN's 2 claims, 1 holds and 1 not shown at this "
                                        "power; of DADNet's 1 claim, 1 contradicted.")
    assert "No results chapter has recorded a verdict" in snapshot_sentence(frame.iloc[0:0])


def test_the_reconstruction_sentence_follows_the_contrast_kept():
    from paper_repro.results.reading import reconstruction_sentence

    flat = reconstruction_sentence(1 / 12, 4 / 3, {"tile": 0.2, "grass": 0.1})
    assert flat.startswith("The reconstructive network's bottleneck holds 0.08 numbers per number of its input here, "
                           "1.33 at the paper's widths and size. R keeps 15 % of the input's contrast (tile 20 %, grass 10 %)")
    assert "one-stage segmenter" in flat
    assert "is a blur" in reconstruction_sentence(0.5, 4 / 3, {"tile": 0.5})
    assert "keeps most of the detail" in reconstruction_sentence(1.3, 4 / 3, {"tile": 0.9})


def test_spreads_are_written_in_decimals_never_in_exponent_form():
    """A Table 1 verdict printed "287.2 ± 2.5e+02"; book --check fails on such a float."""
    from paper_repro.results.reading import Spread, significant

    assert str(Spread.of([37.2, 287.2, 537.2])) == "287.2 ± 250 (3 seeds)"
    assert [significant(v, d) for v, d in [(12345.6, 4), (0.00123, 2), (99.96, 3), (-2.91, 3), (0.0, 2)]] == [
        "12,350", "0.0012", "100", "-2.91", "0"]


def test_verdict_tables_show_p_to_three_decimals_not_the_tables_one():
    """The closing table printed an exact p of 0.042 as "0.0" (the results tables' one decimal)."""
    from paper_repro.results.reading import p_text, verdicts_view

    assert [p_text(p) for p in (0.0416667, 0.7, 0.0004)] == ["0.042", "0.700", "< 0.001"]
    html = verdicts_view(pd.DataFrame({"claim": ["a"], "verdict": ["holds"], "p": [0.0416667], "Holm p": [0.7]})).to_html()
    assert ">0.042<" in html and ">0.700<" in html and ">0.0<" not in html
