"""Shared pytest fixtures. Tests run on the CPU with tiny sizes; caches go to a temporary folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from paper_repro.data import synthetic

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Point ``cache_dir()`` at a per-session temporary folder unless the caller chose one."""
    if "PAPER_REPRO_CACHE" not in os.environ:
        os.environ["PAPER_REPRO_CACHE"] = str(tmp_path_factory.mktemp("paper_repro_cache"))
    yield


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """``synthesized(layout, **kwargs)``: a small data set written by the bundled generator in a fresh folder."""
    def write(layout: str, **kwargs) -> Path:
        return synthetic.synthesize(tmp_path_factory.mktemp(layout) / layout, layout, progress=False, **kwargs)
    return write


def make_notebook(path: Path, cells: list[tuple[str, str]], parameters: str | None = None) -> Path:
    """Write a notebook of ``(kind, source)`` cells; ``parameters`` becomes a tagged parameters cell first."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    for kind, source in cells:
        maker = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(maker(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def run_torchrun(script: Path, *args: str, cwd: Path, timeout: float = 180, nproc: int = 2) -> str:
    """Run ``script`` under ``torchrun --standalone --nproc_per_node nproc`` on the CPU (gloo).

    The workers get one thread each and their own process group, so a timeout ends them all.
    Fails the test with the end of stderr when torchrun exits non-zero; returns stdout.
    """
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
         str(script), *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def pytest_terminal_summary(terminalreporter):
    """Issue 17's count line, when the bad-inputs table (tests/test_bad_inputs.py) ran."""
    support = sys.modules.get("bad_inputs_support")
    line = support.count_line() if support is not None else None
    if line:
        terminalreporter.write_line(line)
