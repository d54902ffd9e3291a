import dataclasses

import pytest

from paper_repro.config import PROFILES, SCALES, check_scale, config_table, get_config
from paper_repro.environment import default_scale


def test_full_scale_is_exactly_the_papers_settings():
    gan = get_config("defect_gan", "full")
    # Defect-GAN §4.1 and eq. (12)
    assert (gan.image_size, gan.batch_size, gan.iterations, gan.n_critic) == (128, 4, 500_000, 5)
    assert (gan.lr, gan.lr_end, gan.betas, gan.lambda_gp) == (2e-4, 1e-6, (0.5, 0.999), 10.0)
    assert (gan.lambda_cls_real, gan.lambda_cls_fake, gan.lambda_rec, gan.lambda_sd_cyc,
            gan.lambda_sd_con) == (2.0, 5.0, 5.0, 5.0, 1.0)
    det = get_config("detection", "full")  # Defect-GAN §4.2
    assert (det.image_size, det.batch_size, det.lr) == (224, 16, 1e-3)
    dad = get_config("dadnet", "full")  # DADNet §2.2, §2.3, §3.2
    assert (dad.image_size, dad.batch_size, dad.epochs, dad.lr, dad.lr_milestones) == (256, 8, 700, 1e-4, (400, 600))
    assert (dad.lambda_ssim, dad.focal_beta, dad.focal_delta, dad.dram_gamma, dad.seed) == (0.85, 0.25, 2.0, 0.25, 42)
    assert len(dad.categories) == 8 and dad.prompts_per_category == 4


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_small_scales_override_only_known_fields(profile):
    kind, overrides = PROFILES[profile]
    names = {f.name for f in dataclasses.fields(kind)}
    assert set(overrides) == set(SCALES)
    for scale in SCALES:
        assert set(overrides[scale]) <= names
    assert overrides["full"] == {}


def test_overrides_win_and_bad_names_are_refused():
    assert get_config("dadnet", "demo", epochs=3).epochs == 3
    with pytest.raises(ValueError, match="unknown scale"):
        get_config("dadnet", "huge")
    with pytest.raises(ValueError, match="unknown profile"):
        get_config("gan", "smoke")


def test_default_scale_reads_the_environment(monkeypatch):
    monkeypatch.delenv("PAPER_REPRO_SCALE", raising=False)
    assert default_scale() == "smoke"
    monkeypatch.setenv("PAPER_REPRO_SCALE", "demo")
    assert default_scale() == "demo"
    monkeypatch.setenv("PAPER_REPRO_SCALE", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        default_scale()
    assert check_scale("full") == "full"


def test_config_table_lists_every_field_at_every_scale():
    rows = config_table("defect_gan")
    assert {r["name"] for r in rows} == {f.name for f in dataclasses.fields(PROFILES["defect_gan"][0])}
    image = next(r for r in rows if r["name"] == "image_size")
    assert image["full"] == 128 and image["smoke"] < image["demo"] <= image["full"]

