"""Bad inputs of the data commands and loaders: each one clear line, the right exit status, nothing lost.

The cases of issue 17's bad-inputs suite that concern data (``data synth``, ``data check``, CODEBRIM's
metadata, decompression bombs, a one-image training folder), ported to this layout and kept under
their ids. Each case runs ``paper_repro.cli.main(argv)`` in this process (or a Python entry point,
whose UserError is shown as the CLI shows it) and checks: the exit status; for a refusal, exactly one
stderr line starting ``error: `` holding the expected words; no traceback; and that the files named
``untouched`` keep their bytes.
"""
from __future__ import annotations

import hashlib
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

from paper_repro.cli import main
from paper_repro.data import NormalPool
from paper_repro.data.codebrim import CODEBRIM_CLASSES
from paper_repro.data.io import read_image
from paper_repro.data.synthetic import synthesize
from paper_repro.errors import UserError
from test_data_images import write_bomb


# ---- the harness -------------------------------------------------------------------------------
@dataclass
class Ctx:
    tmp: Path
    art: dict
    monkeypatch: pytest.MonkeyPatch
    p: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    id: str
    setup: str
    argv: tuple | Callable          # CLI argv with {placeholders}, or a Python call taking the placeholders
    code: int                       # expected exit status
    words: tuple = ()               # lower-case substrings of the one line (or of the output, for code 0)
    untouched: tuple = ()           # placeholders of files/folders that must keep their bytes

    def __str__(self) -> str:
        return self.id


def digest(path: Path) -> object:
    path = Path(path)
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        return tuple((str(p.relative_to(path)), hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
                     for p in sorted(path.rglob("*")))
    return "missing"


def invoke(target, p: dict) -> tuple[int, str]:
    """Exit status and what a terminal shows on stderr (the project's own warnings included)."""
    shown = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rc = target(p) or 0 if callable(target) else main([a.format(**p) for a in target])
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else 1
        except UserError as err:
            shown.append(f"error: {err}")
            rc = 2
        except Exception:  # noqa: BLE001 - what a user would see as a traceback
            shown.append(traceback.format_exc())
            rc = 1
    shown += [f"{w.category.__name__}: {w.message}" for w in caught if "site-packages" not in str(w.filename)]
    return rc, "\n".join(shown)


SETUPS: dict[str, Callable[[Ctx], None]] = {}


def setup(name: str):
    def register(fn):
        SETUPS[name] = fn
        return fn
    return register


# ---- shared data sets --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def art(synthesized) -> dict:
    return {"MV": synthesized("mvtec", categories=["tile", "wood"], size=32, n_train=4, n_test=2),
            "CB": synthesized("codebrim", size=32, n_train=12, n_test=3)}


@pytest.fixture
def ctx(tmp_path, art, monkeypatch) -> Ctx:
    work = tmp_path / "w"
    work.mkdir()
    c = Ctx(work, art, monkeypatch)
    normals = work / "normals"
    normals.mkdir()
    for name in ("000.png", "001.png"):
        shutil.copy(art["MV"] / "tile" / "train" / "good" / name, normals / name)
    (work / "afile.txt").write_text("a user's file\n")
    write_bomb(work / "bombdir" / "bomb.png")
    shutil.copy(normals / "000.png", work / "bombdir" / "000.png")
    c.p.update(tmp=str(work), MV=str(art["MV"]), CB=str(art["CB"]), out=str(work / "out"),
               file=str(work / "afile.txt"), under_file=str(work / "afile.txt" / "sub"),
               long=str(work / ("x" * 300)), normals=str(normals), bombdir=str(work / "bombdir"),
               bomb=str(work / "bombdir" / "bomb.png"), nowhere=str(work / "nowhere"))
    return c


@setup("base")
def _(c: Ctx):
    pass


@setup("victim")
def _(c: Ctx):
    victim = c.tmp / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "thesis.tex").write_text("\\chapter{years of work}\n")
    (victim / "sub" / "data.bin").write_bytes(os.urandom(256))
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
    (Path(c.p["victim"]) / "SYNTHETIC.json").write_text(json.dumps({"generator": "someone.else"}))


@setup("own_dataset")
def _(c: Ctx):
    c.p["ds"] = str(synthesize(c.tmp / "ds", "mvtec", categories=["tile"], size=16, n_train=2, n_test=1,
                               progress=False))


@setup("own_dataset_cwd_inside")
def _(c: Ctx):
    SETUPS["own_dataset"](c)
    c.monkeypatch.chdir(Path(c.p["ds"]) / "tile")


@setup("readonly")
def _(c: Ctx):
    folder = c.tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        folder.chmod(0o755)
        pytest.skip("permissions do not stop this user (root)")
    c.p["ro_out"] = str(folder / "out")


def _copy(c: Ctx, key: str, name: str) -> Path:
    to = c.tmp / name
    shutil.copytree(c.art[key], to)
    c.p[name] = str(to)
    return to


@setup("mv_single")
def _(c: Ctx):
    good = _copy(c, "MV", "data") / "tile" / "train" / "good"
    for extra in sorted(good.iterdir())[1:]:
        extra.unlink()
    c.p["good"] = str(good)


@setup("mv_bomb")
def _(c: Ctx):
    c.p["bomb"] = str(write_bomb(_copy(c, "MV", "data") / "tile" / "train" / "good" / "001.png"))


@setup("mv_test_bomb")
def _(c: Ctx):
    c.p["bomb"] = str(write_bomb(_copy(c, "MV", "data") / "tile" / "test" / "good" / "000.png"))


@setup("mv_truncated")
def _(c: Ctx):
    bad = _copy(c, "MV", "data") / "tile" / "train" / "good" / "001.png"
    bad.write_bytes(bad.read_bytes()[:200])
    c.p["bad"] = str(bad)


@setup("mv_no_mask")
def _(c: Ctx):
    data = _copy(c, "MV", "data")
    (data / "tile" / "ground_truth" / "crack" / "000_mask.png").unlink()
    c.p["image"] = str(data / "tile" / "test" / "crack" / "000.png")


@setup("mv_mask_size")
def _(c: Ctx):
    from PIL import Image

    mask = _copy(c, "MV", "data") / "tile" / "ground_truth" / "crack" / "000_mask.png"
    Image.new("L", (16, 16)).save(mask)
    c.p["mask"] = str(mask)


def _codebrim(c: Ctx) -> Path:
    cb = _copy(c, "CB", "cb")
    c.p["xml"] = str(cb / "metadata" / "defects.xml")
    return cb


def _record(name: str, labels: tuple[int, ...]) -> str:
    body = "".join(f"<{k}>{v}</{k}>" for k, v in zip(CODEBRIM_CLASSES, labels))
    return f'  <Defect name="{name}">{body}</Defect>\n'


def _append(xml: Path, text: str) -> None:
    xml.write_text(xml.read_text().replace("</Annotation>", text + "</Annotation>"))


@setup("cb_absent")
def _(c: Ctx):
    _append(_codebrim(c) / "metadata" / "defects.xml",
            _record("ghost_0000001.png", (0, 1, 0, 0, 0, 0)) + _record("ghost_0000002.png", (0, 0, 1, 0, 0, 0)))


@setup("cb_dup")
def _(c: Ctx):
    xml = _codebrim(c) / "metadata" / "defects.xml"
    name = re.findall(r'<Defect name="([^"]+)">', xml.read_text())[0]
    old = re.search(rf'<Defect name="{re.escape(name)}">(.*?)</Defect>', xml.read_text(), re.S).group(1)
    crack = int(re.search(r"<Crack>(\d)</Crack>", old).group(1))
    _append(xml, _record(name, (0, 1 - crack, 1, 0, 0, 0)))  # the same crop, other labels
    c.p["dupname"] = name


@setup("cb_badxml")
def _(c: Ctx):
    xml = _codebrim(c) / "metadata" / "defects.xml"
    xml.write_text(xml.read_text()[:-40])


@setup("cb_laughs")
def _(c: Ctx):
    lol = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)]
    (_codebrim(c) / "metadata" / "defects.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE Annotation [' + "".join(lol) + ']>\n<Annotation>\n'
        '<Defect name="x.png"><Background>&lol9;</Background></Defect>\n</Annotation>\n')


@setup("cb_xxe")
def _(c: Ctx):
    secret = c.tmp / "secret.txt"
    secret.write_text("1")
    xml = _codebrim(c) / "metadata" / "defects.xml"
    text = xml.read_text().replace("<Annotation>", f'<!DOCTYPE Annotation [<!ENTITY x SYSTEM "file://{secret}">]>\n'
                                   "<Annotation>", 1)
    xml.write_text(text.replace("<Crack>0</Crack>", "<Crack>&x;</Crack>", 1))


@setup("cb_noname")
def _(c: Ctx):
    _append(_codebrim(c) / "metadata" / "defects.xml", "  <Defect><Crack>1</Crack></Defect>\n")


@setup("cb_badlabel")
def _(c: Ctx):
    xml = _codebrim(c) / "metadata" / "defects.xml"
    xml.write_text(xml.read_text().replace("<Crack>0</Crack>", "<Crack>2</Crack>", 1))


@setup("cb_unrecorded")
def _(c: Ctx):
    folder = _codebrim(c) / "train" / "defects"
    shutil.copy(sorted(folder.iterdir())[0], folder / "image_9999999_crop_0000001.png")
    c.p["unrecorded"] = str(folder / "image_9999999_crop_0000001.png")


@setup("cb_bomb")
def _(c: Ctx):
    c.p["bomb"] = str(write_bomb(sorted((_codebrim(c) / "train" / "defects").iterdir())[0]))


# ---- Python entry points -----------------------------------------------------------------------
def py_synthesize_force_foreign(p):
    synthesize(p["victim"], "mvtec", categories=["tile"], size=16, n_train=2, n_test=1, progress=False, force=True)


def py_synthesize_force_cwd(p):
    synthesize(".", "mvtec", categories=["tile"], size=16, n_train=2, n_test=1, progress=False, force=True)


def py_read_image_bomb(p):
    read_image(Path(p["bomb"]))


def py_normal_pool_bomb(p):
    pool = NormalPool(p["bombdir"], 4, 32)
    for i in range(len(pool)):
        pool[i]


def py_read_images_bomb(p):
    from paper_repro.defect_gan.control import read_images

    read_images(p["bombdir"], 32)


# ---- the table ---------------------------------------------------------------------------------
def synth(*extra, out="{out}", layout="mvtec"):
    base = ["data", "synth", "--layout", layout, "--size", "16", "--n-train", "2", "--n-test", "1"]
    if layout == "mvtec" and "--categories" not in extra:
        base += ["--categories", "tile"]
    return (*base, "--out", out, *extra)


def check(root, layout="codebrim", *extra):
    return ("data", "check", "--root", root, "--layout", layout, *extra)


def ddt(data):
    return ("dadnet", "train", "--data", data, "--category", "tile", "--scale", "smoke", "--epochs", "1",
            "--out", "{out}")


C = Case
CASES = [
    # data synth: --force never replaces what the project did not write (issue 17 item 1)
    C("synth-force-foreign-folder", "victim", synth("--force", out="{victim}"), 2, ("--force", "{victim}"),
      ("victim",)),
    C("synth-force-dot-is-cwd", "cwd_victim", synth("--force", out="."), 2, ("--force",), ("victim",)),
    C("synth-force-cwd-absolute", "cwd_victim", synth("--force", out="{victim}"), 2, ("--force", "{victim}"),
      ("victim",)),
    C("synth-force-dotdot-parent-of-cwd", "cwd_victim_child", synth("--force", out=".."), 2, ("--force",), ("victim",)),
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
    C("synth-layout-unknown", "base", synth(layout="voc"), 2, ("--layout", "voc")),
    C("synth-categories-unknown", "base", synth("--categories", "bogus"), 2, ("bogus",)),
    C("synth-categories-path", "base", synth("--categories", "../x"), 2, ("../x",), ("tmp",)),
    C("synth-codebrim-with-category", "base", synth("--categories", "tile", layout="codebrim"), 2, ("tile",)),
    C("synth-categories-with-spaces-accepted", "base", synth("--categories", "tile, wood"), 0),
    C("synth-codebrim-with-originals", "base", synth("--n-originals", "1", layout="codebrim"), 0, ("1 photographs",)),
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
    C("dgs-api-read-images-bomb", "base", py_read_images_bomb, 2, ("{bomb}",)),
    # the trainers' data, refused before any training
    C("dgt-normals-dir-bomb", "base", ("defect-gan", "train", "--data", "{CB}", "--scale", "smoke", "--iterations",
                                       "2", "--out", "{out}", "--normals-dir", "{bombdir}"), 2, ("{bomb}",)),
    C("ddt-single-training-image", "mv_single", ddt("{data}"), 2, ("{good}",), ("data",)),
    C("ddt-training-bomb", "mv_bomb", ddt("{data}"), 2, ("{bomb}",), ("data",)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input(case: Case, ctx: Ctx, capsys):
    SETUPS[case.setup](ctx)
    before = {key: digest(Path(ctx.p[key])) for key in case.untouched}
    rc, shown = invoke(case.argv, ctx.p)
    out, err = capsys.readouterr()
    err += shown
    assert "Traceback" not in err, err
    assert rc == case.code, err
    lines = [line for line in err.splitlines() if line.strip()]
    if case.code:
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        haystack = lines[0].lower()
    else:
        haystack = (out + err).lower()
    for word in case.words:
        assert word.format(**ctx.p).lower() in haystack, (word, haystack)
    for key in case.untouched:
        assert digest(Path(ctx.p[key])) == before[key], f"{key} was changed"


def test_the_table_names_every_case_once():
    assert len({case.id for case in CASES}) == len(CASES)
