"""Defect-GAN Tables 1-2: the FID features at every scale, and the verdicts the chapters record."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from paper_repro.experiments import defect_gan_tables_1_2 as tables
from paper_repro.results.reading import NOT_SHOWN, NOT_TESTABLE, Spread
from paper_repro.weights import WeightsMissing

BOOK = Path(__file__).resolve().parents[1] / "book" / "defect_gan"


def test_full_tables_stop_without_inception_in_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("PAPER_REPRO_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))   # an empty torch hub cache
    with pytest.raises(WeightsMissing) as err:
        tables.table_extractor("full", codebrim=None, image_size=128)
    message = str(err.value)
    assert "\n" not in message and "Inception-v3 weights not found" in message and "fetch:" in message
    assert "weights-inception-2015-12-05" in message


@pytest.mark.parametrize("chapter, call", [("table1_fid.ipynb", "table1(ctx)"), ("table2_ablation.ipynb", "table2(ctx)")])
def test_the_table_chapters_choose_their_features_before_anything_trains(chapter, call):
    """Each chapter gets its table from one call of its experiment, which resolves the FID features (and so,
    at full, stops on missing Inception weights) before it trains anything; the chapter trains nothing itself."""
    import inspect

    cells = ["".join(c["source"]) for c in json.loads((BOOK / chapter).read_text())["cells"] if c["cell_type"] == "code"]
    assert any(f"defect_gan_tables_1_2.{call}" in c for c in cells)
    assert not any("train_variant(" in c or "train_unconditional(" in c for c in cells)
    assert not any('resolve_extractor("auto"' in c for c in cells)   # the profile decides, at every scale
    function = getattr(tables, call.split("(")[0])
    source = inspect.getsource(function)
    assert source.index("_setting(ctx)") < min(source.index(t) for t in ("train_variant(", "train_unconditional(")
                                               if t in source)
    assert "table_extractor(" in inspect.getsource(tables._setting)


def test_table1_leaves_the_ideal_row_out_of_the_ranking():
    paper = {"CycleGAN": 94.5, "StarGAN": 295.1, "StarGAN + SPADE": 103.0, "Defect-GAN": 65.6, tables.IDEAL: 25.0}
    ours = {"CycleGAN": 90, "StarGAN": 120, "StarGAN + SPADE": 100, "Defect-GAN": 80, tables.IDEAL: 10}
    scores = pd.DataFrame([{"method": m, "seed": s, "fid": v + 15 * s} for m, v in ours.items() for s in range(3)])
    found = tables.table1_verdicts(scores, paper)
    ordering, best = found
    assert tables.IDEAL not in ordering.answer and "over 4 rows" in ordering.deciding
    # four generators in the paper's exact order: p = 1/24, below 0.05
    assert ordering.verdict == "holds" and ordering.p == pytest.approx(1 / 24)
    assert best.verdict == NOT_SHOWN and "seeds a side would detect the paper's" in best.deciding


def test_table2_three_rows_are_not_testable_and_lwc_plans_its_seeds():
    paper = {"SCC": 103.0, "SCC+LWC": 76.8, "SCC+ANI+LWC+SC": 65.6}
    per_row = {"SCC": Spread.of([100, 130, 90]), "SCC+LWC": Spread.of([95, 120, 85]),
               "SCC+ANI+LWC+SC": Spread.of([80, 110, 70])}
    found = tables.table2_verdicts(per_row, paper)
    assert found[0].verdict == NOT_TESTABLE
    assert found[1].verdict == NOT_SHOWN and "the paper's 25 % applied to this run" in found[1].deciding
