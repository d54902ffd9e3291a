"""The real-data loaders read the bundled set exactly as they read MVTec AD and CODEBRIM: counts,
label vectors, mask alignment, value ranges, grayscale categories, the balanced CODEBRIM variant."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from paper_repro.config import get_config
from paper_repro.data import CODEBRIM, MVTecAD, NormalPool, synthetic
from paper_repro.data.codebrim import read_metadata, record_name

N_TRAIN, N_TEST = 3, 2


@pytest.fixture(scope="module")
def mvtec_root(synthesized) -> Path:
    return synthesized("mvtec", categories=["tile", "carpet"], size=40, n_train=N_TRAIN, n_test=N_TEST, seed=1)


@pytest.fixture(scope="module")
def codebrim_root(synthesized) -> Path:
    return synthesized("codebrim", size=40, n_train=12, n_test=6, seed=1)


def test_mvtec_counts_labels_and_ranges(mvtec_root):
    for cat in ("tile", "carpet"):
        train = MVTecAD(mvtec_root, cat, "train", image_size=32)
        test = MVTecAD(mvtec_root, cat, "test", image_size=32)
        defects = synthetic.BUNDLED_CATEGORIES[cat]
        assert len(train) == N_TRAIN and len(test) == N_TEST * (1 + len(defects))
        assert test.defect_types == sorted(("good", *defects))
        assert test.labels.sum().item() == N_TEST * len(defects)
        for i in range(len(test)):
            item = test[i]
            assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
            assert 0 <= item["image"].min() and item["image"].max() <= 1
            assert item["mask"].shape == (1, 32, 32)
            assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
            assert item["label"] == int(item["defect_type"] != "good")
            assert (item["mask"].sum() > 0) == bool(item["label"])
            assert Path(item["path"]).parent.name == item["defect_type"]
        assert all(train[i]["label"] == 0 and train[i]["mask"].sum() == 0 for i in range(len(train)))


def test_mvtec_mask_alignment_with_files(mvtec_root):
    test = MVTecAD(mvtec_root, "tile", "test", image_size=None)
    for i in range(len(test)):
        item = test[i]
        if item["label"] == 0:
            continue
        path = Path(item["path"])
        mask_file = path.parents[2] / "ground_truth" / path.parent.name / f"{path.stem}_mask.png"
        expected = np.asarray(Image.open(mask_file)) > 127
        assert torch.equal(item["mask"][0], torch.from_numpy(expected.astype(np.float32)))
        pixels = np.asarray(Image.open(path), dtype=np.float32) / 255
        assert torch.allclose(item["image"], torch.from_numpy(pixels).permute(2, 0, 1))


def test_mvtec_normalisation_and_batching(mvtec_root):
    plain = MVTecAD(mvtec_root, "tile", "test", image_size=32)
    norm = MVTecAD(mvtec_root, "tile", "test", image_size=32, normalize="imagenet")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(norm[0]["image"], (plain[0]["image"] - mean) / std, atol=1e-6)
    batch = next(iter(DataLoader(plain, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 1, 32, 32)
    assert len(batch["defect_type"]) == 4


def test_mvtec_defect_type_filter(mvtec_root):
    only = MVTecAD(mvtec_root, "tile", "test", image_size=16, defect_types=["good", "crack"])
    assert only.defect_types == ["crack", "good"] and len(only) == 2 * N_TEST


def test_mvtec_grayscale_category_becomes_three_channels(tmp_path):
    root = tmp_path / "mvtec"
    for folder in ("screw/train/good", "screw/test/good", "screw/test/scratch_head", "screw/ground_truth/scratch_head"):
        (root / folder).mkdir(parents=True)
    gray = Image.fromarray(np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1)), mode="L")
    gray.save(root / "screw/train/good/000.png")
    gray.save(root / "screw/test/good/000.png")
    gray.save(root / "screw/test/scratch_head/000.png")
    mask = np.zeros((48, 48), np.uint8)
    mask[10:20, 5:30] = 255
    Image.fromarray(mask).save(root / "screw/ground_truth/scratch_head/000_mask.png")
    ds = MVTecAD(root, "screw", "test", image_size=24)
    item = next(ds[i] for i in range(len(ds)) if ds[i]["label"] == 1)
    assert item["image"].shape == (3, 24, 24)
    assert torch.equal(item["image"][0], item["image"][1]) and torch.equal(item["image"][1], item["image"][2])
    assert item["mask"][0].numpy().astype(bool).tolist() == (mask[1::2, 1::2] > 0).tolist()  # nearest: centres


def test_codebrim_counts_and_labels_follow_xml(codebrim_root):
    meta = {**read_metadata(codebrim_root / "metadata" / "defects.xml"),
            **read_metadata(codebrim_root / "metadata" / "background.xml")}
    total = 0
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        ds = CODEBRIM(codebrim_root, split, image_size=32)
        assert len(ds) == n
        total += n
        for i in range(len(ds)):
            item = ds[i]
            assert item["image"].shape == (3, 32, 32) and 0 <= item["image"].min() and item["image"].max() <= 1
            assert item["labels"].shape == (6,) and item["labels"].dtype == torch.float32
            assert item["labels"].tolist() == meta[Path(item["path"]).name]
            is_background = Path(item["path"]).parent.name == "background"
            assert item["labels"][0].item() == float(is_background)
            assert (item["labels"][1:].sum() > 0).item() != is_background
        assert ds.labels.shape == (n, 6)
    assert total == len(meta)


def test_codebrim_reads_labels_by_tag_name_not_position(codebrim_root, tmp_path):
    root = tmp_path / "shuffled"
    shutil.copytree(codebrim_root, root)
    xml = root / "metadata" / "defects.xml"
    tree = ET.parse(xml)
    for rec in tree.getroot().iter("Defect"):
        children = list(rec)
        for c in children:
            rec.remove(c)
        for c in reversed(children):  # CorrosionStain first ... Background last
            rec.append(c)
    tree.write(xml)
    a, b = CODEBRIM(codebrim_root, "train", image_size=16), CODEBRIM(root, "train", image_size=16)
    assert torch.equal(a.labels, b.labels)


def test_codebrim_balanced_variant_suffixes(codebrim_root, tmp_path):
    root = tmp_path / "classification_dataset_balanced"
    shutil.copytree(codebrim_root, root)
    folder = root / "train" / "defects"
    first = sorted(folder.glob("*.png"))[0]
    for k in (1, 2):
        shutil.copy(first, folder / f"{first.stem}_-_{k}.png")
    first.unlink()
    assert record_name(folder / f"{first.stem}_-_2.png") == first.name
    ds = CODEBRIM(tmp_path, "train", image_size=16)  # parent folder: the variant is found inside it
    copies = [lab for path, lab in ds.samples if path.name.startswith(first.stem)]
    assert len(copies) == 2 and copies[0] == read_metadata(root / "metadata" / "defects.xml")[first.name]
    assert len(ds) == 12 + 1


def test_normal_pool_generated_and_from_folder(codebrim_root):
    pool = NormalPool(None, 5, image_size=24, seed=3)
    assert len(pool) == 5 and pool[2]["image"].shape == (3, 24, 24)
    assert torch.equal(pool[2]["image"], NormalPool(None, 5, image_size=24, seed=3)[2]["image"])
    assert not torch.equal(pool[2]["image"], NormalPool(None, 5, image_size=24, seed=4)[2]["image"])
    assert not torch.equal(pool[1]["image"], pool[2]["image"])
    wood = NormalPool(None, 2, image_size=24, seed=3, family="wood")
    assert not torch.equal(wood[0]["image"], pool[0]["image"])
    crops = NormalPool(codebrim_root / "train" / "background", 50, image_size=16, seed=0)
    item = crops[7]
    assert item["image"].shape == (3, 16, 16) and 0 <= item["image"].min() and item["image"].max() <= 1
    assert torch.equal(item["image"], crops[7]["image"])
    with pytest.raises(IndexError):
        crops[50]


def test_bundled_root_loads_through_real_loaders(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path))
    root = synthetic.bundled_root("mvtec", "smoke")
    sizes = get_config("bundled_data", "smoke")
    for cat in ("tile", "wood", "carpet"):
        assert len(MVTecAD(root, cat, "train", image_size=32)) == sizes.n_train
    croot = synthetic.bundled_root("codebrim", "smoke")
    assert len(CODEBRIM(croot, "train", image_size=32)) == sizes.codebrim_train
