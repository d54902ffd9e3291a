"""Tables 1-3's synthesizers: is their budget converged? FID at a run's last checkpoints decides."""
import json

import pytest
import torch

from paper_repro.defect_gan.data import TrainingData
from paper_repro.defect_gan.trainer import load_generator, make_config, train
from paper_repro.evaluation import fid
from paper_repro.experiments import synthesizers
from paper_repro.experiments.defect_gan_table3 import synthesizers_converged


def tiny_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return TrainingData.from_tensors(torch.rand(10, 3, 32, 32, generator=g) * 2 - 1,
                                     torch.rand(8, 3, 32, 32, generator=g) * 2 - 1,
                                     (torch.rand(8, 5, generator=g) > 0.5).float())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke run keeping a milestone every 2 iterations: six checkpoints, 2..12."""
    run = tmp_path_factory.mktemp("run")
    cfg = make_config("smoke", iterations=12, checkpoint_every=2, milestone_every=2, keep_last=1,
                      sample_every=100, log_every=4)
    data = tiny_data()
    train(cfg, run, data, progress=False)
    return run, data


def test_fid_curve_measures_each_kept_checkpoint_and_is_read_back(trained, monkeypatch):
    run, data = trained
    real = synthesizers.real_defects(data)
    extractor = fid.resolve_extractor("random", seed=0)
    curve = synthesizers.fid_curve(run, data, real, extractor, seed=3, points=4)
    assert [step for step, _ in curve] == [6, 8, 10, 12]
    # each point is the table's own measure of that checkpoint's generator
    G, _ = load_generator(run, checkpoint=run / "checkpoint_00000008.safetensors")
    assert curve[1][1] == pytest.approx(synthesizers.synthesis_fid(G, data, real, extractor, seed=3).value, rel=1e-5)
    assert curve[0][1] != curve[-1][1]
    # cached in the run folder: asking again measures nothing
    monkeypatch.setattr(synthesizers, "synthesis_fid", lambda *a, **k: pytest.fail("measured again"))
    assert synthesizers.fid_curve(run, data, real, extractor, seed=3, points=4) == curve
    assert synthesizers.recorded_fid_curve(run) == curve
    saved = json.loads((run / synthesizers.CURVE_FILE).read_text())
    assert saved["key"]["extractor"] == extractor.name and saved["key"]["steps"] == [6, 8, 10, 12]


def test_another_seed_or_extractor_is_measured_anew(trained):
    run, data = trained
    real = synthesizers.real_defects(data)
    first = synthesizers.fid_curve(run, data, real, fid.resolve_extractor("random", seed=0), seed=3, points=2)
    other = synthesizers.fid_curve(run, data, real, fid.resolve_extractor("random", seed=0), seed=4, points=2)
    assert other != first


def test_converged_reads_the_curves_at_demo():
    flat = {"StarGAN": [(1750, 410.0), (2000, 433.0), (2250, 412.0), (2500, 409.0), (2750, 413.0), (3000, 410.0)],
            "Defect-GAN": [(1750, 174.0), (2000, 180.0), (2250, 215.0), (2500, 181.0), (2750, 165.0), (3000, 175.0)]}
    assert synthesizers.converged("demo", flat) is True
    rising = {"LWC": [(1750, 100.0), (2000, 101.0), (2250, 99.0), (2500, 150.0), (2750, 160.0), (3000, 170.0)]}
    assert synthesizers.converged("demo", rising) is True  # worse with more training: more would not help
    falling = {**flat, "none": [(1750, 1000.0), (2000, 985.0), (2250, 960.0), (2500, 900.0), (2750, 880.0),
                                (3000, 865.0)]}
    reason = synthesizers.converged("demo", falling)
    assert isinstance(reason, str) and "none" in reason and "1,750-3,000" in reason
    assert "no FID curve" in synthesizers.converged("demo", None)
    assert "Defect-GAN" in synthesizers.converged("demo", {"StarGAN": flat["StarGAN"], "Defect-GAN": None})
    assert "smoke" in synthesizers.converged("smoke", flat)


def test_table3_judges_its_synthesizers_by_the_recorded_curves(trained):
    run, data = trained
    synthesizers.fid_curve(run, data, synthesizers.real_defects(data), fid.resolve_extractor("random", seed=0),
                           seed=0, points=6)
    recorded = synthesizers_converged("demo", {"Defect-GAN seed 42": run})
    assert recorded is True or (isinstance(recorded, str) and "Defect-GAN seed 42" in recorded)
    missing = synthesizers_converged("demo", {"Defect-GAN seed 42": run, "other": run / "nowhere"})
    assert isinstance(missing, str) and "other" in missing


def test_at_full_no_synthesizer_passes_by_its_budget_alone():
    # the full tables train the training chapter's 500,000 iterations; that alone proves nothing
    assert "no FID curve" in synthesizers.converged("full", None)
