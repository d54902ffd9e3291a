"""SDGM on the tiny offline pipeline: save, reload with local_files_only, eq. (1) and eq. (6)."""
import pytest
import torch

from paper_repro.dadnet.masks import random_mask, sample_rng
from paper_repro.dadnet.sdgm import (ExplicitAttention, build_tiny_sdgm, load_sdgm, noise_levels,
                                     prompts_for, sdgm_generate, start_timesteps)
from paper_repro.errors import UserError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = build_tiny_sdgm(tmp_path_factory.mktemp("sd") / "tiny")
    return folder, load_sdgm(str(folder), local_files_only=True)


def test_tiny_pipeline_saves_and_reloads_offline(tiny):
    folder, comps = tiny
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (folder / sub).is_dir()
    assert (folder / "model_index.json").is_file()
    assert comps.inpainting and comps.tokenizer.model_max_length == 77
    assert isinstance(next(iter(comps.unet.attn_processors.values())), ExplicitAttention)


def test_tokenizer_is_clip_compatible(tiny):
    import open_clip

    ids = tiny[1].tokenizer("a cracked ceramic tile").input_ids
    assert ids == open_clip.tokenize(["a cracked ceramic tile"])[0][: len(ids)].tolist()
    assert len(tiny[1].tokenizer) == 49408


def test_sdgm_changes_pixels_only_inside_mask(tiny):
    comps = tiny[1]
    images = torch.rand(2, 3, 32, 32)
    masks = torch.stack([random_mask(32, sample_rng(0, i)) for i in range(2)])
    a, d = sdgm_generate(comps, images, masks, prompts_for("tile", 2), steps=3, strength=0.8,
                         generator=torch.Generator().manual_seed(0))
    assert a.shape == images.shape and d.shape == images.shape
    outside = masks.expand_as(images) == 0
    assert torch.equal(a[outside], images[outside])            # eq. (6): I kept outside M_g
    assert not torch.equal(a[~outside], images[~outside])      # and D painted inside
    a2, _ = sdgm_generate(comps, images, masks, prompts_for("tile", 2), steps=3, strength=0.8,
                          generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, a2)


def test_explicit_attention_matches_diffusers_default(tiny):
    from diffusers.models.attention_processor import AttnProcessor

    unet = tiny[1].unet
    x = torch.randn(1, 9, 4, 4)
    ctx = torch.randn(1, 77, 32)
    ours = unet(x, 10, encoder_hidden_states=ctx).sample
    unet.set_attn_processor(AttnProcessor())
    try:
        ref = unet(x, 10, encoder_hidden_states=ctx).sample
    finally:
        unet.set_attn_processor(ExplicitAttention())
    assert torch.allclose(ours, ref, atol=1e-5)


def test_eq1_noise_levels(tiny):
    sched = tiny[1].scheduler
    ts = start_timesteps(sched, 10, 0.5)
    assert len(ts) == 5
    for t, signal, noise in noise_levels(sched, ts):
        assert signal ** 2 + noise ** 2 == pytest.approx(1.0, abs=1e-5)
    z0, eps = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    t = int(ts[0])
    a = sched.alphas_cumprod[t]
    assert torch.allclose(sched.add_noise(z0, eps, ts[:1]), a.sqrt() * z0 + (1 - a).sqrt() * eps, atol=1e-6)


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no-such/stable-diffusion"):
        load_sdgm("no-such/stable-diffusion", local_files_only=True)
    with pytest.raises(UserError, match="empty"):
        load_sdgm(str(tmp_path / "empty"), local_files_only=True)
