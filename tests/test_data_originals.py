"""Defect-GAN §4.1's 50,000 extra normals, cropped from CODEBRIM's original photographs (issue 16 item 5).

The photographs here are a miniature of ``CODEBRIM_original_images.zip`` written by
``synthetic.write_codebrim_originals``: procedural concrete with painted defects, boxes in the
annotation format the research found (Pascal-VOC ``<object>`` with a ``<Defect>`` block and a
``<bndbox>``)."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paper_repro.config import get_config
from paper_repro.data import CODEBRIMOriginals, DefectFreeCrops, find_originals, resolve_data
from paper_repro.data.io import read_image
from paper_repro.data.originals import WINDOW_FRACTION, overlaps, read_boxes
from paper_repro.data.roots import DataSource
from paper_repro.data.synthetic import write_codebrim_originals
from paper_repro.defect_gan.data import EXTRA_NORMALS_SOURCES, load_training_data
from paper_repro.errors import UserError


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> Path:
    return write_codebrim_originals(tmp_path_factory.mktemp("zip"), n=4, height=192, seed=1)


@pytest.fixture(scope="module")
def codebrim(synthesized) -> Path:
    return synthesized("codebrim", size=16, n_train=9, n_test=3, seed=2)


def annotation(objects: str) -> str:
    return f"<annotation><filename>x.jpg</filename>{objects}</annotation>"


DEFECT = "<Defect><Background>0</Background><Crack>1</Crack><Spallation>0</Spallation>" \
         "<Efflorescence>0</Efflorescence><ExposedBars>0</ExposedBars><CorrosionStain>0</CorrosionStain></Defect>"
BACKGROUND = DEFECT.replace("<Background>0", "<Background>1").replace("<Crack>1", "<Crack>0")


# ---- the archive ---------------------------------------------------------------------------------
def test_the_miniature_archive_has_the_published_layout(originals):
    assert originals.name == "original_dataset"
    images = sorted(p.name for p in (originals / "images").iterdir())
    assert images == [f"image_{k:07d}.jpg" for k in range(1, 5)]
    assert sorted(p.stem for p in (originals / "annotations").iterdir()) == [Path(n).stem for n in images]
    sizes = {Image.open(originals / "images" / n).size for n in images}
    assert (256, 192) in sizes and (192, 256) in sizes  # both orientations, as in CODEBRIM
    archive = CODEBRIMOriginals(originals)
    assert len(archive) == 4 and all(photo.boxes for photo in archive.photographs)
    for photo in archive.photographs:
        w, h = photo.size
        assert all(0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h for x0, y0, x1, y1 in photo.boxes)


def test_annotations_are_read_by_name_and_otherwise_by_position(tmp_path):
    xml = tmp_path / "a.xml"
    def obj(block: str, box: str) -> str:
        return f"<object>{block}<bndbox>{box}</bndbox></object>"

    by_name = obj(DEFECT, "<ymin>20</ymin><xmin>10</xmin><ymax>40.0</ymax><xmax>30</xmax>")
    positional = obj(DEFECT.lower(), "<left>1</left><top>2</top><right>3</right><bottom>4</bottom>")
    no_block = obj("<name>crack</name>", "<xmin>5</xmin><ymin>5</ymin><xmax>9</xmax><ymax>9</ymax>")
    background = obj(BACKGROUND, "<xmin>0</xmin><ymin>0</ymin><xmax>50</xmax><ymax>50</ymax>")
    xml.write_text(annotation(by_name + positional + no_block + background))
    # defect boxes only; a Background-only box is not avoided; an object without a Defect block is
    assert read_boxes(xml) == ((10, 20, 30, 40), (1, 2, 3, 4), (5, 5, 9, 9))
    xml.write_text(f'<annotation xmlns="urn:x"><object>{DEFECT}<bndbox><xmin>9</xmin><ymin>8</ymin>'
                   f'<xmax>1</xmax><ymax>2</ymax></bndbox></object></annotation>')
    assert read_boxes(xml) == ((1, 2, 9, 8),)  # namespaced, corners given the wrong way round


@pytest.mark.parametrize("text", [annotation(f"<object>{DEFECT}<bndbox><xmin>a</xmin></bndbox></object>"),
                                  annotation(f"<object>{DEFECT}</object>"), "<annotation><object>"])
def test_an_unreadable_annotation_is_one_line_naming_the_file(tmp_path, text):
    xml = tmp_path / "bad.xml"
    xml.write_text(text)
    with pytest.raises(UserError) as err:
        read_boxes(xml)
    assert str(xml) in str(err.value) and "\n" not in str(err.value)


def test_macos_companions_are_ignored_and_unannotated_photographs_skipped(originals, tmp_path):
    root = shutil.copytree(originals, tmp_path / "original_dataset")
    (root / "images" / "._image_0000001.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "annotations" / "._image_0000001.xml").write_bytes(b"\x00\x05\x16\x07")
    shutil.copytree(root / "annotations", tmp_path / "__MACOSX" / "original_dataset" / "annotations")
    (root / "annotations" / "image_0000004.xml").unlink()
    archive = CODEBRIMOriginals(root)
    assert [p.path.name for p in archive.photographs] == [f"image_{k:07d}.jpg" for k in (1, 2, 3)]
    assert [p.name for p in archive.unannotated] == ["image_0000004.jpg"]
    assert "1 without annotations skipped" in repr(archive)


# ---- the windows ---------------------------------------------------------------------------------
def test_windows_avoid_every_defect_box_and_are_deterministic(originals):
    archive = CODEBRIMOriginals(originals)
    crops = DefectFreeCrops(archive, 300, image_size=24, seed=5)
    for i in range(len(crops)):
        photo, (x, y, side) = crops.window(i)
        w, h = photo.size
        assert 0 <= x and x + side <= w and 0 <= y and y + side <= h
        assert WINDOW_FRACTION[0] * min(w, h) - 1 <= side <= WINDOW_FRACTION[1] * min(w, h) + 1
        assert not any(overlaps((x, y, x + side, y + side), box) for box in photo.boxes)
    assert len({crops.window(i)[0].path for i in range(len(crops))}) == 4  # every photograph used
    again = DefectFreeCrops(archive, 300, image_size=24, seed=5)
    assert [crops.window(i)[1] for i in range(20)] == [again.window(i)[1] for i in range(20)]
    other = DefectFreeCrops(archive, 300, image_size=24, seed=6)
    assert [crops.window(i)[1] for i in range(20)] != [other.window(i)[1] for i in range(20)]
    item = crops[7]
    assert item["image"].shape == (3, 24, 24) and 0 <= item["image"].min() and item["image"].max() <= 1
    assert torch.equal(item["image"], again[7]["image"])


def test_a_window_is_the_stored_pixels_exif_orientation_ignored(originals, tmp_path):
    """Boxes refer to the stored pixel array: a photograph tagged "rotate 90" is cropped unrotated."""
    root = shutil.copytree(originals, tmp_path / "original_dataset")
    for photo in (root / "images").glob("*.jpg"):
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 CW to display
        Image.open(photo).save(photo, quality=95, exif=exif)
    crops = DefectFreeCrops(CODEBRIMOriginals(root), 5, image_size=64, seed=0)
    for i in range(5):
        photo, (x, y, side) = crops.window(i)
        stored = Image.open(photo.path).convert("RGB")  # Pillow applies no EXIF rotation itself
        expected = stored.resize((64, 64), Image.BILINEAR, box=(x, y, x + side, y + side))
        got = (crops[i]["image"].permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(got - np.asarray(expected, dtype=np.float64)).max() <= 1


def test_large_photographs_are_decoded_at_a_reduced_scale_that_keeps_the_window(originals):
    crops = DefectFreeCrops(CODEBRIMOriginals(originals), 3, image_size=4, seed=0)
    photo, (x, y, side) = crops.window(0)
    (w, h), scale = photo.size, side / 4
    reduced = read_image(photo.path, "RGB", at_least=(int(np.ceil(w / scale)), int(np.ceil(h / scale))))
    assert reduced.size[0] < w and reduced.size[0] * side / w >= 4  # decoded smaller, the window still >= 4 px
    stored = Image.open(photo.path).convert("RGB").resize((4, 4), Image.BILINEAR, box=(x, y, x + side, y + side))
    got = (crops[0]["image"].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(got - np.asarray(stored, dtype=np.float64)).mean() < 6  # the same view, up to DCT scaling


def test_photographs_covered_by_boxes_are_a_one_line_error(originals, tmp_path):
    root = shutil.copytree(originals, tmp_path / "original_dataset")
    for xml in (root / "annotations").glob("*.xml"):
        xml.write_text(annotation(f"<object>{DEFECT}<bndbox><xmin>0</xmin><ymin>0</ymin><xmax>9999</xmax>"
                                  f"<ymax>9999</ymax></bndbox></object>"))
    crops = DefectFreeCrops(CODEBRIMOriginals(root), 2, image_size=8, seed=0)
    with pytest.raises(UserError, match="no window free of defect boxes") as err:
        crops[0]
    assert str(root) in str(err.value)


# ---- finding the archive -------------------------------------------------------------------------
def test_the_originals_are_found_beside_the_classification_set_or_under_the_data_root(codebrim, originals, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(codebrim, data / "CODEBRIM" / "classification_dataset")
    shutil.copytree(originals, data / "CODEBRIM" / "originals_zip" / "original_dataset")
    beside = resolve_data(data / "CODEBRIM" / "classification_dataset", "codebrim", "full")
    assert find_originals(beside).name == "original_dataset"
    assert find_originals(resolve_data(data, "codebrim", "full")).parent.name == "originals_zip"
    assert find_originals(beside, normals_dir=data / "CODEBRIM" / "originals_zip").parent.name == "originals_zip"


def test_missing_originals_name_what_where_the_fetch_command_and_the_fallback(codebrim, tmp_path):
    shutil.copytree(codebrim, tmp_path / "data" / "classification_dataset")
    source = resolve_data(tmp_path / "data", "codebrim", "full")
    with pytest.raises(UserError) as err:
        find_originals(source)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "data") in message
    for words in ("original_dataset/", "CODEBRIM_original_images.zip", "zenodo.org/record/2620293", "7z x",
                  "background-recrop"):
        assert words in message, words


def test_a_bundled_set_never_borrows_a_sibling_sets_photographs(codebrim, originals, tmp_path):
    shutil.copytree(codebrim, tmp_path / "cache" / "codebrim-smoke")
    shutil.copytree(originals, tmp_path / "cache" / "codebrim-full" / "original_dataset")
    bundled = DataSource(tmp_path / "cache" / "codebrim-smoke", "bundled-x", "codebrim", bundled=True)
    with pytest.raises(UserError, match="not found"):
        find_originals(bundled)


# ---- the training data ---------------------------------------------------------------------------
def test_the_profiles_name_the_source_of_the_extra_normals():
    assert get_config("defect_gan", "full").extra_normals_source == "original"
    for profile in ("defect_gan", "defect_gan_tables"):
        for scale in ("smoke", "demo"):
            assert get_config(profile, scale).extra_normals_source == "auto"
    assert set(EXTRA_NORMALS_SOURCES) == {"auto", "original", "background-recrop", "procedural"}


def _config(source: str, n: int = 5):
    return dataclasses.replace(get_config("defect_gan", "smoke"), extra_normals=n, extra_normals_source=source)


@pytest.fixture
def real_codebrim(codebrim, originals, tmp_path) -> DataSource:
    """A CODEBRIM-layout root used as a real one, its photographs beside it."""
    shutil.copytree(codebrim, tmp_path / "data" / "classification_dataset")
    shutil.copytree(originals, tmp_path / "data" / "original_dataset")
    (tmp_path / "data" / "classification_dataset" / "SYNTHETIC.json").unlink(missing_ok=True)  # real, not generated
    return resolve_data(tmp_path / "data", "codebrim", "smoke")


def test_each_source_of_extra_normals_is_named(real_codebrim, codebrim):
    n_background = 3  # a third of 9 training crops
    data = load_training_data(_config("original"), real_codebrim, seed=0)
    assert data.normals_source == "CODEBRIM original images, 5 crops avoiding defect boxes"
    assert data.n_normals == n_background + 5 and data.normals(7).shape == (3, 32, 32)
    recrop = load_training_data(_config("background-recrop"), real_codebrim, seed=0)
    assert recrop.normals_source.startswith("CODEBRIM train/background re-crops, 5 crops (fallback")
    bundled = DataSource(codebrim, "bundled-test", "codebrim", bundled=True)
    procedural = load_training_data(_config("procedural"), bundled, seed=0)
    assert procedural.normals_source == "bundled procedural concrete, 5 images"
    assert load_training_data(_config("original", 0), real_codebrim).normals_source == "no extra normals"


def test_bundled_synthetic_normals_are_never_mixed_into_a_real_set(real_codebrim):
    with pytest.raises(UserError) as err:
        load_training_data(_config("procedural"), real_codebrim)
    message = str(err.value)
    assert "\n" not in message and str(real_codebrim.root) in message and "never mixed" in message


def test_the_paper_source_without_the_archive_stops_before_training(codebrim, tmp_path):
    shutil.copytree(codebrim, tmp_path / "data" / "classification_dataset")
    with pytest.raises(UserError, match="CODEBRIM_original_images.zip"):
        load_training_data(_config("original"), resolve_data(tmp_path / "data", "codebrim", "smoke"))
    with pytest.raises(UserError, match="unknown; expected one of auto, original, background-recrop, procedural"):
        load_training_data(_config("mixed"), resolve_data(tmp_path / "data", "codebrim", "smoke"))


def test_the_bundled_set_can_carry_its_own_photographs(synthesized):
    root = synthesized("codebrim", size=16, n_train=6, n_test=3, seed=0, n_originals=2)
    assert Image.open(root / "original_dataset" / "images" / "image_0000001.jpg").size == (128, 96)
    bundled = DataSource(root, "bundled-test", "codebrim", bundled=True)
    data = load_training_data(_config("original", 4), bundled, seed=0)
    assert data.normals_source == "bundled synthetic photographs, 4 crops avoiding defect boxes"


def test_a_pool_too_large_for_memory_is_decoded_once_into_a_memory_mapped_file(real_codebrim, monkeypatch, tmp_path):
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    cfg = _config("original", 6)
    in_memory = load_training_data(cfg, real_codebrim, seed=3)
    on_disk = load_training_data(cfg, real_codebrim, seed=3, preload_limit_bytes=0)
    files = list((tmp_path / "cache" / "normals").glob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "cache" / "normals").glob(".*"))
    for i in range(in_memory.n_normals):
        assert torch.allclose(in_memory.normals(i), on_disk.normals(i), atol=1e-6)
    stamp = files[0].stat().st_mtime_ns
    load_training_data(cfg, real_codebrim, seed=3, preload_limit_bytes=0)
    assert files[0].stat().st_mtime_ns == stamp  # read, not written again


def test_data_check_reads_every_photograph_and_names_the_unannotated(originals, tmp_path, capsys):
    from paper_repro.cli import main

    root = shutil.copytree(originals, tmp_path / "CODEBRIM" / "original_dataset")
    (root / "annotations" / "image_0000002.xml").unlink()
    assert main(["data", "check", "--root", str(tmp_path), "--layout", "codebrim-originals"]) == 0
    out = capsys.readouterr().out
    assert "1 photographs have no annotation file (e.g. image_0000002.jpg)" in out
    assert "3 photographs" in out and "ok: 3 items" in out
    broken = root / "images" / "image_0000003.jpg"
    broken.write_bytes(broken.read_bytes()[:400])
    assert main(["data", "check", "--root", str(tmp_path), "--layout", "codebrim-originals"]) == 2
    assert str(broken) in capsys.readouterr().err
