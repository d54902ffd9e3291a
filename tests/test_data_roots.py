"""One resolver for every data root (issue 16 item 4): each way the real archives unpack is found.

Miniature replicas: small bundled sets written by the generator, copied under the folder names the
real archives use (MVTec AD's tar has no top folder; CODEBRIM's zips unpack to
``classification_dataset/``, ``classification_dataset_balanced/`` with ``__MACOSX/``, and
``original_dataset/``), unpacked into the README's folder, one level deeper, or directly."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from paper_repro.cli import main
from paper_repro.data import CODEBRIM, MVTecAD, find_dataset_root, find_originals, resolve_data
from paper_repro.data.mvtec import categories
from paper_repro.data.roots import SEARCH_DEPTH
from paper_repro.errors import UserError


@pytest.fixture(scope="module")
def mvtec_tar(synthesized) -> Path:
    """What mvtec_anomaly_detection.tar.xz holds at its top: the category folders."""
    return synthesized("mvtec", categories=["tile", "wood"], size=16, n_train=2, n_test=1, seed=0)


@pytest.fixture(scope="module")
def codebrim_zip(synthesized) -> Path:
    """What CODEBRIM_classification_dataset.zip's classification_dataset/ holds."""
    return synthesized("codebrim", size=16, n_train=6, n_test=3, seed=0)


def unpack_mvtec(tar: Path, into: Path) -> Path:
    """``tar -xf mvtec_anomaly_detection.tar.xz -C into``: the categories land directly in ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for category in ("tile", "wood"):
        shutil.copytree(tar / category, into / category)
    return into


def unpack_codebrim(zip_root: Path, into: Path, name: str = "classification_dataset") -> Path:
    shutil.copytree(zip_root, into / name)
    (into / name / "SYNTHETIC.json").unlink(missing_ok=True)  # a replica of the real archive: not marked generated
    return into / name


def add_macosx_tree(into: Path, name: str) -> None:
    """A macOS zip's __MACOSX/<name>/... tree of AppleDouble files, plus a decoy that looks like a data set."""
    meta = into / "__MACOSX" / name / "metadata"
    meta.mkdir(parents=True)
    (meta / "._defects.xml").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (meta / "defects.xml").write_text("<not a real record/>")  # must never be taken for the data set


# ---- MVTec AD ------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["readme-folder", "one-level-deeper", "directly"])
def test_mvtec_tar_is_found_however_it_was_unpacked(mvtec_tar, tmp_path, where):
    data = tmp_path / "data"
    target = {"readme-folder": data / "mvtec_anomaly_detection",
              "one-level-deeper": data / "mvtec_anomaly_detection" / "mvtec_anomaly_detection",
              "directly": data}[where]
    unpack_mvtec(mvtec_tar, target)
    for given in {data, target}:
        source = resolve_data(given, "mvtec", "smoke")
        assert source.root == target.resolve() and not source.bundled and source.key == str(target.resolve())
        assert categories(source.root) == ["tile", "wood"]
        assert len(MVTecAD(source.root, "tile", "train", image_size=16)) == 2


def test_a_per_category_archive_is_found(mvtec_tar, tmp_path):
    shutil.copytree(mvtec_tar / "tile", tmp_path / "data" / "mvtec" / "tile")  # tar -xf tile.tar.xz
    assert find_dataset_root(tmp_path / "data", "mvtec") == tmp_path / "data" / "mvtec"


def test_a_category_folder_given_as_the_root_gets_a_hint(mvtec_tar, tmp_path):
    unpack_mvtec(mvtec_tar, tmp_path / "mvtec")
    with pytest.raises(UserError, match="looks like one category folder") as err:
        find_dataset_root(tmp_path / "mvtec" / "tile", "mvtec")
    assert str(tmp_path / "mvtec") in str(err.value)


# ---- CODEBRIM ------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["readme-folder", "one-level-deeper", "directly"])
def test_codebrim_zip_is_found_however_it_was_unpacked(codebrim_zip, tmp_path, where):
    data = tmp_path / "data"
    into = {"readme-folder": data / "CODEBRIM", "directly": data,
            "one-level-deeper": data / "CODEBRIM" / "CODEBRIM_classification_dataset"}[where]
    root = unpack_codebrim(codebrim_zip, into)
    for given in {data, into, root}:
        source = resolve_data(given, "codebrim", "smoke")
        assert source.root == root.resolve() and source.data_root == given.resolve()
    assert len(CODEBRIM(root, "train", image_size=16)) == 6


def test_balanced_zip_with_macosx_tree_is_found_and_read(codebrim_zip, tmp_path):
    data = tmp_path / "data" / "CODEBRIM"
    root = unpack_codebrim(codebrim_zip, data, "classification_dataset_balanced")
    add_macosx_tree(data, "classification_dataset_balanced")
    for crop in sorted((root / "train" / "defects").glob("*.png"))[:2]:  # AppleDouble companions in place
        (crop.parent / f"._{crop.name}").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert resolve_data(tmp_path / "data", "codebrim", "smoke").root == root.resolve()
    assert len(CODEBRIM(root, "train", image_size=16)) == 6


def test_the_original_classification_set_is_preferred_over_the_balanced_one(codebrim_zip, tmp_path):
    data = tmp_path / "data"
    unpack_codebrim(codebrim_zip, data / "CODEBRIM", "classification_dataset_balanced")
    original = unpack_codebrim(codebrim_zip, data / "CODEBRIM")
    add_macosx_tree(data / "CODEBRIM", "classification_dataset_balanced")
    assert find_dataset_root(data, "codebrim") == original
    assert CODEBRIM(data / "CODEBRIM", "train", image_size=16).root == original  # the loader agrees


def test_two_unrelated_sets_of_one_layout_must_be_chosen_between(codebrim_zip, tmp_path):
    unpack_codebrim(codebrim_zip, tmp_path / "a", "set_one")
    unpack_codebrim(codebrim_zip, tmp_path / "a", "set_two")
    with pytest.raises(UserError, match="holds 2 data sets"):
        find_dataset_root(tmp_path / "a", "codebrim")


# ---- both side by side, and the originals beside them -------------------------------------------
@pytest.mark.parametrize("where", ["readme-folders", "directly"])
def test_both_data_sets_and_the_originals_under_one_root(mvtec_tar, codebrim_zip, tmp_path, where):
    from paper_repro.data.synthetic import write_codebrim_originals

    data = tmp_path / "data"
    mvtec = unpack_mvtec(mvtec_tar, data / "mvtec_anomaly_detection" if where == "readme-folders" else data)
    codebrim = unpack_codebrim(codebrim_zip, data / "CODEBRIM" if where == "readme-folders" else data)
    originals = write_codebrim_originals(codebrim.parent, n=1, height=64)
    assert resolve_data(data, "mvtec", "smoke").root == mvtec.resolve()
    source = resolve_data(data, "codebrim", "smoke")
    assert source.root == codebrim.resolve()
    assert find_originals(source) == originals.resolve()
    assert categories(mvtec) == ["tile", "wood"]  # classification_dataset/ is no MVTec category
    assert main(["data", "check", "--root", str(data), "--layout", "mvtec"]) == 0
    assert main(["data", "check", "--root", str(data), "--layout", "codebrim"]) == 0


def test_what_was_looked_for_is_named_when_nothing_is_found(mvtec_tar, tmp_path):
    unpack_mvtec(mvtec_tar, tmp_path / "data" / "mvtec_anomaly_detection")
    with pytest.raises(UserError) as err:
        resolve_data(tmp_path / "data", "codebrim", "smoke")
    message = str(err.value)
    assert str(tmp_path / "data") in message and "\n" not in message
    assert "metadata/defects.xml" in message and "classification_dataset/" in message
    assert f"up to {SEARCH_DEPTH} levels below" in message
    with pytest.raises(UserError, match="no such folder"):
        resolve_data(tmp_path / "absent", "mvtec", "smoke")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="a file"):
        resolve_data(tmp_path / "a_file", "mvtec", "smoke")


def test_none_is_the_bundled_set():
    source = resolve_data(None, "codebrim", "smoke")
    assert source.bundled and source.data_root is None and source.key == "bundled-codebrim-smoke-seed42"


# ---- the trainers' --data go through the same resolver ---------------------------------------------
def test_both_trainers_resolve_data_like_data_root(mvtec_tar, codebrim_zip, tmp_path, capsys):
    """Each trainer stops at its first check after resolving, and names the folder it resolved to."""
    data = tmp_path / "data"
    mvtec = unpack_mvtec(mvtec_tar, data / "mvtec_anomaly_detection" / "mvtec_anomaly_detection")
    codebrim = unpack_codebrim(codebrim_zip, data / "CODEBRIM" / "CODEBRIM_classification_dataset")
    out = str(tmp_path / "run")
    assert main(["dadnet", "train", "--data", str(data), "--category", "bogus", "--scale", "smoke",
                 "--out", out]) == 2
    assert f"{mvtec.resolve() / 'bogus'}: category 'bogus' not found" in capsys.readouterr().err
    # procedural extra normals, which a real CODEBRIM refuses: after resolving, before training
    assert main(["defect-gan", "train", "--data", str(data), "--scale", "smoke", "--normals-source", "procedural",
                 "--out", out]) == 2
    assert f"{codebrim.resolve()}: extra_normals_source 'procedural'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
