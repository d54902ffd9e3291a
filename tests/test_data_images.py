"""Every image mode MVTec AD and CODEBRIM can hold is read as the picture it is, or refused in one line
naming the file (issue 17 item 3); decompression bombs are refused in one line wherever images enter
(issue 17 item 9). Ported from the bad-inputs suite (its targeted mode tests and the ``*-bomb`` cases)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_inputs_support import write_bomb, write_png
from paper_repro.data import MVTecAD, NormalPool
from paper_repro.data.io import image_size, read_image
from paper_repro.defect_gan.control import read_images
from paper_repro.errors import UserError


def _raw_rows(array: np.ndarray) -> bytes:
    rows = array.reshape(array.shape[0], -1)
    return b"".join(b"\x00" + row.tobytes() for row in rows)


def gradient_rgb(size: int = 32) -> np.ndarray:
    ramp = np.arange(size, dtype=np.int32) * (255 // (size - 1))
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = ramp[None, :], ramp[:, None], 255 - ramp[None, :]
    return rgb


def gray_of(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def make_mode_file(mode: str, folder: Path) -> tuple[Path, np.ndarray | None, bool]:
    """A 32x32 picture stored in ``mode``: (path, the 8-bit RGB it shows or None, strict).

    ``strict``: must be read (a refusal fails). ``None``: 32-bit int and float leave the range open; the
    picture read must follow the stored one."""
    rgb, folder = gradient_rgb(), Path(folder)
    gray = gray_of(rgb)
    gray3 = np.repeat(gray[..., None], 3, 2)
    g16, rgb16 = gray.astype(np.uint16) * 257, rgb.astype(np.uint16) * 257
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        Image.fromarray(gray).save(path := folder / "l.png")
        return path, gray3, True
    if mode == "LA":
        Image.fromarray(gray).convert("LA").save(path := folder / "la.png")
        return path, gray3, True
    if mode in ("P", "P+tRNS"):
        image = Image.fromarray(rgb).convert("P")
        path = folder / ("p.png" if mode == "P" else "p_trns.png")
        image.save(path, **({} if mode == "P" else {"transparency": 255}))
        return path, np.asarray(image.convert("RGB")), True
    if mode == "RGBA":
        Image.fromarray(rgb).convert("RGBA").save(path := folder / "rgba.png")
        return path, rgb, True
    if mode == "1":
        image = Image.fromarray(gray).convert("1")
        image.save(path := folder / "bilevel.png")
        return path, np.asarray(image.convert("RGB")), True
    if mode == "I;16":
        Image.fromarray(g16).save(path := folder / "gray16.png")
        assert Image.open(path).mode.startswith("I")
        return path, gray3, True
    if mode == "I;16-tiff":
        Image.fromarray(g16).save(path := folder / "gray16.tif")
        return path, gray3, True
    if mode == "I;16B-tiff":
        Image.fromarray(g16.astype(">u2")).save(path := folder / "gray16b.tif")
        return path, gray3, True
    if mode == "LA;16":
        la = np.stack([g16, np.full_like(g16, 65535)], -1).astype(">u2")
        return write_png(folder / "gray_alpha16.png", 32, 32, 16, 4, _raw_rows(la)), gray3, True
    if mode == "RGB;16":
        return write_png(folder / "rgb16.png", 32, 32, 16, 2, _raw_rows(rgb16.astype(">u2"))), rgb, True
    if mode == "RGBA;16":
        rgba = np.concatenate([rgb16, np.full_like(rgb16[..., :1], 65535)], -1).astype(">u2")
        return write_png(folder / "rgba16.png", 32, 32, 16, 6, _raw_rows(rgba)), rgb, True
    if mode == "I":
        Image.fromarray(g16.astype(np.int32)).save(path := folder / "int32.tif")
        return path, None, False
    if mode == "F":
        Image.fromarray(gray.astype(np.float32) / 255).save(path := folder / "float.tif")
        return path, None, False
    if mode == "CMYK-JPEG":
        Image.fromarray(rgb).convert("CMYK").save(path := folder / "cmyk.jpg", quality=95)
        return path, rgb, False
    raise ValueError(mode)


MODES = ["L", "LA", "P", "P+tRNS", "RGBA", "1", "I;16", "I;16-tiff", "I;16B-tiff", "LA;16", "RGB;16", "RGBA;16",
         "I", "F", "CMYK-JPEG"]


def read_via(reader: str, path: Path) -> np.ndarray:
    """``path`` as 8-bit RGB (H, W, 3) through one of the package's readers."""
    if reader == "io.read_image":
        return np.asarray(read_image(path, "RGB"))
    if reader == "MVTecAD":
        good = path.parent / "mvtec" / "cat" / "train" / "good"
        good.mkdir(parents=True)
        for name in ("000", "001"):
            shutil.copy(path, good / f"{name}{path.suffix}")
        item = MVTecAD(path.parent / "mvtec", "cat", "train", image_size=None)[0]
        return (item["image"].permute(1, 2, 0).numpy() * 255).round()
    if reader == "control.read_images":  # what defect-gan synth --normals and restore --images read
        folder = path.parent / "normals"
        folder.mkdir()
        shutil.copy(path, folder / path.name)
        images, _ = read_images(folder, 32)
        return ((images[0].permute(1, 2, 0).numpy() + 1) * 127.5).round()
    raise ValueError(reader)


@pytest.mark.parametrize("reader", ["io.read_image", "MVTecAD", "control.read_images"])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_is_read_as_the_picture_it_is(tmp_path, mode, reader):
    path, expected, strict = make_mode_file(mode, tmp_path / "files")
    try:
        got = read_via(reader, path).astype(np.int32)
    except UserError as err:
        assert not strict, f"{mode}: refused, but {mode} files must be read: {err}"
        assert "\n" not in str(err) and path.name in str(err)
        return
    assert got.shape == (32, 32, 3)
    assert not (got >= 254).all() and not (got <= 1).all(), f"{mode} read as a blank picture"
    if expected is None:
        gray, seen = gray_of(gradient_rgb()).astype(np.float64), got.mean(-1)
        assert np.corrcoef(gray.ravel(), seen.ravel())[0, 1] > 0.99
        assert len(np.unique(seen.round())) > 100 or seen.max() - seen.min() > 200, f"{mode}: range lost"
        return
    tolerance = 8 if mode == "CMYK-JPEG" else 1
    assert np.abs(got - expected.astype(np.int32)).mean() <= tolerance


def test_16bit_grayscale_category_trains_on_its_picture_not_on_white(tmp_path):
    """Issue 17 item 3 as reported: a category of 16-bit grayscale PNGs read by MVTecAD for training."""
    gray = gray_of(gradient_rgb())
    good = tmp_path / "root" / "screw" / "train" / "good"
    good.mkdir(parents=True)
    for name in ("000.png", "001.png"):
        Image.fromarray(gray.astype(np.uint16) * 257).save(good / name)
    image = MVTecAD(tmp_path / "root", "screw", "train", image_size=None)[0]["image"]
    assert np.abs((image[0].numpy() * 255).round() - gray).max() <= 1


def test_16bit_mask_is_read_as_its_region(tmp_path):
    mask = np.zeros((8, 8), np.uint16)
    mask[2:5, 3:6] = 65535
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert (np.asarray(read_image(tmp_path / "m.png", "L")) > 127).tolist() == (mask > 0).tolist()


@pytest.mark.parametrize("mode, values", [("I", [-5, 10]), ("I", [0, 70_000]), ("F", [-1.0, 0.5]),
                                          ("F", [0.0, 300.0]), ("F", [0.0, float("nan")])])
def test_wide_pixels_without_an_agreed_range_are_refused_in_one_line(tmp_path, mode, values):
    array = np.array([values * 2] * 4, dtype=np.int32 if mode == "I" else np.float32)
    path = tmp_path / "odd.tif"
    Image.fromarray(array).save(path)
    with pytest.raises(UserError) as err:
        read_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_an_unsupported_mode_is_refused_when_the_header_is_read(tmp_path):
    path = tmp_path / "lab.tif"
    Image.new("LAB", (4, 4)).save(path)
    with pytest.raises(UserError, match="mode 'LAB'") as err:
        image_size(path)
    assert str(path) in str(err.value)


def test_a_decompression_bomb_is_refused_in_one_line_by_every_reader(tmp_path):
    folder = tmp_path / "normals"
    folder.mkdir()
    shutil.copy(make_mode_file("L", tmp_path / "f")[0], folder / "000.png")
    bomb = write_bomb(folder / "bomb.png")
    readers = {"read_image": lambda: read_image(bomb), "image_size": lambda: image_size(bomb),
               "read_images": lambda: read_images(folder, 32),
               "NormalPool": lambda: [item for item in NormalPool(folder, 4, 32)]}
    for name, read in readers.items():
        with pytest.raises(UserError) as err:
            read()
        message = str(err.value)
        assert str(bomb) in message and "\n" not in message, name
        assert "pixels" in message, name


def test_an_image_just_under_the_limit_stays_readable_as_a_header(tmp_path):
    """CODEBRIM's largest photographs (6000x4000 = 24 MP) are far below Pillow's ~89 MP limit."""
    path = write_png(tmp_path / "big.png", 6000, 4000, 8, 0, b"")
    assert image_size(path) == (6000, 4000)
