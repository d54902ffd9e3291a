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
