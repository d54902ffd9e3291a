import pytest
import torch

from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from paper_repro.runs.devices import resolve_device
from paper_repro.runs.folders import CSVLog, cached_run_dir, config_hash, read_run_config, write_run_config
from paper_repro.runs.loop import adam, fast_layout


def _train(model, optimizer, scheduler, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(4, 3)).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()


def _fresh():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler


def test_checkpoint_round_trip_resumes_exactly(tmp_path):
    torch.manual_seed(0)
    model, optimizer, scheduler = _fresh()
    _train(model, optimizer, scheduler, 3)
    sampler = torch.Generator().manual_seed(7)
    save_checkpoint(checkpoint_path(tmp_path, 3), modules={"net": model}, optimizers={"adam": optimizer},
                    schedulers={"lr": scheduler}, generators={"sampler": sampler}, step=3, extra={"epoch": 1})
    _train(model, optimizer, scheduler, 3)  # the uninterrupted run goes on
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    expected_sampler_draw = torch.rand(1, generator=sampler)

    restored, optimizer2, scheduler2 = _fresh()
    sampler2 = torch.Generator()
    info = load_checkpoint(latest_checkpoint(tmp_path), modules={"net": restored},
                           optimizers={"adam": optimizer2}, schedulers={"lr": scheduler2},
                           generators={"sampler": sampler2})
    assert info == {"step": 3, "extra": {"epoch": 1}}
    _train(restored, optimizer2, scheduler2, 3)  # the torch RNG was restored: same batches
    for key, value in restored.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert torch.equal(torch.rand(1, generator=sampler2), expected_sampler_draw)  # the sampler resumes too
    assert scheduler2.last_epoch == 6


def test_fused_adam_on_channels_last_weights_resumes_exactly(tmp_path):
    # Checkpoints hold contiguous tensors; the fused Adam kernel pairs a weight with its moments in
    # memory order, so loaded moments must take the channels-last layout of their weights.
    def fresh():
        torch.manual_seed(0)
        net = fast_layout(torch.nn.Conv2d(3, 4, 3))
        return net, adam(net.parameters(), 1e-2, "cpu")

    def steps(net, opt, n):
        for i in range(n):
            opt.zero_grad()
            net(torch.full((2, 3, 6, 6), float(i)).sin()).pow(2).mean().backward()
            opt.step()

    net, opt = fresh()
    assert net.weight.is_contiguous(memory_format=torch.channels_last) and opt.defaults["fused"]
    steps(net, opt, 2)
    save_checkpoint(checkpoint_path(tmp_path, 2), modules={"net": net}, optimizers={"adam": opt}, step=2)
    steps(net, opt, 2)
    restored, opt2 = fresh()
    load_checkpoint(checkpoint_path(tmp_path, 2), modules={"net": restored}, optimizers={"adam": opt2})
    assert opt2.state[restored.weight]["exp_avg"].stride() == restored.weight.stride()
    steps(restored, opt2, 2)
    assert torch.equal(restored.weight, net.weight) and torch.equal(restored.bias, net.bias)


def test_checkpoint_files_are_found_by_step_and_never_half_written(tmp_path):
    model = torch.nn.Linear(2, 2)
    for step in (2, 10, 7):
        save_checkpoint(checkpoint_path(tmp_path, step), modules={"m": model}, step=step)
    assert latest_checkpoint(tmp_path).name == "checkpoint_00000010.safetensors"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert latest_checkpoint(tmp_path / "missing") is None


def test_a_broken_checkpoint_is_a_user_error_naming_the_file(tmp_path):
    bad = tmp_path / "checkpoint_00000001.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="checkpoint_00000001"):
        load_checkpoint(bad, modules={"m": torch.nn.Linear(2, 2)})
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors", modules={})


def test_csv_log_drops_rows_after_the_resumed_step(tmp_path):
    log = CSVLog(tmp_path / "log.csv")
    for step in range(5):
        log.log(step, loss=step / 2)
    log.log(5, loss=1.0, gp=0.1)  # a new column appears
    resumed = CSVLog(tmp_path / "log.csv", resume_step=3)
    resumed.log(4, loss=9.0)
    frame = resumed.read()
    assert frame["step"].tolist() == [0, 1, 2, 3, 4]
    assert frame["loss"].tolist() == [0.0, 0.5, 1.0, 1.5, 9.0]


def test_run_config_and_cache_keys(tmp_path):
    write_run_config(tmp_path, {"lr": 1e-4}, scale="smoke")
    assert read_run_config(tmp_path) == {"config": {"lr": 1e-4}, "scale": "smoke"}
    assert config_hash({"a": 1}) == config_hash({"a": 1}) != config_hash({"a": 2})
    assert cached_run_dir("dadnet", {"a": 1}) == cached_run_dir("dadnet", {"a": 1})
    with pytest.raises(UserError, match="run.json"):
        read_run_config(tmp_path / "elsewhere")


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu9")


def test_progress_bars_obey_the_environment_even_when_a_caller_enables_them(monkeypatch):
    from paper_repro.runs import progress

    monkeypatch.delenv(progress.OFF_ENV, raising=False)
    assert not progress.tqdm(range(3), disable=False).disable
    assert progress.tqdm(range(3), disable=True).disable
    monkeypatch.setenv(progress.OFF_ENV, "1")   # what a book build sets for every chapter's kernel
    assert progress.tqdm(range(3), disable=False).disable
    progress.silence_hugging_face_bars()
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    assert not diffusers_logging.is_progress_bar_enabled() and not transformers_logging.is_progress_bar_enabled()
    diffusers_logging.enable_progress_bar()
    transformers_logging.enable_progress_bar()


def test_the_progress_wrapper_prints_lines_as_tqdm_does(capsys):
    from paper_repro.runs import progress

    progress.tqdm.write("disk: a plan")
    assert "disk: a plan" in capsys.readouterr().out
