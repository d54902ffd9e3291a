"""The bundled synthetic-surfaces generator: layouts, determinism, defects aligned with their masks,
caching and atomic generation."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from paper_repro.config import PROFILES
from paper_repro.data import synthetic
from paper_repro.data.codebrim import CODEBRIM_CLASSES
from paper_repro.data.defects import CODEBRIM_TAGS, DEFECTS, paint
from paper_repro.data.textures import FAMILIES, texture
from paper_repro.errors import UserError


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mvtec_root(synthesized) -> Path:
    return synthesized("mvtec", categories=["tile", "wood"], size=32, n_train=3, n_test=2, seed=7)


@pytest.fixture(scope="module")
def codebrim_root(synthesized) -> Path:
    return synthesized("codebrim", size=32, n_train=9, n_test=3, seed=7)


def test_mvtec_layout_is_exact(mvtec_root):
    for cat in ("tile", "wood"):
        defects = synthetic.BUNDLED_CATEGORIES[cat]
        assert sorted(p.name for p in (mvtec_root / cat / "train" / "good").iterdir()) == ["000.png", "001.png", "002.png"]
        assert sorted(p.name for p in (mvtec_root / cat / "test").iterdir()) == sorted(("good", *defects))
        assert sorted(p.name for p in (mvtec_root / cat / "ground_truth").iterdir()) == sorted(defects)
        for d in defects:
            assert sorted(p.name for p in (mvtec_root / cat / "test" / d).iterdir()) == ["000.png", "001.png"]
            masks = sorted((mvtec_root / cat / "ground_truth" / d).iterdir())
            assert [p.name for p in masks] == ["000_mask.png", "001_mask.png"]
            for m in masks:
                arr = np.asarray(Image.open(m))
                assert arr.shape == (32, 32) and set(np.unique(arr)) <= {0, 255} and arr.max() == 255
        img = Image.open(mvtec_root / cat / "test" / "good" / "000.png")
        assert img.size == (32, 32) and img.mode == "RGB"
    assert not (mvtec_root / "carpet").exists()


def test_codebrim_layout_and_xml(codebrim_root):
    import xml.etree.ElementTree as ET

    n_files = 0
    for split, n in (("train", 9), ("val", 3), ("test", 3)):
        files = list((codebrim_root / split / "defects").glob("*.png")) + list((codebrim_root / split / "background").glob("*.png"))
        assert len(files) == n
        n_files += n
    names = {}
    for kind in ("defects", "background"):
        root = ET.parse(codebrim_root / "metadata" / f"{kind}.xml").getroot()
        for rec in root.iter("Defect"):
            assert [c.tag for c in rec] == list(CODEBRIM_CLASSES)
            values = [int(c.text) for c in rec]
            assert set(values) <= {0, 1}
            assert values[0] == (kind == "background") and (sum(values[1:]) > 0) == (kind == "defects")
            names[rec.get("name")] = kind
    assert len(names) == n_files
    for split in ("train", "val", "test"):
        for kind in ("defects", "background"):
            for p in (codebrim_root / split / kind).glob("*.png"):
                assert names[p.name] == kind


def test_same_seed_is_byte_identical_other_seed_differs(tmp_path, mvtec_root):
    again = synthetic.synthesize(tmp_path / "again", "mvtec", categories=["tile", "wood"], size=32, n_train=3,
                                 n_test=2, seed=7, progress=False, )
    assert tree_digest(again) == tree_digest(mvtec_root)
    other = synthetic.synthesize(tmp_path / "other", "mvtec", categories=["tile", "wood"], size=32, n_train=3,
                                 n_test=2, seed=8, progress=False)
    a, b = tree_digest(mvtec_root), tree_digest(other)
    pngs = [k for k in a if k.endswith(".png")]
    assert a.keys() == b.keys() and all(a[k] != b[k] for k in pngs)


def test_parallel_and_serial_writers_agree(tmp_path):
    kw = dict(size=24, n_train=90, n_test=10, seed=3, progress=False)
    serial = synthetic.write_codebrim(tmp_path / "serial", workers=1, **kw)
    parallel = synthetic.write_codebrim(tmp_path / "parallel", workers=2, **kw)
    assert tree_digest(serial) == tree_digest(parallel)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_textures_vary_and_stay_in_range(family):
    a = texture(family, np.random.default_rng(0), 48)
    b = texture(family, np.random.default_rng(1), 48)
    assert a.shape == (48, 48, 3) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1 and np.isfinite(a).all()
    assert a.std() > 0.01  # textured, not flat
    assert np.abs(a - b).mean() > 0.005  # another draw is another surface


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_defect_changes_pixels_where_its_mask_is(defect):
    """Mask alignment: the composition changes the surface mostly inside the (slightly dilated) mask,
    and changes it clearly there (not an invisible defect)."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        surface = texture("concrete", rng, 96)
        painted, mask = paint(surface.copy(), defect, rng)
        assert mask.dtype == bool and mask.sum() >= 0.0015 * mask.size
        change = np.abs(painted - surface).sum(-1)
        near = ndimage.binary_dilation(mask, iterations=3)
        assert change[near].sum() / change.sum() > 0.8, "most of the change lies at the defect"
        assert change[mask].mean() > 0.08, "the defect is visible inside its mask"
        assert change[~near].mean() < 0.02


def test_render_masks_are_binary_and_sized():
    rng = np.random.default_rng(0)
    image, mask = synthetic.render("concrete", ["crack", "corrosion_stain"], 40, rng)
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    assert mask.shape == (40, 40) and set(np.unique(mask)) == {0, 255}
    image, mask = synthetic.render("wood", [], 40, rng)
    assert mask.max() == 0


def test_codebrim_labels_are_multi_label():
    assert synthetic.codebrim_labels([]) == [1, 0, 0, 0, 0, 0]
    assert synthetic.codebrim_labels(["crack", "corrosion_stain"]) == [0, 1, 0, 0, 0, 1]
    assert synthetic.codebrim_labels(["exposed_bars"]) == [0, 0, 1, 0, 1, 0]  # bars lie in a spall
    sets = [synthetic.codebrim_defect_set(np.random.default_rng(i)) for i in range(200)]
    assert any(len(s) >= 2 for s in sets) and all(set(s) <= set(CODEBRIM_TAGS) for s in sets)


def test_bundled_root_caches_by_layout_scale_seed_code_and_sizes(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path))
    monkeypatch.setitem(PROFILES["bundled_data"][1], "smoke", dict(size=24, n_train=2, n_test=1, codebrim_train=6,
                                                                     codebrim_test=3))
    root = synthetic.bundled_root("mvtec", "smoke", seed=5)
    assert root.parent == tmp_path / "data"
    info = json.loads((root / "SYNTHETIC.json").read_text())
    assert info["generator_code"] == synthetic.generator_code() and info["seed"] == 5
    assert {"tile", "wood", "carpet", "leather"} <= {p.name for p in root.iterdir() if p.is_dir()}
    stamp = (root / "tile" / "train" / "good" / "000.png").stat().st_mtime_ns
    assert synthetic.bundled_root("mvtec", "smoke", seed=5) == root  # cached: not regenerated
    assert (root / "tile" / "train" / "good" / "000.png").stat().st_mtime_ns == stamp
    assert synthetic.bundled_root("mvtec", "smoke", seed=6) != root
    assert synthetic.bundled_root("codebrim", "smoke", seed=5) != root
    monkeypatch.setattr(synthetic, "generator_code", lambda: "edited0000")   # textures.py or defects.py changed
    newer = synthetic.bundled_root("mvtec", "smoke", seed=5)
    assert newer != root and (newer / "SYNTHETIC.json").is_file()
    # a changed size profile gets its own folder instead of the stale one
    monkeypatch.setitem(PROFILES["bundled_data"][1], "smoke", dict(size=24, n_train=2, n_test=2, codebrim_train=6,
                                                                     codebrim_test=3))
    resized = synthetic.bundled_root("mvtec", "smoke", seed=5)
    assert resized != newer and json.loads((resized / "SYNTHETIC.json").read_text())["n_test"] == 2


def test_interrupted_generation_leaves_nothing_that_looks_complete(monkeypatch, tmp_path):
    calls = {"n": 0}
    real = synthetic._mvtec_job

    def dying(job):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(synthetic, "_mvtec_job", dying)
    out = tmp_path / "set"
    with pytest.raises(KeyboardInterrupt):
        synthetic.synthesize(out, "mvtec", categories=["tile"], size=24, n_train=4, n_test=1, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too


def test_synthesize_refuses_to_overwrite(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="busy"):
        synthetic.synthesize(tmp_path / "busy", "mvtec", categories=["tile"], size=24, n_train=2, n_test=1,
                             progress=False)
    assert (tmp_path / "busy" / "keep.txt").exists()


def test_a_set_another_process_finished_first_is_kept(monkeypatch, tmp_path):
    # Two processes (chapters, DDP ranks) generating the same cached set: the one that finishes
    # second must not replace the first one's folder, which the first may already be reading.
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path))
    monkeypatch.setitem(PROFILES["bundled_data"][1], "smoke", dict(size=24, n_train=2, n_test=1, codebrim_train=6,
                                                                     codebrim_test=3))
    real = synthetic.write_mvtec
    first: dict[str, object] = {}

    def slow_write(out, *args, **kwargs):
        if not first:  # while this process writes, another one completes the same set
            monkeypatch.setattr(synthetic, "write_mvtec", real)
            first["root"] = synthetic.bundled_root("mvtec", "smoke", seed=5)
            first["inode"] = (first["root"] / "tile" / "train" / "good" / "000.png").stat().st_ino
        return real(out, *args, **kwargs)

    monkeypatch.setattr(synthetic, "write_mvtec", slow_write)
    root = synthetic.bundled_root("mvtec", "smoke", seed=5)
    assert root == first["root"]
    assert (root / "tile" / "train" / "good" / "000.png").stat().st_ino == first["inode"]  # not replaced
    assert [p.name for p in (tmp_path / "data").iterdir()] == [root.name]  # no partial folder left


@pytest.mark.parametrize("damage", ["deleted", "flipped byte", "truncated", "added", "marker without digests"])
def test_a_damaged_bundled_data_set_is_named_and_generated_again(damage, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path))
    monkeypatch.setitem(PROFILES["bundled_data"][1], "smoke", dict(size=24, n_train=2, n_test=1, codebrim_train=6,
                                                                     codebrim_test=3))
    root = synthetic.bundled_root("mvtec", "smoke", seed=5)
    whole = json.loads((root / "SYNTHETIC.json").read_text())["files"]
    image = root / "tile" / "train" / "good" / "000.png"
    if damage == "deleted":
        image.unlink()
    elif damage == "flipped byte":
        data = bytearray(image.read_bytes())
        data[len(data) // 2] ^= 0xFF
        image.write_bytes(bytes(data))
    elif damage == "truncated":
        image.write_bytes(image.read_bytes()[:40])
    elif damage == "added":
        (root / "tile" / "train" / "good" / "stray.png").write_bytes(image.read_bytes())
    else:
        info = json.loads((root / "SYNTHETIC.json").read_text())
        del info["files"]
        (root / "SYNTHETIC.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert synthetic.bundled_root("mvtec", "smoke", seed=5) == root
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"regenerating the bundled data: {root} has")
    assert json.loads((root / "SYNTHETIC.json").read_text())["files"] == whole   # the same set, byte for byte
    assert synthetic.damaged_files(root) == []
