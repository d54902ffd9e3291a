"""Bad input gets one clear line naming the offending path and what was expected: from the loaders
as a UserError, from ``python -m paper_repro data ...`` as one stderr line, exit status 2, no traceback."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paper_repro.cli import main
from paper_repro.data import CODEBRIM, MVTecAD, NormalPool
from paper_repro.errors import UserError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def good_mvtec(synthesized) -> Path:
    return synthesized("mvtec", categories=["tile"], size=24, n_train=2, n_test=1, seed=0)


@pytest.fixture(scope="module")
def good_codebrim(synthesized) -> Path:
    return synthesized("codebrim", size=24, n_train=6, n_test=3, seed=0)


@pytest.fixture
def mvtec(good_mvtec, tmp_path) -> Path:
    shutil.copytree(good_mvtec, tmp_path / "mvtec")
    return tmp_path / "mvtec"


@pytest.fixture
def codebrim(good_codebrim, tmp_path) -> Path:
    shutil.copytree(good_codebrim, tmp_path / "codebrim")
    return tmp_path / "codebrim"


def one_line_naming(err: pytest.ExceptionInfo, path: Path) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message, f"{path} not named in: {message}"
    return message


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m paper_repro data ...`` in this process (its import of torch costs seconds a process)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["data", *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_cli_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---- MVTec AD ----------------------------------------------------------------------------------
def test_missing_root(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError) as err:
        MVTecAD(missing, "tile")
    one_line_naming(err, missing)
    with pytest.raises(UserError) as err:
        CODEBRIM(missing, "train")
    one_line_naming(err, missing)
    with pytest.raises(UserError) as err:
        NormalPool(missing, 3)
    one_line_naming(err, missing)


def test_missing_category(mvtec):
    with pytest.raises(UserError) as err:
        MVTecAD(mvtec, "bottle")
    assert "tile" in one_line_naming(err, mvtec / "bottle")  # lists what is there


def test_empty_train_good(mvtec):
    for p in (mvtec / "tile" / "train" / "good").iterdir():
        p.unlink()
    with pytest.raises(UserError) as err:
        MVTecAD(mvtec, "tile", "train")
    one_line_naming(err, mvtec / "tile" / "train" / "good")


def test_test_image_without_mask(mvtec):
    mask = mvtec / "tile" / "ground_truth" / "crack" / "000_mask.png"
    mask.unlink()
    with pytest.raises(UserError) as err:
        MVTecAD(mvtec, "tile", "test")
    message = one_line_naming(err, mvtec / "tile" / "test" / "crack" / "000.png")
    assert str(mask) in message  # and says which mask it expected


def test_mask_size_differs_from_image(mvtec):
    mask = mvtec / "tile" / "ground_truth" / "stain" / "000_mask.png"
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(mask)
    with pytest.raises(UserError) as err:
        MVTecAD(mvtec, "tile", "test")
    assert "12x10" in one_line_naming(err, mask)


def test_corrupt_image_header(mvtec):
    bad = mvtec / "tile" / "train" / "good" / "001.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(UserError) as err:
        MVTecAD(mvtec, "tile", "train")
    one_line_naming(err, bad)


def test_truncated_image_fails_when_read(mvtec):
    bad = mvtec / "tile" / "train" / "good" / "001.png"
    bad.write_bytes(bad.read_bytes()[:120])  # header intact, pixel data cut
    ds = MVTecAD(mvtec, "tile", "train", image_size=16)
    with pytest.raises(UserError) as err:
        ds[1]
    one_line_naming(err, bad)


# ---- CODEBRIM ----------------------------------------------------------------------------------
def test_xml_that_does_not_parse(codebrim):
    xml = codebrim / "metadata" / "defects.xml"
    xml.write_text("<Annotation><Defect name='x.png'><Crack>1</Defect>")
    with pytest.raises(UserError) as err:
        CODEBRIM(codebrim, "train")
    one_line_naming(err, xml)


def test_records_of_absent_files_are_skipped_and_counted(codebrim):
    """The published metadata lists more records than the archive holds crops (issue 16 item 3)."""
    victim = sorted((codebrim / "val" / "background").glob("*.png"))[0]
    victim.unlink()
    train = CODEBRIM(codebrim, "train")
    assert len(train) == 6 and train.absent == [f"background/{victim.name}"]
    assert "1 metadata records name files absent from the archive" in train.absent_summary()
    assert victim.name in train.absent_summary() and "absent" in repr(train)
    assert len(CODEBRIM(codebrim, "val")) == 2


def test_image_without_record(codebrim):
    stray = codebrim / "train" / "defects" / "image_9999999_crop_0000001.png"
    shutil.copy(sorted((codebrim / "train" / "defects").glob("*.png"))[0], stray)
    with pytest.raises(UserError) as err:
        CODEBRIM(codebrim, "train")
    assert "defects.xml" in one_line_naming(err, stray)


def test_record_missing_a_class_tag(codebrim):
    xml = codebrim / "metadata" / "defects.xml"
    xml.write_text(xml.read_text().replace("<Efflorescence>0</Efflorescence>", "", 1))
    with pytest.raises(UserError) as err:
        CODEBRIM(codebrim, "train")
    assert "Efflorescence" in one_line_naming(err, xml)


def test_missing_metadata(codebrim):
    xml = codebrim / "metadata" / "background.xml"
    xml.unlink()
    with pytest.raises(UserError) as err:
        CODEBRIM(codebrim, "test")
    one_line_naming(err, xml)


def test_corrupt_codebrim_image(codebrim):
    bad = sorted((codebrim / "test" / "defects").glob("*.png"))[0]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError) as err:
        CODEBRIM(codebrim, "test")
    one_line_naming(err, bad)


# ---- the CLI -----------------------------------------------------------------------------------
def test_cli_unknown_layout(tmp_path):
    """Through the real entry point once: ``python -m paper_repro`` prints the one line and exits 2."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "paper_repro", "data", "synth", "--out", str(tmp_path / "x"),
                             "--layout", "kitti"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert_cli_error(result, "kitti", "mvtec", "codebrim")
    assert not (tmp_path / "x").exists()


def test_cli_unknown_category(tmp_path):
    result = run_cli("synth", "--out", str(tmp_path / "x"), "--layout", "mvtec", "--categories", "tile,marble")
    assert_cli_error(result, "marble")


def test_cli_check_reports_bad_roots(mvtec, codebrim, tmp_path):
    assert_cli_error(run_cli("check", "--root", str(tmp_path / "none"), "--layout", "mvtec"), str(tmp_path / "none"))
    assert_cli_error(run_cli("check", "--root", str(mvtec), "--layout", "codebrim"), str(mvtec), "metadata/defects.xml")
    bad = mvtec / "tile" / "test" / "good" / "000.png"
    bad.write_bytes(bad.read_bytes()[:100])
    assert_cli_error(run_cli("check", "--root", str(mvtec), "--layout", "mvtec"), str(bad))
    (codebrim / "metadata" / "defects.xml").write_text("<<<")
    assert_cli_error(run_cli("check", "--root", str(codebrim), "--layout", "codebrim"),
                     str(codebrim / "metadata" / "defects.xml"))


def test_cli_synth_writes_the_layout(tmp_path):
    out = tmp_path / "set"
    result = run_cli("synth", "--out", str(out), "--layout", "mvtec", "--categories", "wood,carpet", "--size", "24",
                     "--n-train", "2", "--n-test", "1", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["carpet", "wood"]
    assert len(list((out / "wood" / "train" / "good").glob("*.png"))) == 2
    assert (out / "wood" / "ground_truth" / "scratch" / "000_mask.png").is_file()
    again = run_cli("synth", "--out", str(out), "--layout", "mvtec", "--size", "24")
    assert_cli_error(again, str(out), "--force")
    ok = run_cli("check", "--root", str(out), "--layout", "mvtec")
    assert ok.returncode == 0 and "ok:" in ok.stdout


def test_duplicate_records_warn_only_when_their_labels_differ(codebrim):
    xml = codebrim / "metadata" / "defects.xml"
    text = xml.read_text()
    first = text[text.index("  <Defect "):text.index("</Defect>") + len("</Defect>")]
    name = first.split('"')[1]
    xml.write_text(text.replace("</Annotation>", first + "\n</Annotation>"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CODEBRIM(codebrim, "train")  # the same record twice: quiet
    crack = "<Crack>1</Crack>" if "<Crack>0</Crack>" in first else "<Crack>0</Crack>"
    other = first.replace("<Crack>0</Crack>", crack).replace("<Crack>1</Crack>", crack)
    xml.write_text(text.replace("</Annotation>", other + "\n</Annotation>"))
    with pytest.warns(UserWarning, match=f"record '{name}' appears more than once with different labels"):
        CODEBRIM(codebrim, "train")
