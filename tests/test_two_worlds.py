"""The bundled set's two worlds (procedural and photographed categories) and the three-seed sentences
the DADNet training chapter prints against its bar."""
from pathlib import Path

import pandas as pd

from paper_repro.data.photographs import PHOTOGRAPHS
from paper_repro.data.roots import DataSource
from paper_repro.experiments.detectors import world_of
from paper_repro.results.reading import target_sentences


def test_each_bundled_category_names_its_world_and_other_data_is_the_users():
    bundled = DataSource(Path("."), "bundled", "mvtec", True)
    assert {world_of(name, bundled) for name in PHOTOGRAPHS} == {"photographed"}
    assert world_of("tile", bundled) == world_of("wood", bundled) == "procedural"
    assert world_of("grass", DataSource(Path("."), "mine", "mvtec", False)) == "your data"


def test_target_sentences_state_mean_spread_and_shortfall_from_the_numbers():
    frame = pd.DataFrame({"category": ["tile"] * 3 + ["grass"] * 3,
                          "world": ["procedural"] * 3 + ["photographed"] * 3,
                          "image_auroc": [96.0, 97.0, 98.0, 70.0, 74.0, 78.0],
                          "pixel_auroc": [94.0, 95.0, 96.0, 80.0, 80.0, 80.0]})
    tile, grass = target_sentences(frame, {"image_auroc": 95.0, "pixel_auroc": 93.0})
    # tile: means 97.0 and 95.0, sample sd 1.0 and 1.0: both targets met
    assert tile == "tile (procedural, 3 seeds): image AUROC 97.0 ± 1.0, pixel AUROC 95.0 ± 1.0; meets every target."
    # grass: image mean 74.0 (sd 4.0), 21.0 short of 95; pixel 80.0 (sd 0.0), 13.0 short of 93
    assert grass == ("grass (photographed, 3 seeds): image AUROC 74.0 ± 4.0, pixel AUROC 80.0 ± 0.0; "
                     "falls short: image AUROC by 21.0 points, pixel AUROC by 13.0 points.")


def test_one_seed_has_no_spread_to_state():
    one = pd.DataFrame({"category": ["tile"], "world": ["procedural"], "image_auroc": [90.0], "pixel_auroc": [99.0]})
    assert target_sentences(one, {"image_auroc": 95.0, "pixel_auroc": 93.0}) == [
        "tile (procedural, 1 seed): image AUROC 90.0, pixel AUROC 99.0; falls short: image AUROC by 5.0 points."]


def test_changed_share_counts_pixels_by_their_largest_channel_change():
    import torch

    from paper_repro.book.showcase import change_summary, changed_share

    before = torch.zeros(2, 3, 4, 4)
    after = before.clone()
    after[0, 2, :2, :] = 0.5       # 8 of 16 pixels of image 0, one channel
    after[1, 0, 0, 0] = 0.05       # below the 0.1 threshold
    assert changed_share(before, after) == 8 / 32
    assert change_summary({"A": 0.005, "B": 0.25, "C": 0.9}, 500) == (
        "After 500 iterations, by more than 0.1 in [0, 1] units: A changed 0.5 % of the pixels (almost nothing); "
        "B changed 25.0 % of the pixels (a part of the image); C changed 90.0 % of the pixels (most of the image).")
