"""Issue 17, "Nothing lost, nothing run": every bad input a clear line, no user file deleted, no pickle run.

``test_bad_input`` is ONE parametrised table of bad inputs given to ``python -m paper_repro``
(``paper_repro.cli.main``, called in this process) or to a public Python entry point. A case says
the setup it needs, the argv (placeholders ``{name}`` filled in by the setup), the exit status, words
the one-line message must hold (lower-case substrings), files or folders that must keep their bytes,
and paths that must not appear. Every case also checks: no traceback; for a refusal, stderr is exactly
one line starting ``error: ``; the session's shared data sets and runs are unchanged. Exit status 99
means "reached the stubbed experiment": the control cases show a valid command gets there, so a bad
input that also gets there was not refused where it entered.

The table is written in one section per part of the package that has to make a case pass, so a
failure names its owner in its id (``test_bad_input[data:synth-force-foreign-folder]``):

- ``cli``: the command-line modules and their argument checks (paper_repro/cli.py, paper_repro/commands/,
  book/reproduce.py, defect_gan/control.py, runs/devices.resolve_device);
- ``data``: data sets, data roots and image reading (paper_repro/data/*);
- ``runs``: run folders, resume and checkpoints (paper_repro/runs/*, the trainers' config_from_run);
- ``weights``: safe weight loading (planted pickles, weight files).

The session summary ends with the issue's count line: ``N bad-input cases tried; M ended in one line
with nothing lost``; ``BAD_INPUTS_LOG=<file>`` appends one JSON line per case (the line shown, the
problems). Below the table, targeted tests of the argument checks that do not fit it.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import re
import shutil
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch
from PIL import Image

from bad_inputs_support import (TABLE_OUTCOMES, build_artefacts, digest, plant_pickle, quick_digest, write_bomb)
from conftest import make_notebook
from paper_repro import cli as cli_module
from paper_repro.cli import main
from paper_repro.defect_gan.control import box_mask, class_names, file_part, synthesized_name
from paper_repro.errors import UserError
from paper_repro.runs import devices
from paper_repro.runs.folders import paper_of


# ==========================================================================================
# The harness
# ==========================================================================================
class WouldRun(Exception):
    """Raised by a stub standing in for an expensive experiment: the command went on to run it,
    so the bad input was not refused where it entered."""


@dataclass
class Ctx:
    tmp: Path
    art: object
    monkeypatch: pytest.MonkeyPatch
    p: dict = field(default_factory=dict)


SETUPS: dict[str, Callable[[Ctx], None]] = {}


def setup(name: str):
    def register(fn):
        SETUPS[name] = fn
        return fn
    return register


@dataclass(frozen=True)
class Case:
    id: str
    setup: str
    argv: tuple | Callable          # CLI argv (placeholders) or a Python call taking the placeholders
    code: int                       # expected exit status (99: reached the stubbed experiment)
    words: tuple = ()               # lower-case substrings of the one-line message
    untouched: tuple = ()           # placeholders of files/folders that must keep their bytes
    absent: tuple = ()              # placeholders of paths that must not exist afterwards
    owner: str = "cli"              # the part of the package that makes the case pass (see above)

    def __str__(self):
        return f"{self.owner}:{self.id}"


def invoke(target, p: dict) -> tuple[int, str, list[str]]:
    """Run a CLI argv or a Python call; return (exit status, extra stderr text, project warnings).

    Exceptions that escape are what ``python -m paper_repro`` would show as a traceback (exit 1);
    a UserError from a Python call is shown as the CLI shows it (one line, exit 2)."""
    extra = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if callable(target):
                target(p)
                rc = 0
            else:
                rc = main([a.format(**p) for a in target])
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except UserError as err:
            print(f"error: {err}", file=extra)
            rc = 2
        except WouldRun as err:
            print(f"[stub] the command went on to run the experiment: {err}", file=extra)
            rc = 99
        except Exception:  # noqa: BLE001 - exactly what a user would see as a traceback
            traceback.print_exc(file=extra)
            rc = 1
    # what the project itself warns (a terminal would show it); third-party libraries' warnings are not counted
    own = [f"{w.category.__name__}: {w.message}" for w in caught if "site-packages" not in str(w.filename)]
    return rc, extra.getvalue(), own


def visible_lines(text: str) -> list[str]:
    """The lines a terminal ends up showing: a progress bar redrawn with \\r and then cleared leaves
    nothing; text after the last \\r of a line is what stays."""
    lines = [segment.rsplit("\r", 1)[-1] for segment in text.split("\n")]
    return [line for line in lines if line.strip()]


def check_outcome(case: Case, p: dict, rc: int, out: str, err: str) -> list[str]:
    problems = []
    if "Traceback" in err:
        tail = "\n".join(err.strip().splitlines()[-3:])
        problems.append(f"a traceback on stderr: ...{tail}")
    lines = visible_lines(err)
    if rc != case.code:
        problems.append(f"exit status {rc}, expected {case.code}")
    if case.code == 99:  # a control case: valid input reaches the stubbed experiment
        return problems
    if case.code != 0:
        if len(lines) != 1:
            problems.append(f"stderr has {len(lines)} lines, expected exactly one: {lines[:4]}")
        if lines and not lines[-1].startswith("error: "):
            problems.append(f"the line does not start with 'error: ': {lines[-1][:200]!r}")
        haystack = (lines[-1] if lines else "").lower()
    else:
        haystack = (out + "\n" + err).lower()
    for word in case.words:
        word = word.format(**p).lower()
        if word not in haystack:
            problems.append(f"{word!r} not in the message: {haystack[:300]!r}")
    return problems


@pytest.fixture(scope="session")
def art(tmp_path_factory):
    return build_artefacts(tmp_path_factory.mktemp("bad_inputs_art"))


@pytest.fixture
def ctx(tmp_path, art, monkeypatch) -> Ctx:
    # torch hub and Hugging Face read from and write to this case's folder only, offline
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    work = tmp_path / "w"
    work.mkdir()
    c = Ctx(work, art, monkeypatch)
    src = art.MV / "tile" / "train" / "good"
    normals = work / "normals"
    normals.mkdir()
    for name in ("000.png", "001.png", "002.png"):
        shutil.copy(src / name, normals / name)
    (work / "afile.txt").write_text("a user's file\n")
    (work / "empty").mkdir()
    (work / "notes.txt").write_text("not an image\n")
    write_bomb(work / "bombdir" / "bomb.png")
    shutil.copy(src / "000.png", work / "bombdir" / "000.png")
    c.p.update(
        tmp=str(work), MV=str(art.MV), CB=str(art.CB), DG=str(art.DG), DD=str(art.DD),
        out=str(work / "out"), file=str(work / "afile.txt"), under_file=str(work / "afile.txt" / "sub"),
        long=str(work / ("x" * 300)), normals=str(normals), empty=str(work / "empty"),
        notes=str(work / "notes.txt"), bombdir=str(work / "bombdir"), bomb=str(work / "bombdir" / "bomb.png"),
        nomask=str(work / "no_such_mask.png"), marker=str(work / "MARKER"), nowhere=str(work / "nowhere"),
    )
    return c


# ==========================================================================================
# Setups
# ==========================================================================================
def _user_files(folder: Path) -> None:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("\\chapter{years of work}\n")
    (folder / "sub" / "data.bin").write_bytes(os.urandom(256))
    shutil.copy(Path(__file__), folder / "some_code.py")


@setup("base")
def _(c: Ctx):
    pass


@setup("victim")
def _(c: Ctx):
    victim = c.tmp / "victim"
    _user_files(victim)
    c.p["victim"] = str(victim)


@setup("cwd_victim")
def _(c: Ctx):
    SETUPS["victim"](c)
    c.monkeypatch.chdir(c.p["victim"])


@setup("cwd_victim_child")
def _(c: Ctx):
    SETUPS["victim"](c)
    child = Path(c.p["victim"]) / "child"
    child.mkdir()
    (child / "draft.txt").write_text("draft\n")
    c.monkeypatch.chdir(child)


@setup("forged_marker_garbage")
def _(c: Ctx):
    SETUPS["victim"](c)
    (Path(c.p["victim"]) / "SYNTHETIC.json").write_text("this is not the project's marker\n")


@setup("forged_marker_foreign")
def _(c: Ctx):
    SETUPS["victim"](c)
    (Path(c.p["victim"]) / "SYNTHETIC.json").write_text(json.dumps({"generator": "someone.else", "layout": "mvtec"}))


@setup("own_dataset")
def _(c: Ctx):
    from paper_repro.data.synthetic import synthesize

    ds = synthesize(c.tmp / "ds", "mvtec", categories=["tile"], size=16, n_train=2, n_test=1, progress=False)
    c.p["ds"] = str(ds)


@setup("own_dataset_cwd_inside")
def _(c: Ctx):
    SETUPS["own_dataset"](c)
    c.monkeypatch.chdir(Path(c.p["ds"]) / "tile")


@setup("readonly")
def _(c: Ctx):
    ro = c.tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    c.p["ro_out"] = str(ro / "out")
    if os.access(ro, os.W_OK):
        ro.chmod(0o755)
        pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod 555 does not stop writes; "
                    "the cases with a parent that is a file, and a name too long, cover an --out "
                    "that cannot be created")


def _copy_run(c: Ctx, source: Path, name: str = "run") -> Path:
    run = c.tmp / name
    shutil.copytree(source, run)
    c.p["run"] = str(run)
    c.p["runjson"] = str(run / "run.json")
    return run


def _edit_runjson(run: Path, edit) -> None:
    path = run / "run.json"
    text = edit(json.loads(path.read_text()))
    path.write_text(text if isinstance(text, str) else json.dumps(text, indent=2))


def _run_variants(prefix: str, source_attr: str, bad_field: str, bad_value):
    @setup(f"{prefix}_copy")
    def _(c: Ctx):
        _copy_run(c, getattr(c.art, source_attr))

    @setup(f"{prefix}_no_config")
    def _(c: Ctx):
        run = _copy_run(c, getattr(c.art, source_attr))
        _edit_runjson(run, lambda d: {k: v for k, v in d.items() if k != "config"})

    @setup(f"{prefix}_not_json")
    def _(c: Ctx):
        run = _copy_run(c, getattr(c.art, source_attr))
        _edit_runjson(run, lambda d: '{"config": {"image_size": 32,')

    @setup(f"{prefix}_list_json")
    def _(c: Ctx):
        run = _copy_run(c, getattr(c.art, source_attr))
        _edit_runjson(run, lambda d: "[]")

    @setup(f"{prefix}_bad_config")
    def _(c: Ctx):
        run = _copy_run(c, getattr(c.art, source_attr))
        _edit_runjson(run, lambda d: {**d, "config": {**d["config"], bad_field: bad_value}})

    @setup(f"{prefix}_no_ckpt")
    def _(c: Ctx):
        run = _copy_run(c, getattr(c.art, source_attr))
        for ckpt in run.glob("checkpoint_*"):
            ckpt.unlink()

    @setup(f"{prefix}_pickle")
    def _(c: Ctx):
        run = _copy_run(c, getattr(c.art, source_attr))
        ckpt = sorted(run.glob("checkpoint_*.safetensors"))[-1]
        ckpt.unlink()
        plant_pickle(ckpt, Path(c.p["marker"]))
        c.p["ckpt"] = str(ckpt)


_run_variants("dg", "DG", "image_size", "big")
_run_variants("dd", "DD", "recon_width", "wide")


@setup("dg_paper_key")
def _(c: Ctx):
    """A Defect-GAN run whose run.json names its paper (as the trainers will write it)."""
    run = _copy_run(c, c.art.DG)
    _edit_runjson(run, lambda d: {**d, "paper": "defect-gan"})


@setup("dg_paper_key_lies")
def _(c: Ctx):
    """A Defect-GAN run whose run.json says it is DADNet's: the paper key wins."""
    run = _copy_run(c, c.art.DG)
    _edit_runjson(run, lambda d: {**d, "paper": "dadnet"})


@setup("dd_data_gone")
def _(c: Ctx):
    run = _copy_run(c, c.art.DD)
    _edit_runjson(run, lambda d: {**d, "data_root": str(c.tmp / "gone")})


def _copy_mvtec(c: Ctx, to: Path | None = None) -> Path:
    data = to or c.tmp / "data"
    shutil.copytree(c.art.MV, data)
    c.p["data"] = str(data)
    return data


@setup("mv_single")
def _(c: Ctx):
    data = _copy_mvtec(c)
    good = data / "tile" / "train" / "good"
    for extra in sorted(good.iterdir())[1:]:
        extra.unlink()
    c.p["good"] = str(good)


@setup("mv_bomb")
def _(c: Ctx):
    data = _copy_mvtec(c)
    bomb = data / "tile" / "train" / "good" / "001.png"
    write_bomb(bomb)
    c.p["bomb"] = str(bomb)


@setup("mv_test_bomb")
def _(c: Ctx):
    data = _copy_mvtec(c)
    bomb = data / "tile" / "test" / "good" / "000.png"
    write_bomb(bomb)
    c.p["bomb"] = str(bomb)


@setup("mv_truncated")
def _(c: Ctx):
    data = _copy_mvtec(c)
    bad = data / "tile" / "train" / "good" / "001.png"
    bad.write_bytes(bad.read_bytes()[:200])
    c.p["bad"] = str(bad)


@setup("mv_no_mask")
def _(c: Ctx):
    data = _copy_mvtec(c)
    (data / "tile" / "ground_truth" / "crack" / "000_mask.png").unlink()
    c.p["image"] = str(data / "tile" / "test" / "crack" / "000.png")


@setup("mv_mask_size")
def _(c: Ctx):
    data = _copy_mvtec(c)
    mask = data / "tile" / "ground_truth" / "crack" / "000_mask.png"
    Image.new("L", (16, 16)).save(mask)
    c.p["mask"] = str(mask)


@setup("mv_outside_category")
def _(c: Ctx):
    data = _copy_mvtec(c, c.tmp / "d" / "mvtec")
    shutil.copytree(data / "tile", c.tmp / "d" / "evil" / "tile")


def _copy_codebrim(c: Ctx) -> Path:
    cb = c.tmp / "cb"
    shutil.copytree(c.art.CB, cb)
    c.p["cb"] = str(cb)
    c.p["xml"] = str(cb / "metadata" / "defects.xml")
    return cb


def _records(xml: Path) -> list[str]:
    return re.findall(r'<Defect name="([^"]+)">', xml.read_text())


def _record(name: str, labels: tuple[int, ...]) -> str:
    from paper_repro.data.codebrim import CODEBRIM_CLASSES

    body = "".join(f"<{k}>{v}</{k}>" for k, v in zip(CODEBRIM_CLASSES, labels))
    return f'  <Defect name="{name}">{body}</Defect>\n'


def _append_records(xml: Path, text: str) -> None:
    xml.write_text(xml.read_text().replace("</Annotation>", text + "</Annotation>"))


@setup("cb_absent")
def _(c: Ctx):
    cb = _copy_codebrim(c)
    _append_records(cb / "metadata" / "defects.xml", _record("ghost_0000001.png", (0, 1, 0, 0, 0, 0))
                    + _record("ghost_0000002.png", (0, 0, 1, 0, 0, 0)))


@setup("cb_dup")
def _(c: Ctx):
    cb = _copy_codebrim(c)
    xml = cb / "metadata" / "defects.xml"
    name = _records(xml)[0]
    old = re.search(rf'<Defect name="{re.escape(name)}">(.*?)</Defect>', xml.read_text(), re.S).group(1)
    crack = int(re.search(r"<Crack>(\d)</Crack>", old).group(1))
    _append_records(xml, _record(name, (0, 1 - crack, 1, 0, 0, 0)))  # the same crop, other labels
    c.p["dupname"] = name


@setup("cb_badxml")
def _(c: Ctx):
    xml = _copy_codebrim(c) / "metadata" / "defects.xml"
    xml.write_text(xml.read_text()[:-40])


@setup("cb_laughs")
def _(c: Ctx):
    cb = _copy_codebrim(c)
    lol = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)]
    (cb / "metadata" / "defects.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE Annotation [' + "".join(lol) + ']>\n<Annotation>\n'
        '<Defect name="x.png"><Background>&lol9;</Background></Defect>\n</Annotation>\n')


@setup("cb_xxe")
def _(c: Ctx):
    cb = _copy_codebrim(c)
    secret = c.tmp / "secret.txt"
    secret.write_text("1")
    xml = cb / "metadata" / "defects.xml"
    text = xml.read_text().replace("<Annotation>", f'<!DOCTYPE Annotation [<!ENTITY x SYSTEM "file://{secret}">]>\n'
                                   "<Annotation>", 1)
    xml.write_text(text.replace("<Crack>0</Crack>", "<Crack>&x;</Crack>", 1))


@setup("cb_noname")
def _(c: Ctx):
    cb = _copy_codebrim(c)
    _append_records(cb / "metadata" / "defects.xml", "  <Defect><Crack>1</Crack></Defect>\n")


@setup("cb_badlabel")
def _(c: Ctx):
    xml = _copy_codebrim(c) / "metadata" / "defects.xml"
    xml.write_text(xml.read_text().replace("<Crack>0</Crack>", "<Crack>2</Crack>", 1))


@setup("cb_unrecorded")
def _(c: Ctx):
    cb = _copy_codebrim(c)
    src = sorted((cb / "train" / "defects").iterdir())[0]
    shutil.copy(src, cb / "train" / "defects" / "image_9999999_crop_0000001.png")
    c.p["unrecorded"] = str(cb / "train" / "defects" / "image_9999999_crop_0000001.png")


@setup("cb_bomb")
def _(c: Ctx):
    cb = _copy_codebrim(c)
    bomb = sorted((cb / "train" / "defects").iterdir())[0]
    write_bomb(bomb)
    c.p["bomb"] = str(bomb)


def _stub(name: str):
    def run(*args, **kwargs):
        shown = ", ".join(repr(a)[:60] for a in args[:4])
        raise WouldRun(f"{name}({shown}, ...)")
    return run


@setup("baselines_stub")
def _(c: Ctx):
    """Only the training steps are stubs (they raise WouldRun): everything the commands check before
    training - folders, weight files, categories, model construction - runs as it is."""
    from paper_repro.baselines import anomalib_models
    from paper_repro.dadnet import trainer as dadnet_trainer
    from paper_repro.defect_gan import trainer as gan_trainer
    from paper_repro.experiments import bridge, dadnet_table4, dadnet_tables_1_3, detectors

    for module, name in ((anomalib_models, "fit"), (detectors, "fit"), (detectors, "dadnet_predictions"),
                         (dadnet_tables_1_3, "dadnet_predictions"), (dadnet_table4, "dadnet_predictions"),
                         (bridge, "compare_sources"), (gan_trainer, "train"), (dadnet_trainer, "train")):
        c.monkeypatch.setattr(module, name, _stub(f"{module.__name__}.{name}"))


@setup("fake_book")
def _(c: Ctx):
    from paper_repro.book import reproduce

    book = c.tmp / "book"
    make_notebook(book / "ch.ipynb", [("code", "x = 1")], parameters="scale = 'smoke'")
    (book / "_toc.yml").write_text("format: jb-book\nroot: ch\n")
    c.p["book"] = str(book)

    def stub(book_root, chapters, store, **how):
        raise WouldRun(f"run_chapters({chapters}, {how.get('parameters')})")

    c.monkeypatch.setattr(reproduce, "run_chapters", stub)


# ==========================================================================================
# Python calls of the table
# ==========================================================================================
def py_synthesize_force_foreign(p):
    from paper_repro.data.synthetic import synthesize

    synthesize(p["victim"], "mvtec", categories=["tile"], size=16, n_train=2, n_test=1, progress=False, force=True)


def py_synthesize_force_cwd(p):
    from paper_repro.data.synthetic import synthesize

    synthesize(".", "mvtec", categories=["tile"], size=16, n_train=2, n_test=1, progress=False, force=True)


def py_read_image_bomb(p):
    from paper_repro.data.io import read_image

    read_image(Path(p["bomb"]))


def py_read_images_bomb(p):
    from paper_repro.defect_gan.control import read_images

    read_images(p["bombdir"], 32)


def py_normal_pool_bomb(p):
    from paper_repro.data import NormalPool

    pool = NormalPool(p["bombdir"], 4, 32)
    for i in range(len(pool)):
        pool[i]


def py_load_generator_dadnet_run(p):
    from paper_repro.defect_gan.trainer import load_generator

    load_generator(p["DD"])


def py_load_model_defect_gan_run(p):
    from paper_repro.dadnet.trainer import load_model

    load_model(p["DG"])


def py_config_from_run_no_config(p):
    from paper_repro.runs.folders import config_from_run

    config_from_run(p["run"], "defect_gan")


def py_dg_resume_other_lr(p):
    from paper_repro.data.roots import resolve_data
    from paper_repro.defect_gan.data import load_training_data
    from paper_repro.defect_gan.trainer import config_from_run, train

    cfg, _ = config_from_run(p["run"])
    cfg = dataclasses.replace(cfg, lr=cfg.lr * 10)
    data = load_training_data(cfg, resolve_data(p["CB"], "codebrim", "smoke"))
    train(cfg, p["run"], data, resume=True, progress=False)


def py_dd_resume_other_lr(p):
    from paper_repro.dadnet.trainer import config_from_run, pseudo_anomalies, train

    cfg, _ = config_from_run(p["run"])
    cfg = dataclasses.replace(cfg, lr=cfg.lr * 10)
    train(cfg, p["run"], pseudo_anomalies(cfg, Path(p["MV"]), "tile", "dgm"), resume=True, progress=False)


def py_baseline_pretrained_pickle(p):
    from paper_repro.baselines.anomalib_models import BaselineConfig, build

    path = plant_pickle(Path(p["tmp"]) / "backbone.pth", Path(p["marker"]))
    build(BaselineConfig("PaDiM", image_size=32, pretrained=str(path)))


# ==========================================================================================
# The table
# ==========================================================================================
def synth(*extra, out="{out}", layout="mvtec"):
    base = ["data", "synth", "--layout", layout, "--size", "16", "--n-train", "2", "--n-test", "1"]
    if layout == "mvtec" and "--categories" not in extra:
        base += ["--categories", "tile"]
    return (*base, "--out", out, *extra)


def check(root, layout="codebrim", *extra):
    return ("data", "check", "--root", root, "--layout", layout, *extra)


def dgt(*extra, out="{out}", data="{CB}", iterations="2", scale="smoke", normals_source="background-recrop"):
    source = ("--normals-source", normals_source) if normals_source else ()  # None: the scale's default
    return ("defect-gan", "train", "--data", data, "--scale", scale, "--iterations", iterations,
            "--out", out, *source, *extra)


def dgs(*extra, run="{DG}", normals="{normals}", classes="Crack", n="2", out="{out}"):
    return ("defect-gan", "synth", "--run", run, "--normals", normals, "--classes", classes, "--n", n,
            "--out", out, *extra)


def dgr(*extra, run="{DG}", images="{normals}", out="{out}"):
    return ("defect-gan", "restore", "--run", run, "--images", images, "--out", out, *extra)


def ddt(*extra, out="{out}", data="{MV}", category="tile", epochs="1", scale="smoke"):
    return ("dadnet", "train", "--data", data, "--category", category, "--scale", scale,
            "--epochs", epochs, "--out", out, *extra)


def dde(*extra, run="{run}"):
    return ("dadnet", "eval", "--run", run, *extra)


def bl(action, *extra):
    return ("baselines", action, "--scale", "smoke", "--data", "{MV}", *extra)


def rep(*extra, out="{out}"):
    return ("reproduce", "--scale", "smoke", "--out", out, "--book", "{book}", *extra)


def section(owner: str, *cases: Case) -> list[Case]:
    return [dataclasses.replace(case, owner=owner) for case in cases]


C = Case

# ---- owner cli: the commands' argument checks (paper_repro/cli.py and the commands' modules) -------
CLI_CASES = section(
    "cli",
    # defect-gan train: counts, seeds, threads, devices, --out
    C("dgt-iterations-0", "base", dgt(iterations="0"), 2, ("--iterations", "0"), ("tmp",)),
    C("dgt-iterations-negative", "base", dgt(iterations="-5"), 2, ("--iterations", "-5"), ("tmp",)),
    C("dgt-iterations-not-a-number", "base", dgt(iterations="many"), 2, ("--iterations", "many"), ("tmp",)),
    C("dgt-threads-negative", "base", dgt("--threads", "-1"), 2, ("--threads", "-1"), ("tmp",)),
    C("dgt-threads-0", "base", dgt("--threads", "0"), 2, ("--threads", "0"), ("tmp",)),
    C("dgt-seed-negative", "base", dgt("--seed", "-1"), 2, ("--seed", "-1"), ("tmp",)),
    C("dgt-seed-too-large", "base", dgt("--seed", str(2**64)), 2, ("--seed", str(2**64)), ("tmp",)),
    C("dgt-device-mps", "base", dgt("--device", "mps"), 2, ("--device", "mps"), ("tmp",)),
    C("dgt-device-xpu", "base", dgt("--device", "xpu"), 2, ("--device", "xpu"), ("tmp",)),
    C("dgt-device-cuda", "base", dgt("--device", "cuda"), 2, ("--device", "cuda"), ("tmp",)),
    C("dgt-device-meta", "base", dgt("--device", "meta"), 2, ("--device", "meta"), ("tmp",)),
    C("dgt-device-bogus", "base", dgt("--device", "bogus"), 2, ("--device", "bogus"), ("tmp",)),
    C("dgt-out-is-a-file", "base", dgt(out="{file}"), 2, ("--out", "{file}"), ("file",)),
    C("dgt-out-under-a-file", "base", dgt(out="{under_file}"), 2, ("--out", "{file}"), ("file",)),
    C("dgt-out-name-too-long", "base", dgt(out="{long}"), 2, ("--out", "xxxxxxxxxx"), ("tmp",)),
    C("dgt-out-in-read-only-folder", "readonly", dgt(out="{ro_out}"), 2, ("{ro_out}",)),
    C("dgt-ablation-unknown", "base", dgt("--ablation", "bogus"), 2, ("--ablation", "bogus"), ("tmp",)),
    C("dgt-scale-unknown", "base", dgt(scale="huge"), 2, ("--scale", "huge"), ("tmp",)),
    # defect-gan train --out that holds a run: the other paper's, or a damaged run.json
    C("dgt-resume-dadnet-run", "dd_copy", dgt("--resume", out="{run}"), 2, ("{run}", "dadnet"), ("run",)),
    C("dgt-dadnet-run-without-resume", "dd_copy", dgt(out="{run}"), 2, ("{run}", "dadnet"), ("run",)),
    C("dgt-resume-run-json-without-config", "dg_no_config", dgt("--resume", out="{run}", iterations="5"), 2,
      ("{runjson}", "config"), ("run",)),
    C("dgt-resume-run-json-not-json", "dg_not_json", dgt("--resume", out="{run}", iterations="5"), 2,
      ("{runjson}",), ("run",)),
    C("dgt-resume-run-json-a-list", "dg_list_json", dgt("--resume", out="{run}", iterations="5"), 2,
      ("{runjson}",), ("run",)),

    # defect-gan synth
    C("dgs-classes-with-space-accepted", "base", dgs(classes="Crack, Spallation"), 0),
    C("dgs-classes-other-case-accepted", "base", dgs(classes="crack"), 0),
    C("dgs-classes-unknown", "base", dgs(classes="Bogus"), 2, ("bogus", "crack", "spallation"), ("tmp",)),
    C("dgs-classes-empty", "base", dgs(classes=""), 2, ("--classes",), ("tmp",)),
    C("dgs-classes-only-commas", "base", dgs(classes=", ,"), 2, ("--classes",), ("tmp",)),
    C("dgs-classes-path", "base", dgs(classes="../x"), 2, ("--classes", "../x"), ("tmp",)),
    C("dgs-classes-dotdot", "base", dgs(classes="Crack,.."), 2, ("--classes", ".."), ("tmp",)),
    C("dgs-classes-backslash", "base", dgs(classes="Crack\\..\\x"), 2, ("--classes",), ("tmp",)),
    C("dgs-n-0", "base", dgs(n="0"), 2, ("--n", "0"), ("tmp",)),
    C("dgs-n-negative", "base", dgs(n="-1"), 2, ("--n", "-1"), ("tmp",)),
    C("dgs-region-nan", "base", dgs("--region", "nan,0,10,10"), 2, ("--region", "nan"), ("tmp",)),
    C("dgs-region-inf", "base", dgs("--region", "0,0,inf,10"), 2, ("--region", "inf"), ("tmp",)),
    C("dgs-region-minus-inf", "base", dgs("--region=-inf,0,10,10"), 2, ("--region", "inf"), ("tmp",)),
    C("dgs-region-three-values", "base", dgs("--region", "0,0,10"), 2, ("--region", "0,0,10"), ("tmp",)),
    C("dgs-region-five-values", "base", dgs("--region", "0,0,10,10,10"), 2, ("--region", "0,0,10,10,10"),
      ("tmp",)),
    C("dgs-region-words", "base", dgs("--region", "a,b,c,d"), 2, ("--region", "a,b,c,d"), ("tmp",)),
    C("dgs-region-empty-box", "base", dgs("--region", "5,5,5,5"), 2, ("region",), ("tmp",)),
    C("dgs-region-outside-image", "base", dgs("--region", "100,100,200,200"), 2, ("region",), ("tmp",)),
    C("dgs-mask-missing", "base", dgs("--mask", "{nomask}"), 2, ("{nomask}",), ("tmp",)),
    C("dgs-mask-not-an-image", "base", dgs("--mask", "{notes}"), 2, ("{notes}",), ("tmp",)),
    C("dgs-mask-bomb", "base", dgs("--mask", "{bomb}"), 2, ("{bomb}",), ("tmp",)),
    C("dgs-normals-missing", "base", dgs(normals="{nowhere}"), 2, ("{nowhere}",), ("tmp",)),
    C("dgs-normals-empty", "base", dgs(normals="{empty}"), 2, ("{empty}",), ("tmp",)),
    C("dgs-normals-bomb", "base", dgs(normals="{bombdir}"), 2, ("{bomb}",), ("tmp",)),
    C("dgs-api-read-images-bomb", "base", py_read_images_bomb, 2, ("{bomb}",)),
    C("dgs-run-missing", "base", dgs(run="{nowhere}"), 2, ("{nowhere}",), ("tmp",)),
    C("dgs-run-plain-folder", "base", dgs(run="{empty}"), 2, ("{empty}", "run.json"), ("tmp",)),
    C("dgs-run-is-dadnet", "base", dgs(run="{DD}"), 2, ("{DD}", "dadnet"), ("tmp",)),
    C("dgs-run-paper-key-accepted", "dg_paper_key", dgs(run="{run}"), 0),
    C("dgs-run-paper-key-says-dadnet", "dg_paper_key_lies", dgs(run="{run}"), 2, ("{run}", "dadnet"), ("run",)),
    C("dgs-run-json-without-config", "dg_no_config", dgs(run="{run}"), 2, ("{runjson}", "config"), ("run",)),
    C("dgs-run-json-not-json", "dg_not_json", dgs(run="{run}"), 2, ("{runjson}",), ("run",)),
    C("dgs-run-json-a-list", "dg_list_json", dgs(run="{run}"), 2, ("{runjson}",), ("run",)),
    C("dgs-run-json-bad-value", "dg_bad_config", dgs(run="{run}"), 2, ("{runjson}", "image_size"), ("run",)),
    C("dgs-run-without-checkpoint", "dg_no_ckpt", dgs(run="{run}"), 2, ("{run}",), ("run",)),
    C("dgs-out-is-a-file", "base", dgs(out="{file}"), 2, ("--out", "{file}"), ("file",)),
    C("dgs-out-under-a-file", "base", dgs(out="{under_file}"), 2, ("--out", "{file}"), ("file",)),
    C("dgs-out-name-too-long", "base", dgs(out="{long}"), 2, ("--out", "xxxxxxxxxx"), ("tmp",)),
    C("dgs-out-in-read-only-folder", "readonly", dgs(out="{ro_out}"), 2, ("{ro_out}",)),
    C("dgs-device-mps", "base", dgs("--device", "mps"), 2, ("--device", "mps"), ("tmp",)),
    C("dgs-device-cuda", "base", dgs("--device", "cuda"), 2, ("--device", "cuda"), ("tmp",)),
    C("dgs-seed-negative", "base", dgs("--seed", "-1"), 2, ("--seed", "-1"), ("tmp",)),

    # defect-gan restore
    C("dgr-run-is-dadnet", "base", dgr(run="{DD}"), 2, ("{DD}", "dadnet"), ("tmp",)),
    C("dgr-run-json-without-config", "dg_no_config", dgr(run="{run}"), 2, ("{runjson}", "config"), ("run",)),
    C("dgr-images-missing", "base", dgr(images="{nowhere}"), 2, ("{nowhere}",), ("tmp",)),
    C("dgr-images-bomb", "base", dgr(images="{bombdir}"), 2, ("{bomb}",), ("tmp",)),
    C("dgr-out-is-a-file", "base", dgr(out="{file}"), 2, ("--out", "{file}"), ("file",)),
    C("dgr-out-under-a-file", "base", dgr(out="{under_file}"), 2, ("--out", "{file}"), ("file",)),
    C("dgr-device-mps", "base", dgr("--device", "mps"), 2, ("--device", "mps"), ("tmp",)),
    C("dgr-device-bogus", "base", dgr("--device", "bogus"), 2, ("--device", "bogus"), ("tmp",)),
    C("dgr-seed-negative", "base", dgr("--seed", "-1"), 2, ("--seed", "-1"), ("tmp",)),

    # dadnet train
    C("ddt-epochs-0", "base", ddt(epochs="0"), 2, ("--epochs", "0"), ("tmp",)),
    C("ddt-epochs-negative", "base", ddt(epochs="-2"), 2, ("--epochs", "-2"), ("tmp",)),
    C("ddt-device-mps", "base", ddt("--device", "mps"), 2, ("--device", "mps"), ("tmp",)),
    C("ddt-device-cuda", "base", ddt("--device", "cuda"), 2, ("--device", "cuda"), ("tmp",)),
    C("ddt-device-bogus", "base", ddt("--device", "bogus"), 2, ("--device", "bogus"), ("tmp",)),
    C("ddt-category-unknown", "base", ddt(category="bogus"), 2, ("bogus",), ("tmp",)),
    C("ddt-category-leaves-data-root", "mv_outside_category", ddt(data="{data}", category="../evil/tile"), 2,
      ("--category", "../evil/tile"), ("tmp",)),
    C("ddt-category-dotdot", "base", ddt(category=".."), 2, ("--category", ".."), ("tmp",)),
    C("ddt-category-absolute", "base", ddt(category="{tmp}"), 2, ("--category", "{tmp}"), ("tmp",)),
    C("ddt-out-is-a-file", "base", ddt(out="{file}"), 2, ("--out", "{file}"), ("file",)),
    C("ddt-out-under-a-file", "base", ddt(out="{under_file}"), 2, ("--out", "{file}"), ("file",)),
    C("ddt-out-name-too-long", "base", ddt(out="{long}"), 2, ("--out", "xxxxxxxxxx"), ("tmp",)),
    C("ddt-out-in-read-only-folder", "readonly", ddt(out="{ro_out}"), 2, ("{ro_out}",)),
    C("ddt-resume-defect-gan-run", "dg_copy", ddt("--resume", out="{run}"), 2, ("{run}", "defect-gan"), ("run",)),
    C("ddt-defect-gan-run-without-resume", "dg_copy", ddt(out="{run}"), 2, ("{run}", "defect-gan"), ("run",)),
    C("ddt-resume-run-json-without-config", "dd_no_config", ddt("--resume", out="{run}"), 2,
      ("{runjson}", "config"), ("run",)),
    C("ddt-resume-run-json-not-json", "dd_not_json", ddt("--resume", out="{run}"), 2, ("{runjson}",), ("run",)),
    C("ddt-scale-unknown", "base", ddt(scale="huge"), 2, ("--scale", "huge"), ("tmp",)),

    # dadnet eval
    C("dde-run-is-defect-gan", "dg_copy", dde(), 2, ("{run}", "defect-gan"), ("run",)),
    C("dde-run-missing", "base", dde(run="{nowhere}"), 2, ("{nowhere}",)),
    C("dde-run-json-without-config", "dd_no_config", dde(), 2, ("{runjson}", "config"), ("run",)),
    C("dde-run-json-not-json", "dd_not_json", dde(), 2, ("{runjson}",), ("run",)),
    C("dde-run-json-a-list", "dd_list_json", dde(), 2, ("{runjson}",), ("run",)),
    C("dde-run-json-bad-value", "dd_bad_config", dde(), 2, ("{runjson}", "recon_width"), ("run",)),
    C("dde-run-without-checkpoint", "dd_no_ckpt", dde(), 2, ("{run}",), ("run",)),
    C("dde-category-unknown", "dd_copy", dde("--category", "bogus"), 2, ("bogus",), ("run",)),
    C("dde-category-path", "dd_copy", dde("--category", "../tile"), 2, ("--category", "../tile"), ("run",)),
    C("dde-device-mps", "dd_copy", dde("--device", "mps"), 2, ("--device", "mps"), ("run",)),
    C("dde-device-cuda", "dd_copy", dde("--device", "cuda"), 2, ("--device", "cuda"), ("run",)),

    # baselines (the training steps are stubs: a valid command reaches them, code 99)
    C("bl-tables-valid-reaches-experiment", "baselines_stub", bl("tables", "--runs", "1"), 99),
    C("bl-tables-runs-0", "baselines_stub", bl("tables", "--runs", "0"), 2, ("--runs", "0")),
    C("bl-tables-runs-negative", "baselines_stub", bl("tables", "--runs", "-1"), 2, ("--runs", "-1")),
    C("bl-tables-seed-negative", "baselines_stub", bl("tables", "--seed", "-1"), 2, ("--seed", "-1")),
    C("bl-tables-device-mps", "baselines_stub", bl("tables", "--device", "mps"), 2, ("--device", "mps")),
    C("bl-tables-device-bogus", "baselines_stub", bl("tables", "--device", "bogus"), 2, ("--device", "bogus")),
    C("bl-tables-methods-unknown", "baselines_stub", bl("tables", "--methods", "PaDiM,Bogus"), 2,
      ("--methods", "bogus")),
    C("bl-tables-methods-empty", "baselines_stub", bl("tables", "--methods", ","), 2, ("--methods",)),
    C("bl-tables-pretrained-missing", "baselines_stub", bl("tables", "--pretrained", "{nowhere}.pth"), 2,
      ("--pretrained", "{nowhere}.pth")),
    C("bl-tables-data-missing", "baselines_stub", ("baselines", "tables", "--scale", "smoke", "--data", "{nowhere}"),
      2, ("{nowhere}",)),
    C("bl-tables-out-is-a-file", "baselines_stub", bl("tables", "--out", "{file}"), 2, ("--out", "{file}"),
      ("file",)),
    C("bl-ablation-runs-0", "baselines_stub", bl("ablation", "--runs", "0"), 2, ("--runs", "0")),
    C("bl-ablation-device-mps", "baselines_stub", bl("ablation", "--device", "mps"), 2, ("--device", "mps")),
    C("bl-ablation-out-under-a-file", "baselines_stub", bl("ablation", "--out", "{under_file}"), 2,
      ("--out", "{file}"), ("file",)),
    C("bl-bridge-runs-negative", "baselines_stub", bl("bridge", "--runs", "-2"), 2, ("--runs", "-2")),
    C("bl-bridge-category-path", "baselines_stub", bl("bridge", "--category", "../x"), 2, ("--category", "../x")),
    C("bl-bridge-category-unknown", "baselines_stub", bl("bridge", "--category", "bogus"), 2,
      ("--category", "bogus")),
    C("bl-bridge-codebrim-missing", "baselines_stub", bl("bridge", "--codebrim", "{nowhere}"), 2, ("{nowhere}",)),

    # reproduce (the chapters are a stub: a valid command reaches them, code 99)
    C("rep-valid-reaches-chapters", "fake_book", rep(), 99),
    C("rep-runs-0", "fake_book", rep("--runs", "0"), 2, ("--runs", "0"), ("tmp",)),
    C("rep-runs-negative", "fake_book", rep("--runs", "-3"), 2, ("--runs", "-3"), ("tmp",)),
    C("rep-seed-negative", "fake_book", rep("--seed", "-1"), 2, ("--seed", "-1"), ("tmp",)),
    C("rep-device-mps", "fake_book", rep("--device", "mps"), 2, ("--device", "mps"), ("tmp",)),
    C("rep-device-xpu", "fake_book", rep("--device", "xpu"), 2, ("--device", "xpu"), ("tmp",)),
    C("rep-device-bogus", "fake_book", rep("--device", "bogus"), 2, ("--device", "bogus"), ("tmp",)),
    C("rep-out-is-a-file", "fake_book", rep(out="{file}"), 2, ("--out", "{file}"), ("file",)),
    C("rep-out-under-a-file", "fake_book", rep(out="{under_file}"), 2, ("--out", "{file}"), ("file",)),
    C("rep-out-name-too-long", "fake_book", rep(out="{long}"), 2, ("--out", "xxxxxxxxxx"), ("tmp",)),
    C("rep-data-root-missing", "fake_book", rep("--data-root", "{nowhere}"), 2, ("{nowhere}",), ("tmp",)),
    C("rep-only-unknown", "fake_book", rep("--only", "bogus"), 2, ("bogus",), ("tmp",)),
    C("rep-only-path", "fake_book", rep("--only", "../../etc/x"), 2, ("../../etc/x",), ("tmp",)),
    C("rep-book-missing", "fake_book", ("reproduce", "--scale", "smoke", "--out", "{out}", "--book", "{nowhere}"), 2,
      ("{nowhere}",), ("tmp",)),
    C("rep-scale-missing", "fake_book", ("reproduce", "--out", "{out}", "--book", "{book}"), 2, ("--scale",),
      ("tmp",)),
)

# ---- owner data: data sets, data roots, image reading (paper_repro/data/*) -------------------------
DATA_CASES = section(
    "data",
    # data synth: --force never replaces what the project did not write (item 1)
    C("synth-force-foreign-folder", "victim", synth("--force", out="{victim}"), 2, ("--force", "{victim}"), ("victim",)),
    C("synth-force-dot-is-cwd", "cwd_victim", synth("--force", out="."), 2, ("--force",), ("victim",)),
    C("synth-force-cwd-absolute", "cwd_victim", synth("--force", out="{victim}"), 2, ("--force", "{victim}"),
      ("victim",)),
    C("synth-force-dotdot-parent-of-cwd", "cwd_victim_child", synth("--force", out=".."), 2, ("--force",),
      ("victim",)),
    C("synth-force-parent-of-cwd-absolute", "cwd_victim_child", synth("--force", out="{victim}"), 2,
      ("--force", "{victim}"), ("victim",)),
    C("synth-force-own-set-holding-cwd", "own_dataset_cwd_inside", synth("--force", out="{ds}"), 2, ("--force",),
      ("ds",)),
    C("synth-force-marker-not-json", "forged_marker_garbage", synth("--force", out="{victim}"), 2,
      ("--force", "{victim}"), ("victim",)),
    C("synth-force-marker-of-someone-else", "forged_marker_foreign", synth("--force", out="{victim}"), 2,
      ("--force", "{victim}"), ("victim",)),
    C("synth-force-out-is-a-file", "base", synth("--force", out="{file}"), 2, ("{file}",), ("file",)),
    C("synth-force-own-data-set-is-replaced", "own_dataset", synth("--force", out="{ds}"), 0),
    C("synth-api-force-foreign-folder", "victim", py_synthesize_force_foreign, 2, ("{victim}",), ("victim",)),
    C("synth-api-force-cwd", "cwd_victim", py_synthesize_force_cwd, 2, (), ("victim",)),
    C("synth-no-force-nonempty", "victim", synth(out="{victim}"), 2, ("{victim}",), ("victim",)),
    C("synth-no-force-out-is-a-file", "base", synth(out="{file}"), 2, ("{file}",), ("file",)),
    C("synth-out-under-a-file", "base", synth(out="{under_file}"), 2, ("{file}",), ("file",)),
    C("synth-out-name-too-long", "base", synth(out="{long}"), 2, ("xxxxxxxxxx",)),
    C("synth-out-in-read-only-folder", "readonly", synth(out="{ro_out}"), 2, ("{ro_out}",)),
    # data synth: counts and names checked where they enter (items 7 and 9)
    C("synth-size-0", "base", synth("--size", "0"), 2, ("--size", "0")),
    C("synth-size-negative", "base", synth("--size", "-32"), 2, ("--size", "-32")),
    C("synth-size-huge", "base", synth("--size", "100000"), 2, ("--size", "100000")),
    C("synth-n-train-0", "base", synth("--n-train", "0"), 2, ("--n-train", "0")),
    C("synth-n-train-negative", "base", synth("--n-train", "-3"), 2, ("--n-train", "-3")),
    C("synth-n-train-1-mvtec", "base", synth("--n-train", "1"), 2, ("--n-train", "1", "at least 2")),
    C("synth-n-test-0", "base", synth("--n-test", "0"), 2, ("--n-test", "0")),
    C("synth-n-extra-negative", "base", synth("--n-extra", "-1"), 2, ("--n-extra", "-1")),
    C("synth-n-originals-negative", "base", synth("--n-originals", "-1", layout="codebrim"), 2, ("--n-originals",)),
    C("synth-n-originals-mvtec", "base", synth("--n-originals", "2"), 2, ("--n-originals", "codebrim")),
    C("synth-seed-negative", "base", synth("--seed", "-1"), 2, ("--seed", "-1"), ("tmp",)),
    C("synth-seed-not-a-number", "base", synth("--seed", "abc"), 2, ("--seed",)),
    C("synth-layout-unknown", "base", synth(layout="voc"), 2, ("--layout", "voc")),
    C("synth-categories-unknown", "base", synth("--categories", "bogus"), 2, ("bogus",)),
    C("synth-categories-path", "base", synth("--categories", "../x"), 2, ("../x",), ("tmp",)),
    C("synth-codebrim-with-category", "base", synth("--categories", "tile", layout="codebrim"), 2, ("tile",)),
    C("synth-categories-with-spaces-accepted", "base", synth("--categories", "tile, wood"), 0),
    C("synth-codebrim-with-originals", "base", synth("--n-originals", "1", layout="codebrim"), 0,
      ("1 photographs",)),
    # data check
    C("check-mvtec-root-missing", "base", check("{nowhere}", "mvtec"), 2, ("{nowhere}",)),
    C("check-codebrim-root-missing", "base", check("{nowhere}"), 2, ("{nowhere}",)),
    C("check-root-is-a-file", "base", check("{file}", "mvtec"), 2, ("{file}",)),
    C("check-layout-unknown", "base", check("{MV}", "voc"), 2, ("--layout", "voc")),
    C("check-codebrim-records-of-absent-files-load", "cb_absent", check("{cb}"), 0,
      ("2 metadata records name files absent", "ghost_0000001.png"), ("cb",)),
    C("check-codebrim-duplicate-records-warn", "cb_dup", check("{cb}"), 0, ("{dupname}", "more than once"), ("cb",)),
    C("check-codebrim-malformed-xml", "cb_badxml", check("{cb}"), 2, ("{xml}",)),
    C("check-codebrim-billion-laughs", "cb_laughs", check("{cb}"), 2, ("defects.xml",)),
    C("check-codebrim-external-entity", "cb_xxe", check("{cb}"), 2, ("defects.xml",)),
    C("check-codebrim-record-without-name", "cb_noname", check("{cb}"), 2, ("{xml}",)),
    C("check-codebrim-label-not-0-or-1", "cb_badlabel", check("{cb}"), 2, ("{xml}", "crack")),
    C("check-codebrim-image-without-record", "cb_unrecorded", check("{cb}"), 2, ("{unrecorded}",)),
    C("check-codebrim-bomb", "cb_bomb", check("{cb}"), 2, ("{bomb}",)),
    C("check-mvtec-bomb", "mv_bomb", check("{data}", "mvtec"), 2, ("{bomb}",)),
    C("check-mvtec-test-bomb", "mv_test_bomb", check("{data}", "mvtec"), 2, ("{bomb}",)),
    C("check-mvtec-truncated-image", "mv_truncated", check("{data}", "mvtec"), 2, ("{bad}",)),
    C("check-mvtec-missing-mask", "mv_no_mask", check("{data}", "mvtec"), 2, ("{image}",)),
    C("check-mvtec-mask-size", "mv_mask_size", check("{data}", "mvtec"), 2, ("{mask}",)),
    C("check-mvtec-category-unknown", "base", check("{MV}", "mvtec", "--categories", "bogus"), 2, ("bogus",)),
    C("check-mvtec-single-training-image", "mv_single", check("{data}", "mvtec"), 2, ("{good}", "at least 2")),
    C("check-originals-missing", "base", check("{MV}", "codebrim-originals"), 2, ("{MV}", "original_dataset/")),
    C("check-api-read-image-bomb", "base", py_read_image_bomb, 2, ("{bomb}",)),
    C("check-api-normal-pool-bomb", "base", py_normal_pool_bomb, 2, ("{bomb}",)),
    # the trainers' data, refused before any training
    C("dgt-data-missing", "base", dgt(data="{nowhere}"), 2, ("{nowhere}",), ("tmp",)),
    C("dgt-data-is-mvtec", "base", dgt(data="{MV}"), 2, ("{MV}",), ("tmp",)),
    C("dgt-normals-dir-missing", "base", dgt("--normals-dir", "{nowhere}"), 2, ("{nowhere}",), ("tmp",)),
    C("dgt-normals-dir-bomb", "base", dgt("--normals-dir", "{bombdir}", normals_source=None), 2, ("{bomb}",)),
    C("ddt-data-missing", "base", ddt(data="{nowhere}"), 2, ("{nowhere}",), ("tmp",)),
    C("ddt-data-is-codebrim", "base", ddt(data="{CB}"), 2, ("{CB}",), ("tmp",)),
    C("ddt-single-training-image", "mv_single", ddt(data="{data}"), 2, ("{good}",), ("data",)),
    C("ddt-training-bomb", "mv_bomb", ddt(data="{data}"), 2, ("{bomb}",), ("data",)),
    C("dde-recorded-data-gone", "dd_data_gone", dde(), 2, ("gone",)),
    C("dde-data-missing", "dd_copy", dde("--data", "{nowhere}"), 2, ("{nowhere}",)),
    C("dde-test-bomb", "mv_test_bomb", dde("--data", "{data}", run="{DD}"), 2, ("{bomb}",)),
)

# ---- owner runs: run folders, resume, the trainers' config_from_run (paper_repro/runs/*) ------------
RUNS_CASES = section(
    "runs",
    C("dgt-existing-run-without-resume", "dg_copy", dgt(out="{run}", iterations="5"), 2, ("{run}", "--resume"),
      ("run",)),
    C("dgt-resume-same-config-accepted", "dg_copy", dgt("--resume", out="{run}", iterations="5"), 0),
    C("dgt-resume-scale-demo", "dg_copy", dgt("--resume", out="{run}", iterations="5", scale="demo"), 2,
      ("image_size",), ("run",)),
    C("dgt-resume-other-iterations", "dg_copy", dgt("--resume", out="{run}", iterations="7"), 2,
      ("iterations",), ("run",)),
    C("dgt-resume-other-ablation", "dg_copy", dgt("--resume", "--ablation", "ani", out="{run}", iterations="5"), 2,
      ("ani",), ("run",)),
    C("dgt-resume-other-seed", "dg_copy", dgt("--resume", "--seed", "7", out="{run}", iterations="5"), 2,
      ("seed",), ("run",)),
    C("dgt-api-resume-other-lr", "dg_copy", py_dg_resume_other_lr, 2, ("lr",), ("run",)),
    C("ddt-existing-run-without-resume", "dd_copy", ddt(out="{run}"), 2, ("{run}", "--resume"), ("run",)),
    C("ddt-resume-same-config-accepted", "dd_copy", ddt("--resume", out="{run}"), 0),
    C("ddt-resume-other-epochs", "dd_copy", ddt("--resume", out="{run}", epochs="2"), 2, ("epochs",), ("run",)),
    C("ddt-resume-scale-demo", "dd_copy", ddt("--resume", out="{run}", scale="demo"), 2, ("image_size",),
      ("run",)),
    C("ddt-resume-without-dram", "dd_copy", ddt("--resume", "--no-dram", out="{run}"), 2, ("dram",), ("run",)),
    C("ddt-resume-other-category", "dd_copy", ddt("--resume", out="{run}", category="wood"), 2, ("category",),
      ("run",)),
    C("ddt-api-resume-other-lr", "dd_copy", py_dd_resume_other_lr, 2, ("lr",), ("run",)),
    C("dgs-api-load-generator-dadnet-run", "base", py_load_generator_dadnet_run, 2, ("{DD}",)),
    C("dde-api-load-model-defect-gan-run", "base", py_load_model_defect_gan_run, 2, ("{DG}",)),
    C("dgs-api-config-from-run-without-config", "dg_no_config", py_config_from_run_no_config, 2,
      ("{runjson}", "config"), ("run",)),
)

# ---- owner runs: the distributed environment (issue 29, item 4), one case per kind and trainer ------
# torchrun's variables are read in one place (runs.devices.launch_environment); a malformed one is one
# line before any data is loaded or any file written.
DISTRIBUTED_ENVIRONMENTS = {  # kind: (variables, words of the line)
    "rank-not-a-number": ({"RANK": "abc"}, ("rank='abc'", "whole number")),
    "world-size-not-a-number": ({"WORLD_SIZE": "2x", "RANK": "0"}, ("world_size='2x'", "whole number")),
    "world-size-without-rank": ({"WORLD_SIZE": "2"}, ("world_size=2", "rank is not set")),
    "rank-beyond-world-size": ({"WORLD_SIZE": "2", "RANK": "5"}, ("rank=5", "below world_size=2")),
    "negative-local-rank": ({"LOCAL_RANK": "-3"}, ("local_rank=-3", "0 or more")),
}


def _distributed_setup(variables: dict[str, str]):
    def apply(c: Ctx):
        for name, value in variables.items():
            c.monkeypatch.setenv(name, value)
    return apply


for _kind, (_variables, _) in DISTRIBUTED_ENVIRONMENTS.items():
    SETUPS[f"env_{_kind}"] = _distributed_setup(_variables)

DISTRIBUTED_CASES = section("runs", *[
    C(f"{name}-env-{kind}", f"env_{kind}", command(), 2, words, (), ("out",))
    for kind, (_, words) in DISTRIBUTED_ENVIRONMENTS.items() for name, command in (("dgt", dgt), ("ddt", ddt))])

# ---- owner weights: safe weight loading (planted pickles, weight files) ----------------------------
WEIGHTS_CASES = section(
    "weights",
    C("dgs-run-pickle-checkpoint", "dg_pickle", dgs(run="{run}"), 2, ("{ckpt}",), ("run",), ("marker",)),
    C("dgt-resume-pickle-checkpoint", "dg_pickle", dgt("--resume", out="{run}", iterations="5"), 2, ("{ckpt}",),
      ("run",), ("marker",)),
    C("ddt-resume-pickle-checkpoint", "dd_pickle", ddt("--resume", out="{run}"), 2, ("{ckpt}",), ("run",),
      ("marker",)),
    C("dde-run-pickle-checkpoint", "dd_pickle", dde(), 2, ("{ckpt}",), ("run",), ("marker",)),
    C("ddt-sd-model-missing-folder", "base", ddt("--pseudo", "sdgm", "--sd-model", "{nowhere}"), 2, ("{nowhere}",)),
    C("bl-api-pretrained-pickle", "base", py_baseline_pretrained_pickle, 2, ("backbone.pth",), (), ("marker",)),
)

# ---- owner weights: Stable Diffusion files no library may open before they are checked (issue 29, item 3)
# Every weight file a diffusers folder's component names (one file, or every shard an index names) must be a
# complete safetensors file beside it; the damage below is generated per component.
_TINY_SD: dict[str, Path] = {}


def _tiny_sd(c: Ctx) -> Path:
    """A copy of a tiny random Stable Diffusion inpainting folder (built once per session)."""
    from paper_repro.dadnet.sdgm import build_tiny_sdgm

    if "folder" not in _TINY_SD:
        _TINY_SD["folder"] = build_tiny_sdgm(c.art.root / "tiny_sd")
    folder = c.tmp / "sd"
    shutil.copytree(_TINY_SD["folder"], folder)
    c.p["sd"] = str(folder)
    return folder


def _damage_sd(component: str, damage: str):
    from paper_repro.weights import SD_WEIGHTS

    def apply(c: Ctx):
        folder = _tiny_sd(c) / component
        stem = SD_WEIGHTS[component]
        single = folder / f"{stem}.safetensors"
        index = folder / f"{stem}.safetensors.index.json"
        if damage in ("truncated", "empty"):
            data = single.read_bytes()
            single.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
            c.p["bad"] = str(single)
            return
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(single))
        single.unlink()
        save_file(tensors, str(folder / "part-1.safetensors"))
        shard = {"pickled-shard": "part-2.bin", "pickled-shard-named-safetensors": "part-2.safetensors",
                 "shard-outside-the-folder": "../part-2.safetensors", "missing-shard": "part-2.safetensors",
                 "index-wrong-shape": None}[damage]
        if shard is None:
            index.write_text(json.dumps({"weight_map": ["part-1.safetensors"]}))
            c.p["bad"] = str(index)
            return
        names = sorted(tensors)
        index.write_text(json.dumps({"weight_map": {k: ("part-1.safetensors" if i else shard) for i, k in enumerate(names)}}))
        if damage != "missing-shard":
            plant_pickle(folder / shard, Path(c.p["marker"]))
        c.p["bad"] = str(folder / shard) if damage == "pickled-shard-named-safetensors" else str(index)
    return apply


SD_DAMAGES = ("truncated", "empty", "pickled-shard", "pickled-shard-named-safetensors", "shard-outside-the-folder",
              "missing-shard", "index-wrong-shape")
SD_COMPONENTS = ("text_encoder", "unet", "vae")
for _component in SD_COMPONENTS:
    for _damage in SD_DAMAGES:
        SETUPS[f"sd_{_component}_{_damage}"] = _damage_sd(_component, _damage)

SD_CASES = section("weights", *[
    C(f"ddt-sd-{component}-{damage}", f"sd_{component}_{damage}", ddt("--pseudo", "sdgm", "--sd-model", "{sd}"), 2,
      ("{bad}",), ("sd",), ("marker",))
    for component in SD_COMPONENTS for damage in SD_DAMAGES])

# ---- owner cli and data: absurd values (issue 29, item 7), generated per kind ------------------------
# A count whose output cannot fit is refused before anything is allocated or written; a seed outside
# what NumPy and torch accept is refused where it enters; a box that is not four finite numbers is not
# a box, and `data check` says so.
ABSURD_COUNTS = {"a-billion": str(10 ** 9), "a-trillion": str(10 ** 12)}
ABSURD_SEEDS = {"negative": "-1", "two-to-the-32": str(2 ** 32), "huge": str(10 ** 30), "not-a-number": "forty-two"}
ABSURD_BOX_VALUES = {"nan": "nan", "inf": "inf", "negative-inf": "-inf", "empty": ""}


def _originals_with_box(value: str):
    def apply(c: Ctx):
        out = c.tmp / "cb_orig"
        assert main(["data", "synth", "--layout", "codebrim", "--size", "16", "--n-train", "2", "--n-test", "1",
                     "--n-originals", "1", "--out", str(out)]) == 0
        xml = next(out.rglob("annotations/*.xml"))
        text = xml.read_text()
        c.p.update(cb_orig=str(out), xml=str(xml))
        xml.write_text(re.sub(r"<xmin>[^<]*</xmin>", f"<xmin>{value}</xmin>", text, count=1))
    return apply


for _kind, _value in ABSURD_BOX_VALUES.items():
    SETUPS[f"box_{_kind}"] = _originals_with_box(_value)

ABSURD_CASES = section("cli", *[
    C(f"dgs-n-{kind}", "base", dgs(n=value), 2, ("--n", value, "free"), ("normals",), ("out",))
    for kind, value in ABSURD_COUNTS.items()
], *[
    C(f"sdgm-pretrain-seed-{kind}", "base", ("dadnet", "sdgm-pretrain", "--out", "{out}", "--seed", value,
                                            "--steps", "1"), 2, ("--seed", value.lower()), (), ("out",))
    for kind, value in ABSURD_SEEDS.items()
]) + section("data", *[
    C(f"check-originals-box-{kind}", f"box_{kind}", check("{cb_orig}", "codebrim-originals"), 2,
      ("{xml}", "bndbox", "finite"), ("cb_orig",))
    for kind in ABSURD_BOX_VALUES])

CASES = CLI_CASES + DATA_CASES + RUNS_CASES + DISTRIBUTED_CASES + WEIGHTS_CASES + SD_CASES + ABSURD_CASES
assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input(case: Case, ctx: Ctx, art, capsys):
    SETUPS[case.setup](ctx)
    p = ctx.p
    before = {name: digest(Path(p[name])) for name in case.untouched}
    shared_before = {path: quick_digest(path) for path in art.guarded()}
    capsys.readouterr()
    threads = torch.get_num_threads()
    try:
        rc, extra, own_warnings = invoke(case.argv, p)
    finally:
        torch.set_num_threads(threads)  # --threads sets it for the whole process
    captured = capsys.readouterr()
    err = captured.err + extra + "".join(f"{w}\n" for w in own_warnings)
    problems = check_outcome(case, p, rc, captured.out, err)
    for name, value in before.items():
        if digest(Path(p[name])) != value:
            problems.append(f"{name} ({p[name]}) was changed")
    for name in case.absent:
        if Path(p[name]).exists():
            problems.append(f"{name} ({p[name]}) exists: {'planted pickle code ran' if name == 'marker' else ''}")
    for path, value in shared_before.items():
        if quick_digest(path) != value:
            problems.append(f"the session's shared {path.name} was changed")
    TABLE_OUTCOMES[str(case)] = not problems
    if os.environ.get("BAD_INPUTS_LOG"):  # one JSON line per case: what a user saw, and what was wrong
        shown = visible_lines(err)
        with open(os.environ["BAD_INPUTS_LOG"], "a") as log:
            log.write(json.dumps({"case": str(case), "rc": rc, "ok": not problems,
                                  "line": shown[-1][:400] if shown else "", "problems": problems}) + "\n")
    assert not problems, f"[{case}]\n  " + "\n  ".join(problems)


# ==========================================================================================
# Targeted tests of the argument checks (items 7, 9 and 10 of issue 17)
# ==========================================================================================
@pytest.mark.parametrize("check, text, value", [
    (cli_module.positive_int, "3", 3), (cli_module.positive_int, " 7 ", 7),
    (cli_module.non_negative_int, "0", 0), (cli_module.seed_value, "0", 0),
    (cli_module.seed_value, str(2**32 - 1), 2**32 - 1), (cli_module.device_name, "cpu", "cpu"),
    (cli_module.device_name, "auto", "auto"), (cli_module.path_name, " tile ", "tile"),
    (cli_module.class_list, " Crack , Spallation ", ["Crack", "Spallation"]),
    (cli_module.region_box, "0.25, 0.25, 0.75, 0.75", (0.25, 0.25, 0.75, 0.75)),
])
def test_argument_types_accept(check, text, value):
    assert check(text) == value


@pytest.mark.parametrize("check, text, named", [
    (cli_module.positive_int, "0", "'0'"), (cli_module.positive_int, "-1", "'-1'"),
    (cli_module.positive_int, "1.5", "'1.5'"), (cli_module.non_negative_int, "-1", "'-1'"),
    (cli_module.seed_value, "-1", "'-1'"), (cli_module.seed_value, str(2**32), str(2**32)),
    (cli_module.device_name, "mps", "'mps'"), (cli_module.device_name, "xpu", "'xpu'"),
    (cli_module.device_name, "tpu9", "'tpu9'"), (cli_module.path_name, "a/b", "'a/b'"),
    (cli_module.path_name, "..", "'..'"), (cli_module.path_name, "", "empty"), (cli_module.path_name, "a\\b", "another folder"),
    (cli_module.class_list, "Crack,../x", "'../x'"), (cli_module.class_list, " , ", "' , '"),
    (cli_module.region_box, "nan,0,1,1", "nan,0,1,1"), (cli_module.region_box, "0,0,1", "0,0,1"),
    (cli_module.region_box, "1,1,1,2", "1,1,1,2"),
])
def test_argument_types_refuse_in_one_line_naming_the_value(check, text, named):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        check(text)
    assert "\n" not in str(info.value) and named in str(info.value), str(info.value)


def test_output_folder_accepts_what_can_be_created_and_creates_nothing(tmp_path):
    for text in (str(tmp_path), str(tmp_path / "new"), str(tmp_path / "new" / "deeper")):
        assert cli_module.output_folder(text) == text
    assert sorted(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    for text in (str(tmp_path / "f"), str(tmp_path / "f" / "sub" / "deeper"), str(tmp_path / ("y" * 300))):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_module.output_folder(text)


def test_output_folder_in_a_read_only_folder(tmp_path, monkeypatch):
    """Root is not stopped by chmod; the check asks os.access, which answers for any user."""
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(cli_module.os, "access", lambda path, mode: Path(path) != ro)
    with pytest.raises(argparse.ArgumentTypeError, match="not writable"):
        cli_module.output_folder(str(ro / "out"))


def test_devices_this_machine_has_and_lacks(monkeypatch):
    assert devices.available_devices()[0] == "cpu"
    monkeypatch.setattr(torch.mps, "is_available", lambda: False, raising=False)
    with pytest.raises(UserError, match="no MPS"):
        devices.resolve_device("mps")
    monkeypatch.setattr(torch.mps, "is_available", lambda: True, raising=False)
    monkeypatch.setattr(torch.mps, "device_count", lambda: 1, raising=False)
    assert devices.resolve_device("mps").type == "mps"
    with pytest.raises(UserError, match="device 'mps:3'"):
        devices.resolve_device("mps:3")
    with pytest.raises(UserError, match="meta"):
        devices.resolve_device("meta")


def test_run_folder_of_either_paper_is_told_by_its_paper_key_or_config_keys():
    assert paper_of({"paper": "Defect-GAN", "config": {}}) == "defect_gan"
    assert paper_of({"config": {"conv_dim": 8, "n_critic": 5}}) == "defect_gan"
    assert paper_of({"config": {"recon_width": 8, "disc_width": 8}}) == "dadnet"
    assert paper_of({"config": {"image_size": 32}}) is None


def test_control_names_and_boxes():
    classes = ["Background", "Crack", "Spallation"]
    assert class_names([" crack", "Spallation "], classes) == ["Crack", "Spallation"]
    with pytest.raises(UserError, match="Background, Crack, Spallation"):
        class_names(["rust"], classes)
    for box in ([float("nan"), 0, 1, 1], [0, 0, float("inf"), 1], [0, 0, 1]):
        with pytest.raises(UserError, match="region"):
            box_mask(32, box)
    assert file_part("../../../escaped") == "_._.._.._escaped"
    assert "/" not in synthesized_name(0, "a/b", ["../x", "Crack"])


def test_classes_with_spaces_are_stripped(art, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["defect-gan", "synth", "--run", str(art.DG), "--normals", str(art.MV / "tile" / "train" / "good"),
               "--classes", " crack , Spallation ", "--n", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.glob("*.png"))
    assert len(names) == 2 and all(n.endswith("_Crack+Spallation.png") for n in names), names


def test_class_names_from_a_run_cannot_leave_out(art, tmp_path, capsys):
    """A run.json whose class names hold path separators (a hostile or damaged run folder): asked for
    by name it is refused in one line; its names never reach a file path outside --out."""
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    run = work / "run"
    shutil.copytree(art.DG, run)
    saved = json.loads((run / "run.json").read_text())
    saved["classes"][0] = "../../../escaped"
    (run / "run.json").write_text(json.dumps(saved))
    out = work / "out"
    before = set(tmp_path.rglob("*"))
    capsys.readouterr()
    rc = main(["defect-gan", "synth", "--run", str(run), "--normals", str(art.MV / "tile" / "train" / "good"),
               "--classes", "../../../escaped", "--n", "1", "--out", str(out)])
    lines = visible_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "--classes" in lines[0], lines
    assert set(tmp_path.rglob("*")) == before


def test_category_cannot_leave_the_data_root_nor_the_sdgm_cache(art, tmp_path, capsys):
    """``--category`` is joined to the data root (``<root>/<category>/train/good``) and, with
    ``--pseudo sdgm``, to the SDGM bank cache: refused before anything is read or written."""
    data = tmp_path / "d" / "mvtec"
    shutil.copytree(art.MV, data)
    shutil.copytree(data / "tile", tmp_path / "d" / "evil" / "tile")
    cache = Path(os.environ["PAPER_REPRO_CACHE"])
    before = set(cache.rglob("*")) | set(tmp_path.rglob("*"))
    capsys.readouterr()
    rc = main(["dadnet", "train", "--data", str(data), "--category", "../evil/tile", "--scale", "smoke",
               "--epochs", "1", "--pseudo", "sdgm", "--out", str(tmp_path / "out")])
    lines = visible_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "--category" in lines[0], lines
    assert set(cache.rglob("*")) | set(tmp_path.rglob("*")) == before


# ==========================================================================================
# Issue 17, kinds 5 and 6: full disks, and wrong or damaged run state (generated per kind)
# ==========================================================================================
# Kind 5, full disks (owner runs): a run whose checkpoints (as many as it keeps) do not fit on its disk
# does not start (runs/loop.check_disk), and a write that finds no room - ENOSPC, EFBIG (a file-size
# limit), EDQUOT - is one line naming the folder and the space needed (runs/checkpoints.atomic_write, the
# one writer), with no temporary file left and every earlier checkpoint intact.
# Kind 6, wrong or damaged run state: runs/folders.config_from_run refuses an int no configuration has
# (owner runs), runs/checkpoints.load_checkpoint refuses tensors that do not fit the network run.json
# describes (owner weights), and the book's own state (owner book: reproduce's finished-chapter markers,
# the build's chapter_seconds, _toc.yml) is re-run or ignored in one line when damaged, or refused when
# it is the user's.
import errno as _errno  # noqa: E402 - this section's own imports, kept with it
from collections import namedtuple as _namedtuple  # noqa: E402

_DiskUsage = _namedtuple("_DiskUsage", "total used free")

# ---- kind 5: full disks -------------------------------------------------------------------------
DISK_FULL_ERRNOS = {"enospc": _errno.ENOSPC, "efbig": _errno.EFBIG, "edquot": _errno.EDQUOT}
# the trainers at smoke, two units each; (argv, checkpoints written before the last one)
DISK_TRAINERS = {"dgt": (dgt(iterations="2"), 0), "ddt": (ddt(epochs="2"), 1)}
LAST_CHECKPOINT = ".checkpoint_00000002.safetensors."  # the temporary file of both trainers' last checkpoint


@setup("disk_too_small")
def _(c: Ctx):
    """A disk with 2 kB free: no run's checkpoints fit."""
    c.monkeypatch.setattr(shutil, "disk_usage", lambda path: _DiskUsage(10 ** 12, 10 ** 12 - 2000, 2000))


def _disk_fills_up(code: int):
    """The disk fills up while the run's last checkpoint is written: part of the temporary file, then the error."""
    def apply(c: Ctx):
        from paper_repro.runs import checkpoints

        real = checkpoints.save_file

        def save_file(tensors, filename, metadata=None):
            if LAST_CHECKPOINT not in Path(filename).name:
                return real(tensors, filename, metadata=metadata)
            Path(filename).write_bytes(b"\0" * 4096)
            raise OSError(code, os.strerror(code), filename)

        c.monkeypatch.setattr(checkpoints, "save_file", save_file)
    return apply


for _kind, _code in DISK_FULL_ERRNOS.items():
    SETUPS[f"disk_full_{_kind}"] = _disk_fills_up(_code)


def _train_on_a_full_disk(argv: tuple, earlier: int):
    """The CLI's training command; then no temporary file may be left in --out, and the checkpoints
    written before the disk filled up must be there and read back with their digest."""
    def call(p):
        from paper_repro.runs.checkpoints import TMP_SUFFIX, checkpoints, verify_checkpoint

        rc = main([a.format(**p) for a in argv])
        out = Path(p["out"])
        left = [q.name for q in out.rglob("*") if q.name.endswith(TMP_SUFFIX)]
        assert not left, f"temporary files left in --out: {left}"
        kept = checkpoints(out)
        assert len(kept) == earlier, f"expected {earlier} earlier checkpoint(s), found {[q.name for _, q in kept]}"
        for _, path in kept:
            verify_checkpoint(path)
        raise SystemExit(rc)
    return call


DISK_CASES = section("runs", *[
    C(f"{name}-disk-plan-does-not-fit", "disk_too_small", argv, 2, ("{out}", "needed", "2.0 kb free"), (),
      ("out",))
    for name, (argv, _) in DISK_TRAINERS.items()
], *[
    C(f"{name}-disk-full-{kind}-writing-a-checkpoint", f"disk_full_{kind}", _train_on_a_full_disk(argv, earlier), 2,
      ("{out}", "checkpoint_00000002.safetensors", "needs ~", os.strerror(code)))
    for name, (argv, earlier) in DISK_TRAINERS.items() for kind, code in DISK_FULL_ERRNOS.items()])

# ---- kind 6: run.json values no configuration has -----------------------------------------------
# Every int field of each paper's configuration, one below its least value (0 for a size, width, count,
# batch, iterations or epochs; -1 for the rest), and -1 for the positive ones too.
RUN_STATE_READERS = {"dg": ("defect_gan", dgs(run="{run}")), "dd": ("dadnet", dde())}


def _int_fields(profile: str) -> list[str]:
    from paper_repro.config import PROFILES

    return [f.name for f in dataclasses.fields(PROFILES[profile][0]) if str(f.type).split("|")[0].strip() == "int"]


def _below_least(name: str) -> list[int]:
    from paper_repro.runs.folders import least_value

    return sorted({least_value(name) - 1, -1}, reverse=True)


RUN_JSON_VALUES = [(prefix, name, value) for prefix, (profile, _) in RUN_STATE_READERS.items()
                   for name in _int_fields(profile) for value in _below_least(name)]


def _run_json_value(prefix: str, name: str, value: int):
    def apply(c: Ctx):
        run = _copy_run(c, getattr(c.art, prefix.upper()))
        _edit_runjson(run, lambda d: {**d, "config": {**d["config"], name: value}})
    return apply


for _prefix, _name, _value in RUN_JSON_VALUES:
    SETUPS[f"{_prefix}_{_name}_{_value}"] = _run_json_value(_prefix, _name, _value)

RUN_JSON_CASES = section("runs", *[
    C(f"{prefix}-run-json-{name.replace('_', '-')}-{value}", f"{prefix}_{name}_{value}", RUN_STATE_READERS[prefix][1],
      2, ("{runjson}", f"{name} = {value}"), ("run",))
    for prefix, name, value in RUN_JSON_VALUES])

# ---- kind 6: checkpoints whose tensors do not fit the network run.json describes ----------------
# The latest checkpoint replaced by the other paper's or another network's, or a width in run.json doubled;
# the commands that load each paper's weights, by name (the resumed trainers load the whole training state)
CHECKPOINT_READERS = {"dg": {"dgs": dgs(run="{run}"), "dgr": dgr(run="{run}"),
                             "dgt-resume": dgt("--resume", out="{run}", iterations="5")},
                      "dd": {"dde": dde(), "ddt-resume": ddt("--resume", out="{run}")}}
FOREIGN_CHECKPOINTS = ("other-paper", "other-network")
WIDENED = {"dg": ("conv_dim", "spade_hidden", "n_res_blocks"), "dd": ("recon_width", "disc_width")}


def _foreign_checkpoint(prefix: str, kind: str):
    def apply(c: Ctx):
        from paper_repro.runs.checkpoints import latest_checkpoint, save_checkpoint

        run = _copy_run(c, getattr(c.art, prefix.upper()))
        ckpt = latest_checkpoint(run)
        c.p["ckpt"] = str(ckpt)
        if kind == "other-paper":
            other = c.art.DD if prefix == "dg" else c.art.DG
            shutil.copy(latest_checkpoint(other), ckpt)
        else:  # a valid checkpoint of this package, of some other network
            names = ("G",) if prefix == "dg" else ("reconstructive", "discriminative")
            save_checkpoint(ckpt, modules={n: torch.nn.Linear(3, 2) for n in names}, step=5)
    return apply


def _widened(prefix: str, name: str):
    def apply(c: Ctx):
        from paper_repro.runs.checkpoints import latest_checkpoint

        run = _copy_run(c, getattr(c.art, prefix.upper()))
        c.p["ckpt"] = str(latest_checkpoint(run))
        _edit_runjson(run, lambda d: {**d, "config": {**d["config"], name: d["config"][name] * 2}})
    return apply


for _prefix in CHECKPOINT_READERS:
    for _kind in FOREIGN_CHECKPOINTS:
        SETUPS[f"{_prefix}_ckpt_{_kind}"] = _foreign_checkpoint(_prefix, _kind)
    for _name in WIDENED[_prefix]:
        SETUPS[f"{_prefix}_wider_{_name}"] = _widened(_prefix, _name)

CHECKPOINT_FIT_CASES = section("weights", *[
    C(f"{reader}-run-with-{kind}-checkpoint", f"{prefix}_ckpt_{kind}", argv, 2,
      ("{ckpt}", "do not fit the network run.json describes"), ("run",))
    for prefix, readers in CHECKPOINT_READERS.items() for reader, argv in readers.items()
    for kind in FOREIGN_CHECKPOINTS
], *[  # a resumed run with another width is refused as another configuration, before any weight is read
    C(f"{reader}-run-json-{name.replace('_', '-')}-doubled", f"{prefix}_wider_{name}", argv, 2,
      ("{ckpt}", "do not fit the network run.json describes"), ("run",))
    for prefix, readers in CHECKPOINT_READERS.items() for reader, argv in readers.items()
    if not reader.endswith("-resume") for name in WIDENED[prefix]])

# ---- kind 6: the book's state: reproduce's markers, the build's chapter times, _toc.yml -----------
MARKER_DAMAGES = {"not-utf8": b"\xff\xfe{\"parameters\"", "truncated": b'{"parameters": {"scale": "sm',
                  "a-list": b"[]", "a-number": b"42", "parameters-a-string": b'{"parameters": "smoke", "settings": {}}'}
SECONDS_DAMAGES = {"not-utf8": b"\xff\xfe\x00", "truncated": b'{"ch": 12', "a-list": b"[1, 2]",
                   "a-string-of-seconds": b'{"ch": "twelve"}', "negative-seconds": b'{"ch": -5}'}
TOC_DAMAGES = {"root-missing": "format: jb-book\nchapters:\n  - file: ch\n",
               "root-a-number": "format: jb-book\nroot: 42\n",
               "root-a-list": "format: jb-book\nroot:\n  - ch\n", "root-empty": "format: jb-book\nroot:\n",
               "root-a-mapping": "format: jb-book\nroot: {file: ch}\n", "toc-a-list": "- root: ch\n",
               "toc-empty": "", "file-a-number": "format: jb-book\nroot: ch\nchapters:\n  - file: 7\n",
               "not-utf8": b"format: jb-book\nroot: \xff\xfe\n",
               "parts-a-number": "format: jb-book\nroot: ch\nparts: 5\n",
               "chapters-a-mapping": "format: jb-book\nroot: ch\nchapters: {file: ch}\n",
               "sections-text": "format: jb-book\nroot: ch\nchapters:\n  - file: ch\n    sections: ch\n"}


def _tiny_book(c: Ctx, toc: str | bytes = "format: jb-book\nroot: ch\n") -> Path:
    """A book of one chapter whose execution is a copy (papermill stubbed: the chapter 'runs' in no time)."""
    import papermill

    book = c.tmp / "book"
    make_notebook(book / "ch.ipynb", [("code", "x = 1")], parameters="scale = 'smoke'")
    (book / "_toc.yml").write_bytes(toc if isinstance(toc, bytes) else toc.encode())
    c.p["book"] = str(book)
    c.monkeypatch.setattr(papermill, "execute_notebook",
                          lambda source, output, **kw: shutil.copy(source, output))
    return book


def _damaged_marker(content: bytes):
    def apply(c: Ctx):
        _tiny_book(c)
        marker = Path(c.p["out"]) / ".done" / "ch.json"
        marker.parent.mkdir(parents=True)
        marker.write_bytes(content)
        c.p["marker_file"] = str(marker)
    return apply


def _damaged_seconds(content: bytes):
    def apply(c: Ctx):
        from paper_repro.book.schedule import seconds_file

        book = _tiny_book(c)
        path = seconds_file(book, "smoke")
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        c.p["seconds_file"] = str(path)
    return apply


for _kind, _content in MARKER_DAMAGES.items():
    SETUPS[f"marker_{_kind}"] = _damaged_marker(_content)
for _kind, _content in SECONDS_DAMAGES.items():
    SETUPS[f"seconds_{_kind}"] = _damaged_seconds(_content)
for _kind, _toc in TOC_DAMAGES.items():
    SETUPS[f"toc_{_kind}"] = (lambda toc: lambda c: _tiny_book(c, toc))(_toc)


def py_reproduce_over_a_damaged_marker(p):
    """The batch runs the chapter again and leaves a marker that reads back."""
    from paper_repro.book.runner import read_marker

    rc = main([a.format(**p) for a in rep()])
    assert read_marker(Path(p["marker_file"]), "ch")["parameters"]["scale"] == "smoke", "no new marker"
    raise SystemExit(rc)


def py_build_times_over_a_damaged_file(p):
    """The build orders the chapters by their stated times, then writes its own times atomically."""
    from paper_repro.book.chapters import list_chapters
    from paper_repro.book.schedule import expected_seconds, record_seconds

    book = Path(p["book"])
    assert expected_seconds(book, list_chapters(book), "smoke") == {"ch": 0.0}
    record_seconds(book, "smoke", {"ch": 3.0})
    assert json.loads(Path(p["seconds_file"]).read_text()) == {"ch": 3.0}
    assert [q.name for q in Path(p["seconds_file"]).parent.iterdir()] == ["chapter_seconds-smoke.json"]


BOOK_STATE_CASES = section("book", *[
    C(f"rep-marker-{kind}", f"marker_{kind}", py_reproduce_over_a_damaged_marker, 0,
      ("{marker_file}", "damaged", "running the chapter again"))
    for kind in MARKER_DAMAGES
], *[
    C(f"book-chapter-seconds-{kind}", f"seconds_{kind}", py_build_times_over_a_damaged_file, 0,
      ("{seconds_file}", "damaged", "ignored"))
    for kind in SECONDS_DAMAGES
], *[
    C(f"rep-toc-{kind}", f"toc_{kind}", rep(), 2, ("{book}/_toc.yml",), ("book",), ("out",))
    for kind in TOC_DAMAGES])

DISK_AND_STATE_CASES = DISK_CASES + RUN_JSON_CASES + CHECKPOINT_FIT_CASES + BOOK_STATE_CASES
assert len({c.id for c in CASES + DISK_AND_STATE_CASES}) == len(CASES) + len(DISK_AND_STATE_CASES), "duplicate ids"


@pytest.mark.parametrize("case", DISK_AND_STATE_CASES, ids=str)
def test_bad_input_disk_and_run_state(case: Case, ctx: Ctx, art, capsys):
    """The same harness as test_bad_input (one line, the exit status, nothing lost; counted in the summary)."""
    test_bad_input(case, ctx, art, capsys)
