"""The bridge: Defect-GAN samples as pseudo-anomalies in DADNet's own format."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from paper_repro.config import get_config
from paper_repro.compose import compose
from paper_repro.dadnet.masks import random_mask, sample_rng
from paper_repro.dadnet.pseudo import PseudoAnomalies, dihedral
from paper_repro.data.roots import DataSource
from paper_repro.defect_gan.control import synthesize
from paper_repro.defect_gan.generator import Generator
from paper_repro.experiments import bridge


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return Generator(5, conv_dim=4, n_res_blocks=1, spade_hidden=8).eval()


@pytest.mark.parametrize("placement", ["mask", "own"])
def test_bank_has_dadnets_format_and_labels(generator, placement):
    normals = torch.rand(3, 3, 32, 32)
    bank = bridge.defect_gan_bank(generator, normals, placement, variants=2, seed=1, gan_size=16, progress=False)
    assert bank["D"].shape == (6, 3, 32, 32) and bank["D"].dtype == torch.uint8
    assert bank["M"].shape == (6, 1, 32, 32) and set(bank["M"].unique().tolist()) <= {0, 1}
    assert bank["index"].tolist() == [0, 1, 2, 0, 1, 2]
    assert bank["prompt"].min() >= 0 and bank["prompt"].max() < 5
    again = bridge.defect_gan_bank(generator, normals, placement, variants=2, seed=1, gan_size=16, progress=False)
    assert all(torch.equal(bank[k], again[k]) for k in bank)  # deterministic given the seed
    if placement == "mask":  # the label is DADNet's random mask M_g of the same (seed, variant, index)
        rng = sample_rng(1, 7, 1, 2)
        rng.integers(5)  # the class draw comes first
        assert torch.equal(bank["M"][5].float(), random_mask(32, rng))
    # DADNet's data set composes them with eq. (6), like SDGM's, under one of the square's 8 symmetries
    data = PseudoAnomalies(normals, seed=0, bank=bank, p_anomaly=1.0)
    item = data[0]
    k = [int(i) for i in torch.nonzero(bank["index"] == 0).flatten()]
    candidates = [compose(normals[0], dihedral(bank["D"][j].float() / 255, t), dihedral(bank["M"][j].float(), t))
                  for j in k for t in range(8)]
    assert any(torch.allclose(item["anomalous"], c) for c in candidates)


def test_own_maps_label_where_the_generator_puts_its_map(generator):
    normals = torch.rand(2, 3, 16, 16)
    bank = bridge.defect_gan_bank(generator, normals, "own", seed=3, gan_size=16, progress=False)
    classes = bank["prompt"]
    out = synthesize(generator, normals * 2 - 1, F.one_hot(classes, 5).float())
    assert torch.equal(bank["M"].bool(), out.mask > 0.5)


def test_bank_anomalies_name_their_source_and_compose_the_bank(generator, tmp_path):
    normals = torch.rand(2, 3, 16, 16)
    bank = bridge.defect_gan_bank(generator, normals, "mask", seed=0, gan_size=16, progress=False)
    data = PseudoAnomalies(normals, seed=0, bank=bank, source="defect-gan:mask:run", p_anomaly=1.0)
    assert data.source == "defect-gan:mask:run" and data[1]["mask"].sum() > 0
    assert PseudoAnomalies(normals).source == "dgm"


def test_sources_and_default_category():
    assert bridge.SOURCES == ("DGM", "SDGM", "Defect-GAN in M_g", "Defect-GAN own maps")
    bundled = DataSource(Path("b"), "bundled", "mvtec", bundled=True)
    real = DataSource(Path("/data/mvtec"), "/data/mvtec", "mvtec", bundled=False)
    # Table 4's category at every scale, so the DGM and SDGM detectors are that table's own runs
    assert bridge.default_category(bundled) == bridge.default_category(real) == "tile"
    assert get_config("baselines", "demo").ablation_categories == ("tile",)
    with pytest.raises(ValueError):
        bridge.source_run("Defect-GAN in M_g", "smoke", "concrete", bundled, generator=None)
