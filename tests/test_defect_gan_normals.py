"""Where Defect-GAN's extra normals come from by default: they follow the data (issue 27)."""
import shutil
from pathlib import Path

import pytest

from paper_repro.cli import main
from paper_repro.config import get_config
from paper_repro.data.roots import DataSource, is_generated_data, resolve_data
from paper_repro.data.synthetic import MARKER, write_codebrim_originals
from paper_repro.defect_gan.data import resolve_normals_source


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory) -> Path:
    """What ``python -m paper_repro data synth --layout codebrim --out DIR`` writes (SYNTHETIC.json included)."""
    out = tmp_path_factory.mktemp("synth") / "codebrim"
    assert main(["data", "synth", "--layout", "codebrim", "--out", str(out), "--size", "32", "--n-train", "24",
                 "--n-test", "6"]) == 0
    assert (out / MARKER).is_file()
    return out


def real_replica(synth_folder: Path, into: Path, originals: bool = False) -> Path:
    """A replica of the real CODEBRIM as its zip unpacks: classification_dataset/ without our marker, and
    with ``originals`` the photographs' original_dataset/ beside it."""
    root = into / "CODEBRIM" / "classification_dataset"
    shutil.copytree(synth_folder, root)
    (root / MARKER).unlink()
    if originals:
        write_codebrim_originals(into / "CODEBRIM", n=2, height=192, seed=0)
    return root


def test_demo_and_smoke_follow_the_data_full_crops_the_photographs():
    for profile in ("defect_gan", "defect_gan_tables"):
        for scale in ("smoke", "demo"):
            assert get_config(profile, scale).extra_normals_source == "auto"
    assert get_config("defect_gan", "full").extra_normals_source == "original"


def test_auto_picks_procedural_original_or_recrop_by_the_data(synth_folder, tmp_path):
    bundled = DataSource(tmp_path / "b", "bundled-x", "codebrim", bundled=True)
    assert resolve_normals_source("auto", bundled)[0] == "procedural"
    generated = resolve_data(synth_folder.parent, "codebrim", "smoke")
    assert is_generated_data(generated) and resolve_normals_source("auto", generated)[0] == "procedural"
    bare = resolve_data(real_replica(synth_folder, tmp_path / "bare"), "codebrim", "smoke")
    assert not is_generated_data(bare)
    assert resolve_normals_source("auto", bare)[0] == "background-recrop"
    with_photos = real_replica(synth_folder, tmp_path / "photos", originals=True)
    source = resolve_data(with_photos.parent.parent, "codebrim", "smoke")
    assert resolve_normals_source("auto", source)[0] == "original"
    assert resolve_normals_source("background-recrop", source) == ("background-recrop", "")


def test_smoke_trains_without_flags_on_a_synth_folder_and_a_real_replica(synth_folder, tmp_path, capsys):
    run = tmp_path / "run_synth"
    assert main(["defect-gan", "train", "--data", str(synth_folder), "--scale", "smoke", "--out", str(run),
                 "--threads", "1"]) == 0
    assert "procedural" in capsys.readouterr().out
    assert (run / "run.json").is_file()
    replica = real_replica(synth_folder, tmp_path / "real")
    run = tmp_path / "run_real"
    assert main(["defect-gan", "train", "--data", str(tmp_path / "real"), "--scale", "smoke", "--out", str(run),
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "extra normals: background-recrop (a real CODEBRIM without its original photographs" in out
    assert replica.is_dir() and (run / "run.json").is_file()


def test_procedural_is_still_refused_on_real_data(synth_folder, tmp_path, capsys):
    real_replica(synth_folder, tmp_path / "real")
    assert main(["defect-gan", "train", "--data", str(tmp_path / "real"), "--scale", "smoke", "--out",
                 str(tmp_path / "run"), "--normals-source", "procedural"]) == 2
    assert "extra_normals_source 'procedural'" in capsys.readouterr().err
