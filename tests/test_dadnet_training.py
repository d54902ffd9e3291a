"""DADNet trainer and CLI at smoke size: checkpoints, exact resume, eval's metrics.json, SDGM inputs."""
import argparse
import json

import pytest
import torch

from conftest import run_torchrun
from paper_repro.runs import checkpoints, folders
from paper_repro.cli import main
from paper_repro.config import get_config
from paper_repro.commands import dadnet as cli
from paper_repro.dadnet.networks import DADNet
from paper_repro.dadnet.trainer import load_model, pseudo_anomalies, reconstruction_at_inference, train
from paper_repro.data.roots import resolve_data
from paper_repro.errors import UserError


def tiny_config(**kw):
    return get_config("dadnet", "smoke", image_size=32, recon_width=4, disc_width=4, batch_size=4,
                      **kw)


def tile_data(cfg, pseudo="dgm"):
    """Smoke DADNet training inputs of the bundled tile category."""
    return pseudo_anomalies(cfg, resolve_data(None, "mvtec", "smoke").root, "tile", pseudo, progress=False)


def run_cli(*argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def weights(run):
    model, _, _ = load_model(run)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("eval_mode_reconstruction", [False, True])
def test_resume_equals_uninterrupted(tmp_path, eval_mode_reconstruction):
    cfg = tiny_config(epochs=2, eval_mode_reconstruction=eval_mode_reconstruction)
    train(cfg, tmp_path / "a", tile_data(cfg), progress=False)
    train(cfg, tmp_path / "b", tile_data(cfg), progress=False, stop_at=1)
    assert checkpoints.latest_checkpoint(tmp_path / "b").name.endswith("00000001.safetensors")
    with pytest.raises(UserError, match="--resume"):
        train(cfg, tmp_path / "b", tile_data(cfg), progress=False)
    train(cfg, tmp_path / "b", tile_data(cfg), progress=False, resume=True)
    assert torch.allclose(weights(tmp_path / "a"), weights(tmp_path / "b"))
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert len(log) == 3 and log[0].startswith("step")


def test_cli_train_and_eval_write_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli("dadnet", "train", "--category", "wood", "--scale", "smoke", "--out", str(run),
                   "--epochs", "1", "--no-dram") == 0
    assert run_cli("dadnet", "eval", "--run", str(run), "--category", "wood") == 0
    values = json.loads((run / "metrics.json").read_text())
    assert values["unit"] == "percent"
    for key in ("image_auroc", "pixel_auroc", "pixel_f1"):
        assert 0.0 <= values[key] <= 100.0
    assert "image_auroc" in capsys.readouterr().out
    model, _, saved = load_model(run)
    assert saved["dram"] is False and isinstance(model.reconstructive.dram, torch.nn.Identity)


def test_sdgm_pseudo_anomalies_train(tmp_path):
    cfg = tiny_config(epochs=1, sd_steps=2)
    train(cfg, tmp_path / "s", tile_data(cfg, "sdgm"), progress=False)
    saved = folders.read_run_config(tmp_path / "s")
    assert saved["pseudo"] == f"sdgm:{cfg.sd_model_id}"


def test_inference_mode_reconstruction_leaves_the_network_training_and_its_statistics_alone():
    torch.manual_seed(0)
    recon = DADNet(4, 4).reconstructive.train()
    x = torch.rand(2, 3, 32, 32)
    recon(x)  # running statistics move away from their initial values
    before = [b.clone() for b in recon.buffers()]
    seen = reconstruction_at_inference(recon, x)
    assert recon.training and not seen.requires_grad
    assert all(torch.equal(a, b) for a, b in zip(before, recon.buffers()))
    with torch.no_grad():
        assert torch.equal(seen, recon.eval()(x))
        assert not torch.allclose(seen, recon.train()(x), atol=1e-3)  # batch statistics differ


DDP_SCRIPT = """
import sys, torch
from paper_repro.config import get_config
from paper_repro.dadnet.trainer import pseudo_anomalies, train
from paper_repro.data.roots import resolve_data
from paper_repro.runs.devices import Distributed
shares, wrapped = [], []
share, wrap = Distributed.per_rank_batch, Distributed.wrap
Distributed.per_rank_batch = lambda self, b: shares.append(share(self, b)) or shares[-1]
Distributed.wrap = lambda self, m, **kw: wrapped.append(wrap(self, m, **kw)) or wrapped[-1]
cfg = get_config("dadnet", "smoke", image_size=32, recon_width=4, disc_width=4, batch_size=4, epochs=1,
                 eval_mode_reconstruction=True)
run = sys.argv[1]
data = pseudo_anomalies(cfg, resolve_data(None, "mvtec", "smoke").root, "tile", "dgm", progress=False)
train(cfg, run, data, progress=False)
assert shares == [2], shares    # the paper's batch shared by the two processes, not 4 each
norms = [type(m).__name__ for w in wrapped for m in w.modules() if "BatchNorm" in type(m).__name__]
assert norms and set(norms) == {"BatchNorm2d"}, norms   # SyncBatchNorm only on CUDA (DDP refuses it on the CPU)
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
print("DDP-OK", rank)
"""


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    script = tmp_path / "ddp_dadnet.py"
    script.write_text(DDP_SCRIPT)
    stdout = run_torchrun(script, tmp_path / "run", cwd=tmp_path, timeout=180)
    assert stdout.count("DDP-OK") == 2
    assert checkpoints.latest_checkpoint(tmp_path / "run").name == "checkpoint_00000001.safetensors"
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 2


def test_main_cli_reports_a_missing_run_as_one_line(tmp_path, capsys):
    assert main(["dadnet", "eval", "--run", str(tmp_path / "no-run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "run.json" in err and len(err.splitlines()) == 1
