"""The `full` path: what a GPU user runs must be what the papers describe, and be checkable here.

SDGM asks for the real Stable Diffusion at full and draws fresh pseudo-anomalies every epoch; precision
is an explicit, recorded setting; long runs lock their folder, refuse another configuration on resume,
keep a bounded number of checkpoints and honour the umask; a full batch checks what it needs before it
trains; tables record their provenance."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from paper_repro.book.preflight import PreflightFailed, check_full_batch
from paper_repro.cli import main
from paper_repro.config import PROFILES, get_config, sd_model_for
from paper_repro.context import RunContext
from paper_repro.environment import DRY_RUN_ENV, PRECISION_ENV, SD_MODEL_ENV, exported
from paper_repro.dadnet import trainer as dadnet_trainer
from paper_repro.dadnet.pseudo import PseudoAnomalies, sdgm_bank
from paper_repro.data.roots import resolve_data
from paper_repro.defect_gan.data import TrainingData
from paper_repro.defect_gan.trainer import make_config, train
from paper_repro.errors import UserError
from paper_repro.results.tables import RunInfo, provenance, save_table, side_by_side
from paper_repro.results.papers import paper_table
from paper_repro.runs.checkpoints import checkpoints, kept_checkpoints
from paper_repro.runs.folders import read_run_config, run_lock
from paper_repro.runs.precision import resolve_precision

REPO = Path(__file__).resolve().parent.parent


def tiny_gan_data(seed: int = 0) -> TrainingData:
    g = torch.Generator().manual_seed(seed)
    return TrainingData.from_tensors(torch.rand(6, 3, 32, 32, generator=g) * 2 - 1,
                                     torch.rand(5, 3, 32, 32, generator=g) * 2 - 1,
                                     (torch.rand(5, 5, generator=g) > 0.5).float())


# ---- item 1: SDGM at full is the real Stable Diffusion ---------------------------------------------------
def test_full_dadnet_sdgm_asks_for_sd_model_id_not_the_tiny_model(monkeypatch):
    asked = []

    def recording_bank(normals, category, *, model, **kwargs):
        asked.append(model)
        raise UserError("stop here: the checkpoint was asked for")

    monkeypatch.setattr(dadnet_trainer, "sdgm_bank", recording_bank)
    monkeypatch.delenv(SD_MODEL_ENV, raising=False)
    full = get_config("dadnet", "full", image_size=32, recon_width=4, disc_width=4)
    root = resolve_data(None, "mvtec", "smoke").root
    for run in (lambda: dadnet_trainer.pseudo_anomalies(full, root, "tile", "sdgm", progress=False),
                lambda: dadnet_trainer.trained_run(full, resolve_data(None, "mvtec", "smoke"), "tile", pseudo="sdgm",
                                                   progress=False)):
        with pytest.raises(UserError, match="stop here"):
            run()
    assert asked == [full.sd_model_id] * 2 == ["stable-diffusion-v1-5/stable-diffusion-inpainting"] * 2
    # the flag, then the run context's (a chapter's sd_model parameter, else the environment), then the scale's
    assert sd_model_for(full, "/models/sd") == "/models/sd"
    monkeypatch.setenv(SD_MODEL_ENV, "/env/sd")
    assert sd_model_for(full) == full.sd_model_id                      # get_config does not read the environment
    assert sd_model_for(RunContext.create("full").config("dadnet")) == "/env/sd"
    assert sd_model_for(RunContext.create("full", sd_model="/chapter/sd").config("dadnet")) == "/chapter/sd"
    # smoke and demo: the shipped stand-in; the random tiny pipeline is for unit tests only
    assert get_config("dadnet", "smoke").sd_model_id == get_config("dadnet", "demo").sd_model_id == "standin"


def test_the_cached_run_of_an_sdgm_model_is_keyed_by_its_checkpoint():
    cfg = get_config("dadnet", "smoke")
    source = resolve_data(None, "mvtec", "smoke")
    key = dict(category="tile", pseudo="sdgm", dram=True, data=source.key)
    from paper_repro.runs.folders import cached_run_dir

    assert cached_run_dir("dadnet", cfg, **key, sd_model="tiny") != cached_run_dir("dadnet", cfg, **key,
                                                                                   sd_model="/models/sd")


# ---- item 2: SDGM's pseudo-anomalies are fresh every epoch ------------------------------------------------
def test_sdgm_draws_fresh_pseudo_anomalies_every_epoch():
    normals = torch.rand(2, 3, 32, 32)
    bank = sdgm_bank(normals, "tile", model="tiny", variants=3, steps=2, progress=False)
    assert len(bank["D"]) == 6 and bank["index"].tolist() == [0, 1, 0, 1, 0, 1]
    data = PseudoAnomalies(normals, seed=1, bank=bank, p_anomaly=1.0)
    seen = set()
    for epoch in range(24):
        data.set_epoch(epoch)
        seen.add(data[0]["anomalous"].numpy().tobytes())
    assert len(seen) >= 10  # 3 variants x 8 flips/rotations; one fixed image before
    assert get_config("dadnet", "full").sdgm_variants > 1


# ---- item 6: precision is explicit and recorded --------------------------------------------------------
def test_precision_resolves_per_device_and_refuses_what_the_device_cannot_run():
    assert resolve_precision("auto", "cpu").name == "fp32"
    assert resolve_precision("bf16", "cpu").name == "bf16"
    with pytest.raises(UserError, match="fp16 needs a CUDA"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(UserError, match="expected one of"):
        resolve_precision("half", "cpu")


def test_bf16_defect_gan_steps_run_and_the_run_records_its_precision(tmp_path):
    cfg = make_config("smoke", iterations=5, checkpoint_every=5, sample_every=100, precision="bf16")
    train(cfg, tmp_path / "run", tiny_gan_data(), progress=False)
    saved = read_run_config(tmp_path / "run")
    assert saved["precision"] == "bf16" and saved["paper"] == "defect_gan"
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert "nan" not in log[-1].lower() and "G/total" in log[0]


def test_captions_name_the_precision(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert "precision=fp32" in RunInfo.of(RunContext.create("demo")).describe()
    monkeypatch.setenv(PRECISION_ENV, "bf16")   # what `reproduce --precision bf16` hands every chapter kernel
    ctx = RunContext.create("demo")
    assert "precision=bf16" in RunInfo.of(ctx).describe()
    assert ctx.config("dadnet").precision == "bf16" and ctx.config("defect_gan").precision == "bf16"
    assert get_config("dadnet", "full").precision == "auto"     # the pure profile is untouched


# ---- item 7: one value of eval_mode_reconstruction at every scale (both branches are tested elsewhere) ----
def test_eval_mode_reconstruction_is_one_value_at_every_scale():
    assert {get_config("dadnet", s).eval_mode_reconstruction for s in ("smoke", "demo", "full")} == {True}


# ---- long runs: lock, configuration, retention, umask ---------------------------------------------------
LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from paper_repro.runs.folders import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(30)
""")


def assert_second_trainer_refused(out, capsys, env=None, monkeypatch=None) -> None:
    """Another process holds ``out``'s lock (with ``env`` in its environment, and in ours): a trainer on
    ``out`` gets one line and exit 2, and writes nothing."""
    env = env or {}
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), **env})
    try:
        assert holder.stdout.readline().strip() == "locked"
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        code = main(["defect-gan", "train", "--scale", "smoke", "--iterations", "2", "--out", str(out)])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and "in use by process" in err[0], err
        assert not (out / "run.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_second_trainer_on_one_folder_gets_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert_second_trainer_refused(out, capsys)
    with run_lock(out):  # the lock died with its process
        pass


def test_resuming_under_another_configuration_is_refused_naming_the_fields(tmp_path):
    run = tmp_path / "run"
    cfg = make_config("smoke", iterations=4, checkpoint_every=2, sample_every=100)
    train(cfg, run, tiny_gan_data(), progress=False, stop_at=2)
    before = (run / "run.json").read_bytes()
    with pytest.raises(UserError, match=r"lr: 0\.0002 -> 0\.002"):
        train(make_config("smoke", iterations=4, checkpoint_every=2, sample_every=100, lr=2e-3), run,
              tiny_gan_data(), progress=False, resume=True)
    with pytest.raises(UserError, match="image_size: 32 -> 64"):
        train(make_config("smoke", iterations=4, image_size=64), run, tiny_gan_data(), progress=False, resume=True)
    assert (run / "run.json").read_bytes() == before
    # how often it logs or checkpoints may change on resume
    train(make_config("smoke", iterations=4, checkpoint_every=1, sample_every=100), run, tiny_gan_data(),
          progress=False, resume=True)


def test_checkpoints_keep_the_last_k_and_the_milestones(tmp_path):
    cfg = make_config("smoke", iterations=12, checkpoint_every=1, sample_every=100, keep_last=2, milestone_every=5)
    train(cfg, tmp_path / "run", tiny_gan_data(), progress=False, stop_at=7)
    assert [s for s, _ in checkpoints(tmp_path / "run")] == [5, 6, 7]
    train(cfg, tmp_path / "run", tiny_gan_data(), progress=False, resume=True)
    assert [s for s, _ in checkpoints(tmp_path / "run")] == [5, 10, 11, 12]


@pytest.mark.parametrize("paper, total, every", [("defect_gan", 500_000, 10_000), ("dadnet", 700, 10)])
def test_full_runs_keep_a_bounded_number_of_checkpoints(paper, total, every):
    cfg = get_config(paper, "full")
    kept = kept_checkpoints(total, cfg.checkpoint_every, cfg.keep_last, cfg.milestone_every)
    assert cfg.checkpoint_every == every and kept <= 9 < total // every


def test_training_says_up_front_how_much_disk_it_needs(tmp_path, capsys):
    assert main(["defect-gan", "train", "--scale", "smoke", "--iterations", "2", "--out", str(tmp_path / "r")]) == 0
    said = capsys.readouterr()
    assert "disk: checkpoints of ~" in said.out + said.err and "free in" in said.out + said.err


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_run_files_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        train(make_config("smoke", iterations=2, checkpoint_every=2, sample_every=2), tmp_path / "run",
              tiny_gan_data(), progress=False)
    finally:
        os.umask(old)
    for path in (tmp_path / "run").rglob("*"):
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        assert path.stat().st_mode & 0o777 == expected, path.name


def test_training_curves_and_samples_go_to_tensorboard_too(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_config("smoke", iterations=5, checkpoint_every=5, sample_every=5), tmp_path / "run", tiny_gan_data(),
          progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert "D/total" in events.Tags()["scalars"] and "samples" in events.Tags()["images"]
    assert len(events.Scalars("D/total")) == 5 and (tmp_path / "run" / "samples" / "step_00000005.png").is_file()


def test_stale_temporaries_are_removed_and_the_users_files_kept(tmp_path):
    run = tmp_path / "run"
    cfg = make_config("smoke", iterations=4, checkpoint_every=2, sample_every=100)
    train(cfg, run, tiny_gan_data(), progress=False, stop_at=2)
    stale = [run / ".checkpoint_00000004.safetensors.k3j9x2a1.tmp", run / ".log.csv.u7q2w1.tmp"]
    users = [run / "notes.tmp", run / ".my_notes.tmp"]
    for path in stale + users:
        path.write_text("x")
    train(cfg, run, tiny_gan_data(), progress=False, resume=True)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in users)


def test_the_generator_columns_are_filled_on_the_first_row_after_a_resume(tmp_path):
    cfg = make_config("smoke", iterations=8, checkpoint_every=6, sample_every=100, log_every=1)
    train(cfg, tmp_path / "run", tiny_gan_data(), progress=False, stop_at=6)
    train(cfg, tmp_path / "run", tiny_gan_data(), progress=False, resume=True)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    header, seventh = rows[0].split(","), rows[7].split(",")
    assert seventh[header.index("G/total")] not in ("", "nan")


# ---- a full batch checks what it needs before training; tables record their provenance -----------------
def test_a_full_batch_names_a_missing_data_set_and_device_before_training(tmp_path):
    with pytest.raises(PreflightFailed) as caught:
        check_full_batch(str(tmp_path), ["cpu", "cuda:3"], seed=42)
    problems = caught.value.problems
    assert any("cuda:3" in p and "no CUDA device" in p for p in problems)
    assert any(p.startswith("MVTec AD:") and str(tmp_path) in p for p in problems)
    assert any(p.startswith("CODEBRIM:") for p in problems)


def test_reproduce_full_prints_one_line_per_missing_thing_and_runs_nothing(tmp_path, capsys):
    code = main(["reproduce", "--scale", "full", "--dry-run", "--out", str(tmp_path / "out"),
                 "--data-root", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) >= 2 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "out" / "notebooks").exists()


def test_dry_run_caps_counts_and_keeps_the_full_geometry():
    with exported(dry_run=True, sd_model=None, precision=None):
        assert os.environ[DRY_RUN_ENV] == "1"
        full, demo = RunContext.create("full"), RunContext.create("demo")   # as a chapter kernel builds them
        assert full.dry_run and "DRY RUN" in full.banner()
        gan, dad = full.config("defect_gan"), full.config("dadnet")
        assert (gan.image_size, gan.batch_size, gan.conv_dim, gan.iterations) == (128, 4, 64, 5)
        assert (dad.image_size, dad.batch_size, dad.recon_width, dad.disc_width, dad.epochs) == (256, 8, 128, 64, 1)
        assert demo.config("dadnet").epochs == PROFILES["dadnet"][1]["demo"]["epochs"]  # only full is capped
        assert get_config("dadnet", "full").epochs == 700                             # the pure profile is not
    assert DRY_RUN_ENV not in os.environ and not RunContext.create("full").dry_run


def test_written_tables_record_commit_versions_device_and_precision(tmp_path):
    table = side_by_side(paper_table("dadnet.table4"), paper_table("dadnet.table4").assign(image_auroc=1.0),
                         on=["experiment"], value="image_auroc", run_info=RunInfo("demo", "bundled", "cpu"))
    save_table(table, "t4", tmp_path)
    record = json.loads((tmp_path / "t4.json").read_text())
    assert record["device"] == "cpu" and record["precision"] == "fp32"
    assert record["provenance"]["torch"] == torch.__version__.split("+")[0] or record["provenance"]["torch"]
    assert set(provenance()) >= {"git_commit", "torch", "diffusers", "transformers", "anomalib"}
    assert "git_commit" in (tmp_path / "t4.md").read_text()


# ---- the distributed environment: read in one place, never a switch for the lock (issue 29, item 4) -------
@pytest.mark.parametrize("env, message", [
    ({"RANK": "abc"}, "RANK='abc': expected a whole number"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 but RANK is not set"),
    ({"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE='two': expected a whole number"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2: expected a rank below WORLD_SIZE=2"),
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK=-1: expected 0 or more"),
])
def test_malformed_distributed_variables_are_one_line(env, message):
    from paper_repro.runs.devices import launch_environment

    with pytest.raises(UserError) as err:
        launch_environment(env)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_launch_environment_of_one_process_and_of_a_group():
    from paper_repro.runs.devices import launch_environment

    assert launch_environment({}) == (1, 0, 0)
    assert launch_environment({"RANK": "1"}) == (1, 0, 0)  # a stray RANK describes no group
    assert launch_environment({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == (4, 3, 1)


@pytest.mark.parametrize("env", [{"RANK": "1"}, {"RANK": "1", "WORLD_SIZE": "1"}])
def test_a_stray_rank_does_not_switch_the_lock_off(tmp_path, capsys, monkeypatch, env):
    """Two trainers on one --out with RANK=1 and no process group: the second gets one refusal."""
    assert_second_trainer_refused(tmp_path / "run", capsys, env, monkeypatch)


def test_a_malformed_rank_stops_a_trainer_in_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "abc")
    out = tmp_path / "run"
    assert main(["defect-gan", "train", "--scale", "smoke", "--iterations", "2", "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "RANK='abc'" in err[0], err
    assert not (out / "run.json").exists()


def test_a_batch_that_does_not_split_over_the_processes_is_one_line():
    from paper_repro.runs.devices import Distributed

    assert Distributed(enabled=True, rank=0, world_size=2).per_rank_batch(8) == 4
    assert Distributed().per_rank_batch(4) == 4
    with pytest.raises(UserError) as err:
        Distributed(enabled=True, rank=0, world_size=3).per_rank_batch(4)
    message = str(err.value)
    assert "\n" not in message and "batch of 4" in message and "3 processes" in message and "1, 2, 4 GPU(s)" in message


def test_a_chapter_with_bars_off_prints_no_disk_line(tmp_path, capsys, monkeypatch):
    # the book runs chapters with TQDM_DISABLE=1: the disk plan is a command-line line, beside the bar
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert main(["defect-gan", "train", "--scale", "smoke", "--iterations", "2", "--out", str(tmp_path / "r")]) == 0
    said = capsys.readouterr()
    assert "disk:" not in said.out + said.err
