"""The results chapters through the real runner, as a user calls it:
``python -m paper_repro reproduce --scale smoke --only <chapter>`` for every table chapter of both
papers and the bridge. Trained smoke runs land in the shared cache, so nbval reuses them later."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

# chapter -> the tables it must write (stems under <out>/tables)
TABLE_CHAPTERS = {
    "defect_gan/table1_fid": ["defect_gan_table1"],
    "defect_gan/table2_ablation": ["defect_gan_table2"],
    "defect_gan/table3_detection": ["defect_gan_table3"],
    "dadnet/tables_1_3": ["dadnet_table1_baselines", "dadnet_table2_baselines", "dadnet_table3_baselines"],
    "dadnet/table4_ablation": ["dadnet_table4_image_auroc", "dadnet_table4_pixel_auroc", "dadnet_table4_pixel_f1"],
    "bridge": ["bridge_pseudo_sources"],
}


@pytest.fixture(scope="module")
def smoke_tables(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce_smoke")
    command = [sys.executable, "-m", "paper_repro", "reproduce", "--scale", "smoke", "--out", str(out)]
    for chapter in TABLE_CHAPTERS:
        command += ["--only", chapter]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    return out, result


def test_every_table_chapter_runs_at_smoke_through_the_runner(smoke_tables):
    out, result = smoke_tables
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(TABLE_CHAPTERS)} done, 0 skipped, 0 failed" in result.stdout
    for chapter in TABLE_CHAPTERS:
        assert (out / "notebooks" / f"{chapter}.ipynb").is_file(), chapter
        marker = json.loads((out / ".done" / f"{chapter}.json").read_text())
        assert marker["parameters"]["scale"] == "smoke"


@pytest.mark.parametrize("chapter", TABLE_CHAPTERS)
def test_each_table_chapter_writes_paper_beside_this_run(smoke_tables, chapter):
    out, result = smoke_tables
    assert result.returncode == 0, result.stderr[-3000:]
    for stem in TABLE_CHAPTERS[chapter]:
        table = pd.read_csv(out / "tables" / f"{stem}.csv")
        markdown = (out / "tables" / f"{stem}.md").read_text()
        assert len(table) > 0, stem
        if chapter == "bridge":  # no paper ran it: every row says so
            assert table["source_note"].str.contains("no paper ran this").all(), stem
        else:
            assert {"paper", "this run"} <= set(table.columns), (stem, list(table.columns))
            assert table["source"].str.contains("Table").all(), f"{stem}: a row does not cite its table"
        assert "smoke" in markdown, f"{stem}.md does not name its scale"
