"""SDGM's shipped stand-in: loaded offline through from_pretrained, checked, and not the random pipeline."""
import re
import shutil

import pytest
import torch

from paper_repro.dadnet import sdgm
from paper_repro.dadnet.masks import random_mask, sample_rng
from paper_repro.dadnet.sdgm import (DEFAULT_PROMPTS, STANDIN, STANDIN_DIR, STANDIN_SHA256, file_sha256,
                                     load_sdgm, prompts_for, sdgm_generate)
from paper_repro.errors import UserError


@pytest.fixture(scope="module")
def standin():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")   # no network: everything comes from the package folder
        return load_sdgm(STANDIN)


def _generate(comps, prompts, size=32, n=4, seed=0):
    images = torch.full((n, 3, size, size), 0.5)
    masks = torch.stack([random_mask(size, sample_rng(seed, 0, i), family="shapes") for i in range(n)])
    masks[:, :, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1   # a large region to paint
    a, _ = sdgm_generate(comps, images, masks, list(prompts), steps=8, strength=0.75, guidance_scale=7.5,
                         generator=torch.Generator().manual_seed(seed))
    return a, masks


def test_standin_loads_offline_from_the_package_folder(standin):
    assert standin.is_standin and not standin.is_tiny and standin.inpainting
    assert standin.tokenizer.model_max_length == 77
    assert standin.vae.config.scaling_factor != 0.18215          # its own, measured on its corpus
    assert (STANDIN_DIR / "model_index.json").is_file() and (STANDIN_DIR / "MODEL_CARD.md").is_file()


def test_shipped_weights_match_the_stored_checksums_and_the_model_card():
    card = (STANDIN_DIR / "MODEL_CARD.md").read_text()
    in_card = dict(re.findall(r"^\| (\S+\.safetensors) \| \d+ \| `([0-9a-f]{64})` \|$", card, re.M))
    assert in_card == STANDIN_SHA256
    for name, digest in STANDIN_SHA256.items():
        assert file_sha256(STANDIN_DIR / name) == digest


def test_a_changed_weight_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "sdgm_standin"
    shutil.copytree(STANDIN_DIR, copy)
    with open(copy / "unet" / "diffusion_pytorch_model.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    monkeypatch.setattr(sdgm, "STANDIN_DIR", copy)
    with pytest.raises(UserError, match="checksum"):
        load_sdgm(STANDIN)


def test_standin_prompts_come_from_the_checkpoint(standin):
    assert prompts_for("tile", 4, STANDIN) == list(standin.prompts["tile"])
    assert prompts_for("tile", 4, standin) == prompts_for("tile", 4, STANDIN)
    assert prompts_for("tile", 4, STANDIN) != list(DEFAULT_PROMPTS["tile"])   # trained on its own four
    assert prompts_for("tile", 4) == list(DEFAULT_PROMPTS["tile"])           # other checkpoints: the defaults
    assert prompts_for("bottle", 2, STANDIN) == list(DEFAULT_PROMPTS["bottle"][:2])  # not in its corpus


def test_standin_is_not_the_random_tiny_pipeline(standin):
    tiny = load_sdgm("tiny")
    prompts = ["concrete with efflorescence"] * 4
    a_standin, masks = _generate(standin, prompts)
    a_tiny, _ = _generate(tiny, prompts)
    inside = masks.expand_as(a_standin) == 1
    assert (a_standin[inside] - a_tiny[inside]).abs().mean() > 0.05


def test_standin_paints_what_the_prompt_names(standin):
    """Efflorescence is a white deposit, a hole is dark: the prompt, not chance, sets the brightness."""
    white, masks = _generate(standin, ["concrete with efflorescence"] * 4)
    dark, _ = _generate(standin, ["brushed metal with a hole"] * 4)
    inside = masks.expand_as(white) == 1
    assert white[inside].mean() - dark[inside].mean() > 0.1


def test_sdgm_pretrain_writes_a_loadable_checkpoint_with_its_card(tmp_path):
    from paper_repro.standin.pretrain import pretrain

    out = pretrain(tmp_path / "mini", steps=2, seed=3, image_size=32, batch_size=4, corpus_size=24,
                   vae_steps=2, progress=False)
    comps = load_sdgm(str(out))
    assert comps.inpainting and comps.prompts["concrete"][2] == "concrete with efflorescence"
    card = (out / "MODEL_CARD.md").read_text()
    assert "sdgm-pretrain --out mini --steps 2 --seed 3" in card
    for path in out.rglob("*.safetensors"):
        assert file_sha256(path) in card
    with pytest.raises(UserError, match="multiple of 8"):
        pretrain(tmp_path / "bad", steps=1, image_size=36)


def test_a_malformed_prompts_file_is_one_line(tmp_path):
    (tmp_path / "prompts.json").write_text("[1, 2")
    with pytest.raises(UserError, match="prompts.json: expected"):
        prompts_for("tile", 2, tmp_path)


def test_the_full_preflight_does_not_look_for_the_shipped_models():
    from paper_repro.book.preflight import weight_problems

    assert not any("standin" in line for line in weight_problems("standin"))


def test_sdgm_pretrain_refuses_a_bad_seed_and_leaves_nothing_when_it_fails(tmp_path, monkeypatch):
    from paper_repro.errors import UserError
    from paper_repro.standin import pretrain as standin

    with pytest.raises(UserError, match="--seed -1"):
        standin.pretrain(tmp_path / "out", seed=-1)
    assert not (tmp_path / "out").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(standin, "build_corpus", broken)
    with pytest.raises(RuntimeError, match="disk went away"):
        standin.pretrain(tmp_path / "out", steps=1, progress=False)
    assert not (tmp_path / "out").exists()   # the half-written checkpoint went with the failure


def test_the_standin_never_saw_the_photographed_categories():
    import ast
    import inspect

    from paper_repro.data.photographs import PHOTOGRAPHS
    from paper_repro.standin import pretrain

    families = {family for family, _, _ in pretrain.PROMPT_TABLE}
    assert families and not families & set(PHOTOGRAPHS)                    # no photographed family in its corpus
    assert not set(sdgm.checkpoint_prompts(STANDIN_DIR)) & set(PHOTOGRAPHS)   # nor among its prompts
    imported = {node.module for node in ast.walk(ast.parse(inspect.getsource(pretrain)))
                if isinstance(node, ast.ImportFrom)}
    assert "paper_repro.data.photographs" not in imported                  # its corpus cannot read them
    for name in PHOTOGRAPHS:                                               # so SDGM asks with generic prompts
        assert prompts_for(name, 4, STANDIN_DIR) == [f"a {name} surface with a {d}" for d in ("crack", "scratch", "stain", "hole")]
    card = (STANDIN_DIR / "MODEL_CARD.md").read_text()
    assert "## What it has and has not seen" in card and "Not seen: any photograph" in card
