"""Cached runs record the code that produced them and are retrained when it changes (paper_repro.runs.cached)."""
import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from paper_repro.runs import cached
from paper_repro.runs.cached import (MANIFEST, changed_files, code_manifest, ensure_current, source_fingerprint,
                                     stale_reason)


def test_comments_docstrings_and_formatting_do_not_change_the_fingerprint():
    code = 'def loss(x):\n    return x.abs().mean()\n'
    documented = '"""A module."""\n# a comment\ndef loss(x):\n    """The L1 loss."""\n    return  x.abs().mean()  # eq. 8\n'
    assert source_fingerprint(code) == source_fingerprint(documented)
    assert source_fingerprint(code) != source_fingerprint(code.replace("mean", "sum"))
    only_doc = 'def f():\n    """Only a docstring."""\n'
    assert source_fingerprint(only_doc) == source_fingerprint("def f():\n    pass\n")


def write_package(root: Path) -> Path:
    """pkg/ with trainer -> losses (absolute), trainer -> .nets (relative, inside a function), and an
    unrelated module; config is never fingerprinted under the real package name only."""
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "losses.py").write_text("def l1(x):\n    return x\n")
    (pkg / "sub" / "nets.py").write_text("from pkg.sub import losses\nWIDTH = 4\n")
    (pkg / "sub" / "trainer.py").write_text(textwrap.dedent("""\
        from pkg.sub.losses import l1
        def train():
            from . import nets
            return nets.WIDTH
        """))
    (pkg / "unrelated.py").write_text("X = 1\n")
    return pkg


def test_the_manifest_follows_imports_transitively_and_only_those(tmp_path):
    pkg = write_package(tmp_path)
    manifest = code_manifest("pkg.sub.trainer", root=pkg, package="pkg")
    assert sorted(manifest) == ["__init__.py", "sub/__init__.py", "sub/losses.py", "sub/nets.py", "sub/trainer.py"]
    with pytest.raises(ValueError, match="not a module of pkg"):
        code_manifest("pkg.missing", root=pkg, package="pkg")


def test_changing_a_loss_retrains_and_names_it_an_unrelated_change_does_not(tmp_path, capsys):
    pkg = write_package(tmp_path)
    run = tmp_path / "cache" / "runs" / "model-abc"

    def use() -> bool:
        """Open the cached run as a trainer does; True when it had to be trained."""
        cached._manifest.cache_clear()
        ensure_current(run, ["pkg.sub.trainer"], what="model", root=pkg, package="pkg")
        trained = not (run / "weights.bin").exists()
        (run / "weights.bin").write_bytes(b"weights")
        return trained

    assert use() and not use()  # the first use trains, the second reads
    (pkg / "unrelated.py").write_text("X = 2\n")
    (pkg / "sub" / "losses.py").write_text("# a new comment\ndef l1(x):\n    return x\n")
    assert not use() and "retraining" not in capsys.readouterr().out
    (pkg / "sub" / "losses.py").write_text("def l1(x):\n    return 2 * x\n")
    assert use()
    assert capsys.readouterr().out.strip() == "retraining model: sub/losses.py changed"
    assert not use()


def test_a_run_without_a_manifest_is_stale_and_an_empty_one_is_not(tmp_path):
    manifest = {"a.py": "1"}
    assert stale_reason(tmp_path / "absent", manifest) is None
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text("")
    assert stale_reason(run, manifest) is None
    (run / "checkpoint_00000010.safetensors").write_bytes(b"x")
    assert stale_reason(run, manifest) == "it was trained before runs recorded their code"
    (run / MANIFEST).write_text("{not json")
    assert stale_reason(run, manifest) == f"its {MANIFEST} is unreadable"
    (run / MANIFEST).write_text(json.dumps({"a.py": "1", "b.py": "2"}))
    assert stale_reason(run, manifest) == "b.py changed"
    assert changed_files({"a.py": "1"}, {"a.py": "2", "c.py": "3"}) == ["a.py", "c.py"]


def test_the_real_trainers_fingerprint_their_losses_and_not_the_settings():
    defect_gan = code_manifest("paper_repro.defect_gan.trainer")
    dadnet = code_manifest("paper_repro.dadnet.trainer")
    assert "defect_gan/losses.py" in defect_gan and "defect_gan/generator.py" in defect_gan
    assert "dadnet/losses.py" in dadnet and "dadnet/dram.py" in dadnet
    assert "dadnet/losses.py" not in defect_gan and "defect_gan/losses.py" not in dadnet
    assert "config.py" not in defect_gan and "config.py" not in dadnet


def test_a_smoke_dadnet_run_is_retrained_when_its_loss_changes(tmp_path, monkeypatch, capsys):
    """The real trained_run, on the smoke data: a changed fingerprint of dadnet/losses.py retrains it."""
    from paper_repro.config import get_config
    from paper_repro.dadnet.trainer import trained_run
    from paper_repro.data.roots import resolve_data

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    cfg = get_config("dadnet", "smoke")
    source = resolve_data(None, "mvtec", "smoke", seed=42)
    first = trained_run(cfg, source, cfg.categories[0], progress=False)
    stamp = (first / "run.json").stat().st_mtime_ns
    assert trained_run(cfg, source, cfg.categories[0], progress=False) == first
    assert (first / "run.json").stat().st_mtime_ns == stamp and "retraining" not in capsys.readouterr().out
    real = cached._manifest

    def edited(modules, exclude, root, package):
        return tuple((f, "edited" if f == "dadnet/losses.py" else h) for f, h in real(modules, exclude, root, package))

    monkeypatch.setattr(cached, "_manifest", edited)
    assert trained_run(cfg, source, cfg.categories[0], progress=False) == first
    assert "retraining dadnet: dadnet/losses.py changed" in capsys.readouterr().out
    assert json.loads((first / MANIFEST).read_text())["dadnet/losses.py"] == "edited"
    shutil.rmtree(tmp_path / "cache")


def test_a_cache_that_names_a_file_is_one_line(tmp_path, monkeypatch):
    from paper_repro.cli import main
    from paper_repro.environment import cache_dir
    from paper_repro.errors import UserError

    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(afile))
    with pytest.raises(UserError, match="names a file, not a folder"):
        cache_dir()
    assert afile.read_text() == "not a folder"


def test_a_finished_run_in_a_read_only_cache_is_read_and_a_stale_one_refused(tmp_path, monkeypatch):
    """The chapter API's path (trained_run) on a read-only cache: a current run is read without its lock;
    a run of other code cannot be retrained there and says so in one line, touching nothing. (Read-only
    is simulated: the tests run as root, whom permissions do not stop.)"""
    import errno

    from paper_repro.config import get_config
    from paper_repro.dadnet.trainer import trained_run
    from paper_repro.data.roots import resolve_data
    from paper_repro.errors import UserError
    from paper_repro.runs import folders

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    cfg = get_config("dadnet", "smoke")
    source = resolve_data(None, "mvtec", "smoke", seed=42)
    run = trained_run(cfg, source, cfg.categories[0], progress=False)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    def read_only(path):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(folders, "_open_lock", read_only)
    monkeypatch.setattr(cached.os, "access", lambda path, mode: False)
    assert trained_run(cfg, source, cfg.categories[0], progress=False) == run
    real = cached._manifest
    monkeypatch.setattr(cached, "_manifest", lambda *a: tuple((f, "x") for f, _ in real(*a)))
    with pytest.raises(UserError, match="the folder is read-only") as err:
        trained_run(cfg, source, cfg.categories[0], progress=False)
    assert "\n" not in str(err.value)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def _flip_a_tensor_byte(path: Path) -> None:
    """Flip one byte in the tensor data of a safetensors file (its header stays intact and parses)."""
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    data[8 + header + (len(data) - 8 - header) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_bit_flipped_cached_checkpoint_is_detected_and_rebuilt(tmp_path, monkeypatch, capsys):
    from paper_repro.config import get_config
    from paper_repro.dadnet.trainer import load_model, trained_run
    from paper_repro.data.roots import resolve_data
    from safetensors.torch import load_file

    from paper_repro.runs.checkpoints import DamagedCheckpoint, latest_checkpoint, verify_checkpoint

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    cfg = get_config("dadnet", "smoke")
    source = resolve_data(None, "mvtec", "smoke", seed=42)
    run = trained_run(cfg, source, cfg.categories[0], progress=False)
    last = latest_checkpoint(run)
    good = load_file(str(last))
    _flip_a_tensor_byte(last)
    with pytest.raises(DamagedCheckpoint, match="damaged checkpoint"):
        verify_checkpoint(last)
    with pytest.raises(DamagedCheckpoint) as err:
        load_model(run)  # a reader outside the cache helper is stopped in one line naming the file
    assert str(last) in str(err.value) and "\n" not in str(err.value)
    capsys.readouterr()
    assert trained_run(cfg, source, cfg.categories[0], progress=False) == run
    assert f"rebuilding dadnet: {last}: damaged checkpoint" in capsys.readouterr().out
    verify_checkpoint(last)
    rebuilt = load_file(str(last))  # resumed from the checkpoint before: the same weights
    assert rebuilt.keys() == good.keys()
    assert all(torch.equal(rebuilt[k], good[k]) for k in good if k.startswith("model."))
    # (one Adam second moment came back different in its last bits when this was written: a reduction
    # whose order is not fixed; the weights are bit for bit the same)
    assert all(torch.allclose(rebuilt[k].double(), good[k].double(), rtol=1e-4, atol=1e-12) for k in good
               if rebuilt[k].is_floating_point())
    load_model(run)


# ---- cached tensors (SDGM banks, baseline predictions, the bridge's banks) -----------------------------------
def _damage(kind: str, path: Path) -> None:
    """What a crash, a full disk or another program leaves in a cached tensors file."""
    from safetensors.torch import load_file, save_file

    if kind == "flipped byte":
        _flip_a_tensor_byte(path)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "a tensor missing":       # rewritten without one tensor, the digest kept
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
        tensors.pop(sorted(tensors)[0])
        save_file(tensors, str(path), metadata=metadata)
    elif kind == "rewritten without a digest":
        save_file({k: v.clone() for k, v in load_file(str(path)).items()}, str(path))
    elif kind == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("kind", ["flipped byte", "truncated", "a tensor missing", "rewritten without a digest", "empty"])
def test_a_damaged_cached_tensor_file_is_named_in_one_line_and_computed_again(kind, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    calls = []

    def compute():
        calls.append(1)
        return {"D": torch.arange(64, dtype=torch.uint8).reshape(4, 16), "M": torch.ones(4, 2)}

    first = cached.cached_tensors("bank", {"k": 1}, compute)
    assert cached.cached_tensors("bank", {"k": 1}, compute).keys() == first.keys() and len(calls) == 1
    path = next((tmp_path / "cache" / "bank").rglob(cached.TENSORS_FILE))
    _damage(kind, path)
    capsys.readouterr()
    again = cached.cached_tensors("bank", {"k": 1}, compute)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(calls) == 2 and all(torch.equal(again[k], first[k]) for k in first)
    assert len(out) == 1 and out[0].startswith(f"rebuilding bank: {path}: damaged")
    assert cached.cached_tensors("bank", {"k": 1}, compute) and len(calls) == 2   # healed: read again


def test_cached_tensors_are_computed_again_when_their_code_changes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.zeros(3)}

    module = "paper_repro.dadnet.pseudo"
    cached.cached_tensors("sdgm", {"k": 1}, compute, modules=[module])
    cached.cached_tensors("sdgm", {"k": 1}, compute, modules=[module])
    assert len(calls) == 1
    real = cached._manifest

    def edited(modules, exclude, root, package):
        return tuple((f, "edited" if f == "dadnet/sdgm.py" else h) for f, h in real(modules, exclude, root, package))

    monkeypatch.setattr(cached, "_manifest", edited)
    capsys.readouterr()
    cached.cached_tensors("sdgm", {"k": 1}, compute, modules=[module])
    assert len(calls) == 2 and "retraining sdgm: dadnet/sdgm.py changed" in capsys.readouterr().out


def test_a_damaged_sdgm_bank_is_rebuilt_through_the_real_function(tmp_path, monkeypatch, capsys):
    from paper_repro.dadnet.pseudo import sdgm_bank

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    normals = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    bank = sdgm_bank(normals, "tile", model="tiny", steps=2, progress=False)
    path = next((tmp_path / "cache" / "sdgm").rglob(cached.TENSORS_FILE))
    _damage("a tensor missing", path)
    capsys.readouterr()
    rebuilt = sdgm_bank(normals, "tile", model="tiny", steps=2, progress=False)
    assert f"rebuilding sdgm: {path}: damaged" in capsys.readouterr().out
    assert all(torch.equal(rebuilt[k], bank[k]) for k in bank)


@pytest.mark.parametrize("damage", ["truncated", "empty", "another shape"])
def test_a_damaged_extra_normals_file_is_named_and_decoded_again(damage, tmp_path, monkeypatch, capsys):
    import numpy as np

    from paper_repro.data.pool import NormalPool
    from paper_repro.defect_gan import data as gan_data

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    pool = NormalPool(None, 4, image_size=16, seed=3)
    key = gan_data._pool_key(pool, 3)
    first = np.array(gan_data._on_disk(pool, key, "normals"))
    path = next((tmp_path / "cache" / "normals").glob("*.npy"))
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.save(path, np.zeros((2, 3, 16, 16), dtype=np.uint8))
    capsys.readouterr()
    again = np.array(gan_data._on_disk(pool, key, "normals"))
    out = capsys.readouterr().out.strip().splitlines()
    assert np.array_equal(again, first)
    assert len(out) == 1 and out[0].startswith(f"rebuilding the extra normals: {path} is damaged")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'{"key": 1, "curve": 5}', b"[1, 2]"])
def test_a_damaged_fid_curve_is_measured_again(content, tmp_path, capsys):
    from paper_repro.experiments import synthesizers

    (tmp_path / synthesizers.CURVE_FILE).write_bytes(content)
    assert synthesizers.recorded_fid_curve(tmp_path) is None
    assert "damaged" in capsys.readouterr().out


def test_the_training_seeds_share_one_sdgm_bank_and_its_seed_draws_another(tmp_path, monkeypatch):
    """config.sdgm_bank_seed: one bank per category, as a data set; the run's own seed picks the variants."""
    from paper_repro.config import get_config
    from paper_repro.dadnet.trainer import pseudo_anomalies_of

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    normals = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def bank(**overrides):
        cfg = get_config("dadnet", "smoke", **overrides)
        return pseudo_anomalies_of(cfg, normals, "tile", "sdgm", sd_model="tiny", progress=False)

    first, second, other = bank(seed=42), bank(seed=43), bank(seed=42, sdgm_bank_seed=7)
    assert (first.seed, second.seed) == (42, 43)
    assert all(torch.equal(first.bank[k], second.bank[k]) for k in first.bank)
    assert not torch.equal(first.bank["D"], other.bank["D"])
