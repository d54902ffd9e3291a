"""Photographed categories of the bundled MVTec-layout set (paper_repro.data.photographs): deterministic by
seed, training and test crops from disjoint bands of the photograph, defects aligned with their masks,
read by the MVTec AD loader, sources and licences in SYNTHETIC.json, and the procedural categories
unchanged by their presence."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paper_repro.data import photographs, synthetic
from paper_repro.data.defects import paint
from paper_repro.data.mvtec import MVTecAD

PHOTOGRAPHED = list(synthetic.PHOTOGRAPHED_CATEGORIES)
SIZE, N_TRAIN, N_TEST, SEED = 32, 3, 2, 7


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != synthetic.MARKER}


@pytest.fixture(scope="module")
def photographed_root(synthesized) -> Path:
    return synthesized("mvtec", categories=PHOTOGRAPHED, size=SIZE, n_train=N_TRAIN, n_test=N_TEST, seed=SEED,
                       n_extra=2)


def test_same_seed_same_bytes_other_seed_other_bytes(photographed_root, synthesized):
    again = synthesized("mvtec", categories=PHOTOGRAPHED, size=SIZE, n_train=N_TRAIN, n_test=N_TEST, seed=SEED,
                        n_extra=2)
    assert tree_digest(again) == tree_digest(photographed_root)
    other = synthesized("mvtec", categories=["brick"], size=SIZE, n_train=N_TRAIN, n_test=N_TEST, seed=SEED + 1)
    first, second = tree_digest(photographed_root), tree_digest(other)
    assert all(first[name] != second[name] for name in second)


def test_train_and_test_bands_are_disjoint():
    (a0, a1), (b0, b1) = photographs.REGIONS["train"], photographs.REGIONS["test"]
    assert a1 <= b0 and 0 <= a0 and b1 <= photographs.SIDE
    for name in photographs.PHOTOGRAPHS:
        train, test = photographs.region(name, "train"), photographs.region(name, "test")
        assert not np.shares_memory(train, test)
        assert np.shares_memory(photographs.region(name, "extra_normal"), train)
        for split, (x0, x1) in (("train", (a0, a1)), ("test", (b0, b1))):
            for k in range(40):  # every sample point, with its bilinear neighbour, inside the split's band
                rng = np.random.default_rng(k)
                ys, xs, _ = photographs.sample_grid(name, split, rng, 64 if k % 2 else 256)
                assert ys.min() >= 0 and np.floor(ys.max()) + 1 <= photographs.SIDE - 1
                assert xs.min() >= 0 and np.floor(xs.max()) + 1 <= (x1 - x0) - 1


def test_crops_vary_and_keep_the_photographs_gray():
    crops = [photographs.crop("gravel", "train", np.random.default_rng(k), 48) for k in range(4)]
    assert all(c.shape == (48, 48, 3) and c.dtype == np.float32 for c in crops)
    assert all(np.array_equal(c[..., 0], c[..., 2]) for c in crops)
    assert min(np.abs(a - b).mean() for i, a in enumerate(crops) for b in crops[i + 1:]) > 0.02


def test_masks_are_the_painted_defects(photographed_root):
    for cat in PHOTOGRAPHED:
        for kind in synthetic.PHOTOGRAPHED_CATEGORIES[cat]:
            if kind == "combined":
                continue
            for i in range(N_TEST):
                saved = np.asarray(Image.open(photographed_root / cat / "ground_truth" / kind / f"{i:03d}_mask.png"))
                assert saved.shape == (SIZE, SIZE) and set(np.unique(saved)) == {0, 255}
                # the job's own generator: the same surface, the same defect, before light and noise
                rng = synthetic._rng(SEED, "mvtec", cat, "test", kind, i)
                surface = synthetic.surface(cat, SIZE, rng, "test")
                painted, mask = paint(surface, kind, rng)
                assert np.array_equal(mask, saved == 255)
                change = np.abs(painted - surface).mean(-1)
                assert change[mask].mean() > 3 * change[~mask].mean() + 0.01


def test_the_mvtec_loader_reads_them(photographed_root):
    for cat in PHOTOGRAPHED:
        train = MVTecAD(photographed_root, cat, "train", image_size=SIZE)
        test = MVTecAD(photographed_root, cat, "test", image_size=SIZE)
        defects = synthetic.PHOTOGRAPHED_CATEGORIES[cat]
        assert len(train) == N_TRAIN and len(test) == N_TEST * (1 + len(defects))
        assert test.defect_types == sorted(("good", *defects))
        for i in range(len(test)):
            item = test[i]
            assert item["image"].shape == (3, SIZE, SIZE)
            assert (item["mask"].sum() > 0) == bool(item["label"])
        assert len(list((photographed_root / cat / "extra_normal").glob("*.png"))) == 2


def test_marker_names_source_and_licence(photographed_root, synthesized):
    info = json.loads((photographed_root / synthetic.MARKER).read_text())
    assert sorted(info["photographs"]) == sorted(PHOTOGRAPHED)
    for name, record in info["photographs"].items():
        assert record["licence"] == "Creative Commons CC0 1.0"
        assert record["source"].startswith(("CC0Textures", "DeviantArt")) and "https://" in record["source"]
        assert record["file"] == f"skimage/data/{name}.png" and len(record["sha256"]) == 64
        assert record["train_columns"] == list(photographs.REGIONS["train"])
    procedural = synthesized("mvtec", categories=["tile"], size=SIZE, n_train=2, n_test=1, seed=SEED)
    assert "photographs" not in json.loads((procedural / synthetic.MARKER).read_text())


def test_procedural_categories_do_not_change_with_photographed_ones(synthesized):
    procedural = ["tile", "concrete"]
    alone = synthesized("mvtec", categories=procedural, size=SIZE, n_train=N_TRAIN, n_test=N_TEST, seed=SEED)
    mixed = synthesized("mvtec", categories=procedural + PHOTOGRAPHED, size=SIZE, n_train=N_TRAIN, n_test=N_TEST,
                        seed=SEED)
    mixed_digest = tree_digest(mixed)
    alone_digest = tree_digest(alone)
    assert alone_digest and alone_digest == {k: v for k, v in mixed_digest.items() if k.split("/")[0] in procedural}
    # and a procedural surface ignores the split that picks a photograph's band
    for split in ("test", "extra_normal"):
        assert np.array_equal(synthetic.render("wood", ["scratch"], SIZE, np.random.default_rng(3))[0],
                              synthetic.render("wood", ["scratch"], SIZE, np.random.default_rng(3), split)[0])


def test_the_bundled_set_holds_every_category_and_demo_tables_report_both_worlds():
    """smoke keeps procedural categories; demo's tables hold one procedural and one photographed category."""
    from paper_repro.config import get_config

    assert list(synthetic.BUNDLED_CATEGORIES) == list(synthetic.PROCEDURAL_CATEGORIES) + PHOTOGRAPHED
    assert synthetic._check_categories(None) == list(synthetic.BUNDLED_CATEGORIES)
    for profile in ("dadnet", "baselines"):
        assert not set(get_config(profile, "smoke").categories) & set(PHOTOGRAPHED)
        demo = get_config(profile, "demo").categories
        assert len(set(demo) & set(PHOTOGRAPHED)) == 1 and len(set(demo) & set(synthetic.PROCEDURAL_CATEGORIES)) == 1
