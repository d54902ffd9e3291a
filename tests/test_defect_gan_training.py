"""Defect-GAN trainer: exact resume, DDP on the CPU (gloo, 2 processes), schedule, logs."""
import json
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import run_torchrun
from paper_repro.runs import checkpoints, folders
from paper_repro.defect_gan.data import EpochSampler, TrainingData
from paper_repro.defect_gan.trainer import config_from_run, learning_rate, load_generator, make_config, train


def tiny_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return TrainingData.from_tensors(torch.rand(10, 3, 32, 32, generator=g) * 2 - 1,
                                     torch.rand(7, 3, 32, 32, generator=g) * 2 - 1,
                                     (torch.rand(7, 5, generator=g) > 0.5).float())


def weights(run_dir):
    tensors = load_file(str(checkpoints.latest_checkpoint(run_dir)))
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def test_learning_rate_decays_linearly_from_2e4_to_1e6():
    cfg = make_config("full")
    assert learning_rate(0, cfg) == 2e-4
    assert learning_rate(cfg.iterations, cfg) == pytest.approx(1e-6)
    assert learning_rate(cfg.iterations // 2, cfg) == pytest.approx((2e-4 + 1e-6) / 2)


def test_sampler_is_a_function_of_step_and_covers_each_epoch():
    s = EpochSampler(7, seed=3)
    first_epoch = [i for step in range(7) for i in s.indices(step, 1)]
    assert sorted(first_epoch) == list(range(7))
    assert s.indices(5, 3) == EpochSampler(7, seed=3).indices(5, 3)
    assert s.indices(2, 2, rank=0, world_size=2) != s.indices(2, 2, rank=1, world_size=2)


def test_resume_equals_uninterrupted_run(tmp_path):
    k = 4  # G updates at iterations 5 and 10 (n_critic 5), checkpoints every 2
    cfg = make_config("smoke", iterations=2 * k + 2, checkpoint_every=2, sample_every=100, log_every=1)
    data = tiny_data()
    train(cfg, tmp_path / "straight", data, progress=False, seed=1)
    train(cfg, tmp_path / "resumed", data, progress=False, seed=1, stop_at=k + 1)  # "killed" after k+1
    assert checkpoints.latest_checkpoint(tmp_path / "resumed").name == "checkpoint_00000005.safetensors"
    train(cfg, tmp_path / "resumed", data, progress=False, seed=1, resume=True)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and len(a) > 10
    assert all(torch.equal(a[key], b[key]) for key in a)
    log = folders.CSVLog(tmp_path / "resumed" / "log.csv", resume_step=10**9).read()
    assert list(log["step"]) == list(range(1, 2 * k + 3))  # the log reads as one run
    G, classes = load_generator(tmp_path / "resumed")
    assert len(classes) == 5 and any(v != 0 for v in G.noise_scalars().values())
    assert (tmp_path / "straight" / "samples").is_dir()


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from paper_repro.runs.devices import Distributed
    from paper_repro.defect_gan import trainer
    sys.path.insert(0, sys.argv[2])
    from test_defect_gan_training import tiny_data
    wrapped = []
    original = Distributed.wrap
    def wrap(self, module):
        out = original(self, module)
        wrapped.append(out)
        return out
    Distributed.wrap = wrap
    cfg = trainer.make_config("smoke", iterations=5, checkpoint_every=5, sample_every=5, log_every=1, batch_size=4)
    data = tiny_data()
    drawn = []
    sampler = data.normal_sampler
    original_indices = sampler.indices
    def indices(step, batch_size, rank=0, world_size=1):
        out = original_indices(step, batch_size, rank, world_size)
        drawn.append((step, out))
        return out
    sampler.indices = indices
    trainer.train(cfg, sys.argv[1], data, progress=False)
    # the paper's batch of 4 is shared: 2 images a process, and both processes' images of a step are
    # exactly the batch one process would draw
    assert drawn and all(len(i) == 2 for _, i in drawn), drawn
    first = [None, None]
    torch.distributed.all_gather_object(first, [i for s, i in drawn if s == 0][0])
    assert sorted(first[0] + first[1]) == sorted(original_indices(0, 4)), (first, original_indices(0, 4))
    assert all(isinstance(m, torch.nn.parallel.DistributedDataParallel) for m in wrapped), wrapped
    flat = torch.cat([p.detach().flatten() for m in wrapped for p in m.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(2)]
    torch.distributed.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1]), "ranks diverged"
    print("DDP-OK", torch.distributed.get_rank(), torch.distributed.get_world_size())
    torch.distributed.destroy_process_group()
""")


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    stdout = run_torchrun(script, tmp_path / "run", Path(__file__).parent, cwd=tmp_path, timeout=120)
    assert stdout.count("DDP-OK") == 2
    assert checkpoints.latest_checkpoint(tmp_path / "run").name == "checkpoint_00000005.safetensors"


def test_runs_from_before_mask_init_load_with_a_bias_free_map_head(tmp_path):
    folders.write_run_config(tmp_path, make_config("smoke"), classes=["a", "b"])
    assert config_from_run(tmp_path)[0].mask_init == make_config("smoke").mask_init == 0.02
    saved = json.loads((tmp_path / "run.json").read_text())
    del saved["config"]["mask_init"]
    (tmp_path / "run.json").write_text(json.dumps(saved))
    assert config_from_run(tmp_path)[0].mask_init is None
