"""Folder data sets: ``dadnet train --data DIR`` on a plain folder of normal images, and ``dadnet eval
--images DIR --masks DIR --good DIR`` on folders of defective images, masks and normal images.

Checked: a nested folder of mixed images trains a run that records its layout; folder evaluation of
the MVTec test split's own files gives eval's MVTec numbers; masks are found by relative path and stem
under both names; every bad folder is one line, with nothing written.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from bad_inputs_support import digest
from dadnet_predict_support import assert_one_line_error, build_tiny_run, run_cli
from paper_repro.dadnet.evaluate import evaluate, evaluate_folders
from paper_repro.data.image_folder import find_mask, normal_images, plain_folder
from paper_repro.errors import UserError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_run(tmp_path_factory.mktemp("dadnet_folder_data"))


@pytest.fixture(scope="module")
def normals(tiny, tmp_path_factory) -> Path:
    """A team's folder of normal images: nested, one grayscale, plus files no reader should take."""
    folder = tmp_path_factory.mktemp("normals") / "my_tiles"
    (folder / "line2" / "shift1").mkdir(parents=True)
    train = sorted((tiny.tile / "train/good").iterdir())
    shutil.copy(train[0], folder / "a.png")
    Image.open(train[1]).convert("L").save(folder / "line2" / "b.png")
    shutil.copy(train[2], folder / "line2" / "shift1" / "c.png")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / ".hidden.png").write_bytes(b"a hidden file, never read")
    return folder


@pytest.fixture(scope="module")
def folder_test(tiny, tmp_path_factory) -> dict[str, Path]:
    """The tile test split as plain folders: defective images by type, their masks (half named
    ``<stem>_mask.png`` as MVTec names them, half ``<stem>.png``), and the good images."""
    root = tmp_path_factory.mktemp("folder_test")
    images, masks = root / "images", root / "masks"
    for kind in (p for p in (tiny.tile / "test").iterdir() if p.name != "good"):
        shutil.copytree(kind, images / kind.name)
        for index, mask in enumerate(sorted((tiny.tile / "ground_truth" / kind.name).iterdir())):
            name = mask.name if index % 2 else mask.name.replace("_mask", "")
            (masks / kind.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(mask, masks / kind.name / name)
    return {"images": images, "masks": masks, "good": tiny.tile / "test/good"}


def test_train_on_a_plain_folder(normals, folder_test, tmp_path, capsys):
    run = tmp_path / "run"
    rc, stdout, lines = run_cli(capsys, "dadnet", "train", "--data", normals, "--scale", "smoke", "--epochs", "1",
                                "--out", run)
    assert rc == 0 and "trained my_tiles" in stdout
    saved = json.loads((run / "run.json").read_text())
    assert saved["data_layout"] == "folder" and saved["category"] == "my_tiles"
    assert saved["data_root"] == str(normals.resolve())
    assert (run / "checkpoint_00000001.safetensors").is_file()
    assert normal_images(normals, 32).shape == (3, 3, 32, 32)  # the three images, nothing else

    before = digest(run)
    rc, _, lines = run_cli(capsys, "dadnet", "eval", "--run", run)
    assert_one_line_error(rc, lines, "plain folder", "--images dir --masks dir --good dir")
    assert digest(run) == before
    rc, _, _ = run_cli(capsys, "dadnet", "eval", "--run", run, *folder_flags(folder_test))
    metrics = json.loads((run / "metrics.json").read_text())
    assert rc == 0 and metrics["n_test"] == 12 and metrics["masks"] == str(folder_test["masks"])


def folder_flags(folders: dict[str, Path]) -> list:
    return [x for name, path in folders.items() for x in (f"--{name}", path)]


def test_folder_eval_gives_the_mvtec_numbers(tiny, folder_test):
    mvtec, _ = evaluate(tiny.run, progress=False, write=False)
    folders, pred = evaluate_folders(tiny.run, **folder_test, progress=False, write=False)
    assert folders == pytest.approx(mvtec, abs=1e-6)
    assert pred["label"].tolist() == [0] * 2 + [1] * 10


def test_masks_are_matched_by_relative_path_and_stem(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    (images / "sub").mkdir(parents=True)
    (masks / "sub").mkdir(parents=True)
    (masks / "sub" / "001_mask.png").touch()
    (masks / "sub" / "002.png").touch()
    assert find_mask(images / "sub" / "001.png", images, masks) == masks / "sub" / "001_mask.png"
    assert find_mask(images / "sub" / "002.jpg", images, masks) == masks / "sub" / "002.png"
    with pytest.raises(UserError, match="has no mask; expected .*sub/003_mask.png"):
        find_mask(images / "sub" / "003.png", images, masks)
    (masks / "sub" / "002_mask.png").touch()
    with pytest.raises(UserError, match="more than one mask"):
        find_mask(images / "sub" / "002.png", images, masks)


def test_what_counts_as_a_plain_folder(tiny, normals, tmp_path):
    assert plain_folder(None) is None                   # the bundled set
    assert plain_folder(tiny.mvtec) is None             # an MVTec AD root
    assert plain_folder(tiny.mvtec.parent) is None      # one level above it
    assert plain_folder(tiny.tile) is None              # one category: the MVTec loader names its parent
    assert plain_folder(normals) == normals
    assert plain_folder(tmp_path / "nowhere") is None   # the loaders say it does not exist
    deep = tmp_path / "a" / "b" / "c" / "d"             # MVTec AD below the resolver's search depth
    shutil.copytree(tiny.tile, deep / "tile")
    assert plain_folder(tmp_path / "a") is None
    codebrim = tmp_path / "codebrim"                    # CODEBRIM's images are not normal images
    shutil.copytree(normals, codebrim / "train" / "background")
    (codebrim / "metadata").mkdir()
    (codebrim / "metadata" / "defects.xml").write_text("<Annotation/>")
    assert plain_folder(codebrim) is None


# ---- bad inputs: one line, nothing written ------------------------------------------------------------
def _train(folder: str) -> tuple:
    return ("dadnet", "train", "--data", folder, "--scale", "smoke", "--epochs", "1", "--out", "{out}")


def _eval(*flags: str) -> tuple:
    return ("dadnet", "eval", "--run", "{run}", *flags)


BAD_INPUTS = {
    "train-empty-folder": (_train("{empty}"), ("no images found", "normal images")),
    "train-unreadable-image": (_train("{broken_normals}"), ("bad.png", "cannot read image")),
    "train-one-image": (_train("{one_normal}"), ("expected at least 2",)),
    "train-no-such-folder": (_train("{tmp}/nowhere"), ("nowhere",)),
    "train-mvtec-without-category": (_train("{mvtec}"), ("--category", "required")),
    "eval-images-alone": (_eval("--images", "{images}"), ("--masks and --good", "required")),
    "eval-folders-and-data": (_eval("--images", "{images}", "--masks", "{masks}", "--good", "{good}", "--data",
                                    "{mvtec}"), ("one or the other",)),
    "eval-mask-missing": (_eval("--images", "{images}", "--masks", "{empty}", "--good", "{good}"),
                          ("has no mask",)),
    "eval-mask-wrong-size": (_eval("--images", "{images}", "--masks", "{small_masks}", "--good", "{good}"),
                             ("mask is 8x8", "32x32")),
    "eval-empty-good": (_eval("--images", "{images}", "--masks", "{masks}", "--good", "{empty}"),
                        ("no images found",)),
    "eval-no-such-masks": (_eval("--images", "{images}", "--masks", "{tmp}/nowhere", "--good", "{good}"),
                           ("no such folder",)),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_folder_is_one_line_and_writes_nothing(case, tiny, normals, folder_test, tmp_path, capsys):
    argv, words = BAD_INPUTS[case]
    (tmp_path / "empty").mkdir()
    broken = Path(shutil.copytree(normals, tmp_path / "broken_normals"))
    (broken / "line2" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    one = tmp_path / "one_normal"
    one.mkdir()
    shutil.copy(normals / "a.png", one)
    small_masks = tmp_path / "small_masks"
    for image in folder_test["images"].rglob("*.png"):
        target = small_masks / image.relative_to(folder_test["images"]).with_name(f"{image.stem}_mask.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8)).save(target)
    places = {**folder_test, "tmp": tmp_path, "empty": tmp_path / "empty", "broken_normals": broken,
              "one_normal": one, "small_masks": small_masks, "mvtec": tiny.mvtec, "run": tiny.run,
              "out": tmp_path / "out"}
    before = digest(tiny.run), digest(tiny.mvtec), digest(broken)

    rc, _, lines = run_cli(capsys, *[arg.format(**places) for arg in argv])

    assert_one_line_error(rc, lines, *words)
    assert (digest(tiny.run), digest(tiny.mvtec), digest(broken)) == before
    assert not (tmp_path / "out").exists()
