"""Full disks (issue 17, kind 5): a run whose checkpoints will not fit does not start, and a disk that fills
up (or a file-size limit, or a spent quota) while a checkpoint or any atomic write is written is one line
naming the folder and the space needed; the temporary file is gone and the earlier checkpoint loads."""
import collections
import errno
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from paper_repro.cli import main
from paper_repro.config import get_config
from paper_repro.dadnet.trainer import load_model, pseudo_anomalies, train
from paper_repro.data.roots import resolve_data
from paper_repro.errors import UserError
from paper_repro.runs import checkpoints
from paper_repro.runs.checkpoints import DISK_FULL_ERRNOS, DiskFull, atomic_write, disk_full_errno

DiskUsage = collections.namedtuple("DiskUsage", "total used free")


def tiny_config(**kw):
    return get_config("dadnet", "smoke", image_size=32, recon_width=4, disc_width=4, batch_size=4, **kw)


def tile_data(cfg):
    return pseudo_anomalies(cfg, resolve_data(None, "mvtec", "smoke").root, "tile", "dgm", progress=False)


def leftovers(folder):
    """What atomic_write leaves when a write dies: ``.<name>.<random>.tmp``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(checkpoints.TMP_SUFFIX))


@pytest.fixture(scope="module", autouse=True)
def bundled_data():
    """The bundled smoke data, made before any test (its progress bars are not a test's output)."""
    return resolve_data(None, "mvtec", "smoke").root


def one_error_line(err: str) -> str:
    """The one line a terminal shows (a bar redrawn with \\r and cleared leaves nothing)."""
    lines = [segment.rsplit("\r", 1)[-1] for segment in err.split("\n")]
    lines = [line for line in lines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def weights(run):
    model, _, _ = load_model(run)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def full_disk_on(call: int, code: int = errno.ENOSPC):
    """A ``save_file`` that writes the first ``call - 1`` files and then fails half-way, as a disk that
    fills up does: part of the temporary file written, then the error."""
    real, calls = checkpoints.save_file, []

    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) < call:
            return real(tensors, filename, metadata=metadata)
        with open(filename, "wb") as handle:
            handle.write(b"\0" * 4096)
        raise OSError(code, os.strerror(code), filename)
    return save_file


# ---- the one writer ------------------------------------------------------------------------------
@pytest.mark.parametrize("code", sorted(DISK_FULL_ERRNOS))
def test_atomic_write_without_room_is_one_line_and_keeps_the_earlier_file(tmp_path, code):
    target = tmp_path / "run" / "run.json"
    atomic_write(target, lambda tmp: open(tmp, "w").write("the earlier file\n"))

    def write(tmp):
        with open(tmp, "w") as handle:
            handle.write("half")
        raise OSError(code, os.strerror(code), tmp)

    with pytest.raises(DiskFull) as info:
        atomic_write(target, write, needed=3_000_000)
    message = str(info.value)
    assert "\n" not in message and str(target.parent) in message and "3.0 MB" in message, message
    assert os.strerror(code) in message
    assert target.read_text() == "the earlier file\n"
    assert leftovers(tmp_path) == []


def test_other_write_errors_are_not_called_a_full_disk(tmp_path):
    def write(tmp):
        raise OSError(errno.EIO, "Input/output error", tmp)

    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "x.json", write)
    assert not isinstance(info.value, UserError)
    assert leftovers(tmp_path) == []


def test_safetensors_errors_carry_their_errno_in_text():
    """safetensors (Rust) reports a failed write as SafetensorError('... (os error 27)'), not OSError."""
    from safetensors import SafetensorError

    assert disk_full_errno(SafetensorError("Error while serializing: I/O error: File too large (os error 27)")) \
        == errno.EFBIG
    assert disk_full_errno(SafetensorError("I/O error: No space left on device (os error 28)")) == errno.ENOSPC
    assert disk_full_errno(SafetensorError("I/O error: Permission denied (os error 13)")) is None
    assert disk_full_errno(ValueError("nothing to do with a disk")) is None


# ---- (a) the disk plan: a run that cannot fit does not start ------------------------------------
def test_a_run_whose_checkpoints_do_not_fit_does_not_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10**9, 10**9 - 2000, 2000))
    out = tmp_path / "run"
    rc = main(["dadnet", "train", "--category", "tile", "--scale", "smoke", "--epochs", "2", "--out", str(out)])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert str(out) in line and "needed" in line and "2.0 kB free" in line, line
    assert not out.exists()  # nothing written: the folder the run would have made is not there


def test_a_resumed_run_counts_the_checkpoints_it_already_holds(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=2)
    run = tmp_path / "run"
    train(cfg, run, tile_data(cfg), progress=False, stop_at=1)
    held = checkpoints.latest_checkpoint(run).stat().st_size
    # room for one more checkpoint but not for two: the one on disk is part of what the run keeps
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10**9, 0, int(held * 1.5)))
    train(cfg, run, tile_data(cfg), progress=False, resume=True)
    assert checkpoints.latest_checkpoint(run).name == "checkpoint_00000002.safetensors"


# ---- (b) the disk fills up while a checkpoint is written ----------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch,
                                                                                   capsys, code):
    monkeypatch.setattr(checkpoints, "save_file", full_disk_on(call=2, code=code))
    out = tmp_path / "run"
    rc = main(["dadnet", "train", "--category", "tile", "--scale", "smoke", "--epochs", "2", "--out", str(out)])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert str(out) in line and "checkpoint_00000002.safetensors" in line and "needs ~" in line, line
    assert [p.name for _, p in checkpoints.checkpoints(out)] == ["checkpoint_00000001.safetensors"]
    assert leftovers(out) == []
    model, _, _ = load_model(out)  # the earlier checkpoint loads
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_full_disk_while_resuming_keeps_the_weights_it_had(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=2)
    run = tmp_path / "run"
    train(cfg, run, tile_data(cfg), progress=False, stop_at=1)
    before = weights(run)
    monkeypatch.setattr(checkpoints, "save_file", full_disk_on(call=1))
    with pytest.raises(DiskFull) as info:
        train(cfg, run, tile_data(cfg), progress=False, resume=True)
    assert "\n" not in str(info.value) and str(run) in str(info.value)
    monkeypatch.undo()
    assert torch.equal(weights(run), before)
    assert leftovers(run) == []
    train(cfg, run, tile_data(cfg), progress=False, resume=True)  # with room again, the run finishes
    assert checkpoints.latest_checkpoint(run).name == "checkpoint_00000002.safetensors"


SUBPROCESS = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from paper_repro.config import get_config
    from paper_repro.dadnet.trainer import pseudo_anomalies, train
    from paper_repro.data.roots import resolve_data
    from paper_repro.errors import UserError
    from paper_repro.runs.checkpoints import latest_checkpoint

    run = Path(sys.argv[1])
    cfg = get_config("dadnet", "smoke", image_size=32, recon_width=4, disc_width=4, batch_size=4, epochs=2)
    data = pseudo_anomalies(cfg, resolve_data(None, "mvtec", "smoke").root, "tile", "dgm", progress=False)
    train(cfg, run, data, progress=False, stop_at=1)
    limit = latest_checkpoint(run).stat().st_size // 2  # run.json and log.csv fit; a checkpoint does not
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        train(cfg, run, data, progress=False, resume=True)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
""")


def test_a_file_size_limit_while_checkpointing_is_one_line(tmp_path):
    """The real thing, not a stub: RLIMIT_FSIZE with SIGXFSZ ignored makes safetensors' write fail (EFBIG)."""
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", SUBPROCESS, str(run)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_error_line(proc.stderr)
    assert str(run) in line and "File too large" in line and "needs ~" in line, line
    assert [p.name for _, p in checkpoints.checkpoints(run)] == ["checkpoint_00000001.safetensors"]
    assert leftovers(run) == []
    load_model(run)
