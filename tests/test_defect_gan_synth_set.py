"""Issue 32, "Defect-GAN on your normals": ``defect-gan synth --layout codebrim|folders`` writes a ready
training set that the project's CODEBRIM loader, torchvision's ImageFolder and Table 3's classifier read;
bad inputs are one line each with nothing written or changed; without --layout nothing changed."""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset
from torchvision.datasets import ImageFolder

from bad_inputs_support import cli, digest
from paper_repro.cli import main
from paper_repro.config import get_config
from paper_repro.data import CODEBRIM, CODEBRIM_CLASSES, resolve_data
from paper_repro.data.codebrim import SPLITS
from paper_repro.data.synthetic import MARKER
from paper_repro.defect_gan import training_set
from paper_repro.defect_gan.classifier import train_classifier
from paper_repro.defect_gan.training_set import BACKGROUND, PER_LABEL_SET, defect_counts, label_sets, plan
from paper_repro.errors import UserError
from paper_repro.experiments.defect_gan_table3 import SYNTHETIC, RealSet, real_splits

SETS = ("Crack", "Spallation", "Crack+Spallation")   # --classes: two single classes and one combination
N = 12                                              # defect images: 4 per label set


def visible_lines(text: str) -> list[str]:
    """What a terminal shows: progress bars redrawn with \\r and cleared leave nothing."""
    return [line for line in (seg.rsplit("\r", 1)[-1] for seg in text.split("\n")) if line.strip()]


@dataclasses.dataclass(frozen=True)
class Shared:
    run: Path       # a finished Defect-GAN run (smoke, 5 iterations) on a small bundled CODEBRIM set
    data: Path      # that CODEBRIM set
    normals: Path   # nested grayscale and RGB normals of other sizes, and one unreadable file
    readable: int   # how many of them can be read


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Shared:
    root = tmp_path_factory.mktemp("synth_set")
    data, run = root / "codebrim", root / "dg_run"
    cli("data", "synth", "--out", data, "--layout", "codebrim", "--size", "32", "--n-train", "12", "--n-test", "3")
    threads = torch.get_num_threads()
    try:
        cli("defect-gan", "train", "--data", data, "--scale", "smoke", "--iterations", "5", "--out", run,
            "--threads", "1", "--normals-source", "background-recrop")
    finally:
        torch.set_num_threads(threads)
    normals = root / "normals"
    for i in range(7):   # RGB JPEGs and grayscale PNGs, two sizes, in two nested folders
        rng = np.random.default_rng(i)
        folder = normals / ("a" if i % 2 else "b/c")
        folder.mkdir(parents=True, exist_ok=True)
        if i % 3 == 0:
            Image.fromarray((rng.random((40, 50)) * 255).astype(np.uint8)).save(folder / f"gray{i}.png")
        else:
            Image.fromarray((rng.random((30, 36, 3)) * 255).astype(np.uint8)).save(folder / f"rgb{i}.jpg")
    (normals / "b" / "broken.png").write_bytes(b"not an image")
    return Shared(run, data, normals, readable=7)


def synth(shared: Shared, out: Path, *extra, layout="codebrim", classes=",".join(SETS), n=str(N),
          normals=None, run=None) -> list[str]:
    argv = ["defect-gan", "synth", "--run", run or shared.run, "--normals", normals or shared.normals,
            "--classes", classes, "--out", out, *(("--layout", layout) if layout else ()),
            *(("--n", n) if n else ()), *extra]
    return [str(a) for a in argv]


@pytest.fixture(scope="module")
def codebrim_set(shared, tmp_path_factory) -> tuple[Path, str]:
    """The codebrim-layout set, and what the command printed on stderr."""
    out = tmp_path_factory.mktemp("cb_out") / "set"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(synth(shared, out)) == 0
    return out, err.getvalue()


def label_vector(names: tuple[str, ...]) -> list[float]:
    return [float(c in names) for c in CODEBRIM_CLASSES]


# ---- the CODEBRIM layout --------------------------------------------------------------------------
def test_codebrim_output_loads_with_the_projects_loader(codebrim_set, shared):
    out, err = codebrim_set
    marker = json.loads((out / MARKER).read_text())
    assert marker["synthetic"] is True and marker["generator"] == training_set.WRITER
    assert Path(marker["run"]) == shared.run.resolve() and marker["seed"] == 42 and marker["classes"] == list(SETS)
    assert [s["path"] for s in marker["skipped"]] == ["b/broken.png"]
    lines = visible_lines(err)   # the unreadable file: one line, naming it; the rest went on
    assert len(lines) == 1 and lines[0].startswith("warning: skipped 1 of 8") and "b/broken.png" in lines[0], lines

    per_split = {split: CODEBRIM(out, split, image_size=None) for split in SPLITS}
    expected = {"Crack": ("Crack",), "Spallation": ("Spallation",), "Crack+Spallation": ("Crack", "Spallation"),
                BACKGROUND: (BACKGROUND,)}
    seen_sets, backgrounds, stems = {}, [], {}
    for split, data in per_split.items():
        assert len(data) == sum(marker["splits"][split].values()) and not data.absent
        stems[split] = set()
        for path, labels in data.samples:
            path = Path(path)
            label_set = path.stem.rsplit("_", 1)[1]   # <index>_<normal>_<label set>.png
            assert labels == label_vector(expected[label_set]), (path, labels)
            seen_sets.setdefault(split, set()).add(label_set)
            stems[split].add(path.stem.split("_", 1)[1].rsplit("_", 1)[0])
            if label_set == BACKGROUND:
                backgrounds.append(path)
                assert path.parent.name == "background" and not (out / "masks" / path.relative_to(out)).exists()
            else:   # a defect's control map (mask) and the generator's map m_d, at the image's size
                assert path.parent.name == "defects"
                for tree in ("masks", "maps"):
                    with Image.open(out / tree / path.relative_to(out)) as m, Image.open(path) as image:
                        assert m.size == image.size == (32, 32) and m.mode == "L"
                with Image.open(out / "masks" / path.relative_to(out)) as m:
                    assert set(np.unique(np.asarray(m))) == {255}   # no --region: asked for everywhere
        assert seen_sets[split] == set(expected), split   # every split holds every label set
    assert sum(d.labels[:, 1:].sum(1).gt(0).sum().item() for d in per_split.values()) == N
    assert len(backgrounds) == shared.readable   # every readable normal once, as Background
    assert not (stems["train"] & stems["val"]) and not (stems["train"] & stems["test"]) \
        and not (stems["val"] & stems["test"])   # a normal's images stay in its split
    assert {"a_rgb1", "b_c_gray0"} <= set().union(*stems.values())   # nested, RGB and grayscale read
    assert main(["data", "check", "--root", str(out), "--layout", "codebrim"]) == 0


class Synthesized(RealSet):
    """A CODEBRIM-layout split tagged "synthesized" for f_src, as Table 3 tags its generated samples."""

    def __getitem__(self, index: int) -> dict:
        return {**super().__getitem__(index), "source": torch.tensor(SYNTHETIC)}


def test_table3_classifiers_train_on_the_codebrim_output(codebrim_set, shared, tmp_path):
    """Table 3's recipe on the set, at smoke (ResNet34, one epoch): its loaders (resolve_data, real_splits)
    and two cells, the set alone ("None": no f_src), and the set added to real crops with the
    gradient-reversal head f_src, as Table 3 adds its synthesizers' samples."""
    out, _ = codebrim_set
    cfg = get_config("detection", "smoke")
    own = real_splits(resolve_data(out, "codebrim", "smoke"), cfg.image_size)
    real = real_splits(resolve_data(shared.data, "codebrim", "smoke"), cfg.image_size)
    assert own["train"].labels.shape == (sum(json.loads((out / MARKER).read_text())["splits"]["train"].values()),
                                         len(CODEBRIM_CLASSES))
    cells = {"None": (own, False),
             "own normals": ({**real, "train": ConcatDataset([real["train"],
                                                              Synthesized(out, "train", cfg.image_size)])}, True)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, (splits, source_head) in cells.items():
            result = train_classifier(cfg, "resnet34", name, splits["train"], splits["val"], splits["test"],
                                      tmp_path / name, source_head=source_head, progress=False)
            assert result.epochs_trained == 1 and 0 <= result.val_accuracy <= 1 and 0 <= result.test_accuracy <= 1
            assert (tmp_path / name / "best.safetensors").is_file()
    finally:
        torch.set_num_threads(threads)


# ---- the folders layout ---------------------------------------------------------------------------
def test_folders_output_loads_with_image_folder(shared, tmp_path):
    out = tmp_path / "folders"
    assert main(synth(shared, out, "--region", "0.25,0.25,0.75,0.75", layout="folders", n=None)) == 0
    marker = json.loads((out / MARKER).read_text())
    assert marker["layout"] == "folders" and marker["classes"] == list(SETS)
    classes = sorted([*SETS, BACKGROUND])
    total_defects = 0
    for split in SPLITS:
        data = ImageFolder(str(out / split))
        assert data.classes == classes, split   # the same class indices in every split
        assert len(data) == sum(marker["splits"][split].values())
        for path, target in data.samples:
            path = Path(path)
            assert path.stem.endswith("_" + data.classes[target])
            if data.classes[target] != BACKGROUND:
                total_defects += 1
                with Image.open(out / "masks" / path.relative_to(out)) as m, Image.open(path) as image:
                    assert m.size == image.size
                    mask = np.asarray(m)   # the control map's region: the middle 16 x 16 of 32 x 32
                    assert mask[8:24, 8:24].min() == 255 and mask.sum() == 255 * 16 * 16
    assert total_defects == PER_LABEL_SET * len(SETS)   # --n's default with --layout


def test_an_out_holding_a_synthesized_set_is_refused_and_kept(codebrim_set, shared, capsys):
    out, _ = codebrim_set
    before = digest(out)
    capsys.readouterr()
    assert main(synth(shared, out, layout="folders")) == 2
    lines = visible_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "already holds a training set synthesized by the run" in lines[0], lines
    assert digest(out) == before


# ---- rules ----------------------------------------------------------------------------------------
def test_plan_splits_by_normal_and_gives_every_split_every_label_set():
    sets = [("Crack",), ("Spallation",), ("Crack", "Spallation")]
    entries = plan(20, 30, sets, seed=3)
    defects = [e for e in entries if not e.is_background]
    assert len(defects) == 30 and sorted(e.normal for e in entries if e.is_background) == list(range(20))
    split_of = {e.normal: e.split for e in entries if e.is_background}
    assert all(split_of[e.normal] == e.split for e in defects)   # no normal in two splits
    assert {s: sum(v == s for v in split_of.values()) for s in SPLITS} == {"train": 16, "val": 2, "test": 2}
    for split in SPLITS:
        assert {e.labels for e in defects if e.split == split} == set(sets)
    uses = [sum(e.normal == i for e in defects) for i, split in split_of.items() if split == "train"]
    assert sum(uses) == 24 and max(uses) - min(uses) <= 1   # the normals of a split are used in turn
    assert plan(20, 30, sets, seed=3) == entries and plan(20, 30, sets, seed=4) != entries


def test_label_sets_and_counts_refuse_what_cannot_be_written():
    classes = list(CODEBRIM_CLASSES[1:])
    assert label_sets(["spallation+crack", "Crack", "Crack + Spallation"], classes, "codebrim") == [
        ("Crack", "Spallation"), ("Crack",)]
    with pytest.raises(UserError, match="expected --layout folders"):
        label_sets(["Rust"], ["Rust", "Crack"], "codebrim")
    assert label_sets(["Rust"], ["Rust", "Crack"], "folders") == [("Rust",)]
    with pytest.raises(UserError, match="--n 8: .* at least 9"):
        defect_counts(8, 3)


@pytest.mark.parametrize("failure, status", [(KeyboardInterrupt, 130),
                                             (OSError(errno.ENOSPC, "No space left on device"), 2)])
def test_a_write_that_stops_leaves_no_set_and_no_partial_folder(failure, status, shared, tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "out"
    out.mkdir()   # an empty folder given as --out stays as it was
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise failure
        return original(*args, **kwargs)

    original = training_set.write_image
    monkeypatch.setattr(training_set, "write_image", failing)
    capsys.readouterr()
    assert main(synth(shared, out)) == status
    lines = visible_lines(capsys.readouterr().err)
    assert len(lines) == 2 and lines[0].startswith("warning: skipped 1"), lines   # the unreadable normal
    assert (lines[1] == "interrupted") if status == 130 else ("no room to write" in lines[1]), lines
    assert len(calls) == 3 and out.is_dir() and not any(out.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---- without --layout: today's behaviour ----------------------------------------------------------
def test_without_layout_the_output_is_unchanged(shared, tmp_path):
    flat = shared.normals / "a"   # not searched recursively; --n defaults to 8
    out = tmp_path / "plain"
    assert main(synth(shared, out, layout=None, classes="Crack", n=None, normals=flat)) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert len(names) == 8 and names[0] == "00000_gray3_Crack.png" and not (out / MARKER).exists()
    assert len(list((out / "maps").glob("*.png"))) == 8 and not (out / "masks").exists()


# ---- bad inputs: one line each, nothing written or changed -----------------------------------------
def _dadnet_run(root: Path) -> Path:
    run = root / "dadnet_run"
    run.mkdir()
    config = dataclasses.asdict(get_config("dadnet", "smoke"))
    (run / "run.json").write_text(json.dumps({"paper": "dadnet", "config": config}))
    return run


def _foreign_classes_run(shared: Shared, root: Path) -> Path:
    run = root / "rust_run"
    shutil.copytree(shared.run, run)
    saved = json.loads((run / "run.json").read_text())
    saved["classes"] = ["Rust", "Dent", "Scratch", "Hole", "Stain"]
    (run / "run.json").write_text(json.dumps(saved))
    return run


BAD = {   # case: (how to call synth given the shared artefacts and a work folder, words the line holds)
    "normals-missing": (lambda s, w: dict(normals=w / "nowhere"), ("--normals", "no such file or folder")),
    "normals-empty": (lambda s, w: dict(normals=_mkdir(w / "empty" / "deeper")), ("--normals", "no images")),
    "normals-all-unreadable": (lambda s, w: dict(normals=_broken(w)), ("--normals", "none of its 1")),
    "normals-too-few": (lambda s, w: dict(normals=_two_normals(s, w)), ("--normals", "2 readable", "at least 3")),
    "class-unknown": (lambda s, w: dict(classes="Crack,Bogus"), ("--classes", "'Bogus'", "Spallation")),
    "class-combination-unknown": (lambda s, w: dict(classes="Crack+Bogus"), ("--classes", "'Bogus'")),
    "codebrim-foreign-classes": (lambda s, w: dict(run=_foreign_classes_run(s, w), classes="Rust"),
                                 ("--classes", "'Rust'", "--layout folders")),
    "run-of-dadnet": (lambda s, w: dict(run=_dadnet_run(w)), ("--run", "DADNet")),
    "n-too-small": (lambda s, w: dict(n="5"), ("--n 5", "at least 9")),
    "layout-unknown": (lambda s, w: dict(layout="voc"), ("--layout", "'voc'", "codebrim, folders")),
    "out-holds-a-set": (lambda s, w: dict(out=_copy(s.data, w / "other_set")), ("--out", "already holds")),
    "out-is-a-file": (lambda s, w: dict(out=_file(w / "a_file")), ("--out",)),
}


def _mkdir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder.parent


def _two_normals(shared: Shared, work: Path) -> Path:
    (work / "two").mkdir()
    for path in sorted((shared.normals / "a").iterdir())[:2]:
        shutil.copy(path, work / "two" / path.name)
    return work / "two"


def _broken(work: Path) -> Path:
    (work / "broken").mkdir()
    (work / "broken" / "x.png").write_bytes(b"\x89PNG but not really")
    return work / "broken"


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _file(path: Path) -> Path:
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_changes_nothing(case, shared, tmp_path, capsys):
    make, words = BAD[case]
    work = tmp_path / "work"
    work.mkdir()
    options = {"out": work / "out", **make(shared, work)}
    before = {p: digest(p) for p in (work, shared.run, shared.normals)}
    capsys.readouterr()
    rc = main(synth(shared, **options))
    err = capsys.readouterr().err
    lines = visible_lines(err)
    assert rc == 2 and "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(w in lines[0] for w in words), (lines[0], words)
    assert {p: digest(p) for p in before} == before   # nothing written, nothing changed
