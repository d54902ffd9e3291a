"""What the tests of ``dadnet predict``, ``calibrate`` and the folder data sets share: a tiny finished
DADNet run made through the CLI (as tests/bad_inputs_support.py makes its artefacts), the CLI called in
this process with what a terminal would show, and a run folder of the other paper."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from bad_inputs_support import cli
from paper_repro.cli import main


@dataclass(frozen=True)
class TinyRun:
    mvtec: Path   # MVTec layout, tile only, 32 px, 4 train / 2 per test folder
    run: Path     # DADNet --scale smoke --epochs 1 on it

    @property
    def tile(self) -> Path:
        return self.mvtec / "tile"


def build_tiny_run(root: Path) -> TinyRun:
    """The data set and the finished run (~10 s on one thread)."""
    mvtec, run = root / "mvtec", root / "run"
    threads = torch.get_num_threads()
    try:
        cli("data", "synth", "--out", mvtec, "--layout", "mvtec", "--categories", "tile", "--size", "32",
            "--n-train", "4", "--n-test", "2")
        cli("dadnet", "train", "--data", mvtec, "--category", "tile", "--scale", "smoke", "--epochs", "1",
            "--out", run)
    finally:
        torch.set_num_threads(threads)
    return TinyRun(mvtec, run)


def copy_run(run: Path, to: Path) -> Path:
    """A copy of ``run`` a test may change (calibrate writes into its run)."""
    return Path(shutil.copytree(run, to, ignore=shutil.ignore_patterns(".lock")))


def defect_gan_run(folder: Path) -> Path:
    """A folder whose run.json says Defect-GAN trained it (all the DADNet commands read of it)."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"paper": "defect_gan", "config": {"conv_dim": 8, "n_critic": 5}}))
    return folder


def visible_lines(text: str) -> list[str]:
    """The lines a terminal ends up showing (a progress bar redrawn with \\r, then cleared, leaves none)."""
    return [line for line in (segment.rsplit("\r", 1)[-1] for segment in text.split("\n")) if line.strip()]


def run_cli(capsys, *argv) -> tuple[int, str, list[str]]:
    """``python -m paper_repro ARGV`` in this process: exit status, stdout, visible stderr lines."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, visible_lines(err)


def assert_one_line_error(rc: int, lines: list[str], *words: str, code: int = 2) -> None:
    """A refusal as the CLI promises it: exit ``code``, exactly one ``error:`` line holding ``words``."""
    assert rc == code, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in lines[0]
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
