"""Masks M_g and DGM: seed-deterministic, binary, and changing pixels only inside M_g."""
import numpy as np
import pytest
import torch

from paper_repro.dadnet.dgm import dgm_anomaly
from paper_repro.dadnet.masks import perlin_mask, random_mask, sample_rng, shape_mask
from paper_repro.dadnet.pseudo import PseudoAnomalies


def test_masks_deterministic_binary_nonempty():
    for i in range(6):
        m = random_mask(48, sample_rng(42, i))
        assert m.shape == (1, 48, 48) and m.sum() > 0
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(m, random_mask(48, sample_rng(42, i)))
    assert not torch.equal(random_mask(48, sample_rng(42, 0)), random_mask(48, sample_rng(43, 0)))
    assert perlin_mask(32, np.random.default_rng(1)).shape == shape_mask(32, np.random.default_rng(1)).shape


def test_one_mask_family_on_request_is_never_empty():
    # the coarsest Perlin lattice can threshold to nothing; random_mask redraws until pixels are set
    empty = [i for i in range(40) if perlin_mask(64, sample_rng(42, 0, i)).sum() == 0]
    assert empty, "expected some raw Perlin draws to be empty"
    for i in empty:
        assert random_mask(64, sample_rng(42, 0, i), family="perlin").sum() >= 0.005 * 64 * 64
    for family in ("perlin", "shapes"):
        m = random_mask(48, sample_rng(1, 2), family=family)
        assert torch.equal(m, random_mask(48, sample_rng(1, 2), family=family))
    with pytest.raises(ValueError, match="unknown mask family"):
        random_mask(48, sample_rng(1, 2), family="stars")


def test_dgm_changes_only_inside_mask():
    image = torch.rand(3, 32, 32)
    for i in range(6):
        a, m = dgm_anomaly(image, sample_rng(0, i), p_anomaly=1.0)
        assert m.sum() > 0
        assert torch.equal(a * (1 - m), image * (1 - m))
        assert not torch.equal(a, image)
    a, m = dgm_anomaly(image, sample_rng(0, 0), p_anomaly=0.0)
    assert torch.equal(a, image) and m.sum() == 0


def test_dataset_epochs_differ_and_repeat():
    data = PseudoAnomalies(torch.rand(4, 3, 32, 32), seed=1, p_anomaly=1.0)
    first = data[0]["mask"]
    data.set_epoch(1)
    assert not torch.equal(first, data[0]["mask"])
    data.set_epoch(0)
    assert torch.equal(first, data[0]["mask"])


def test_draem_augment_is_seeded_in_range_and_uses_each_operation():
    from paper_repro.dadnet.dgm import AUGMENTERS, draem_augment

    source = torch.rand(3, 32, 32)
    a = draem_augment(source, np.random.default_rng(3))
    assert a.shape == source.shape and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, draem_augment(source, np.random.default_rng(3)))
    assert not torch.equal(a, draem_augment(source, np.random.default_rng(4)))
    for op in AUGMENTERS:  # each of DRAEM's ten operations keeps shape and moves pixels
        changed = [not torch.allclose(op(source, np.random.default_rng(i)), source) for i in range(4)]
        assert op(source, np.random.default_rng(0)).shape == source.shape and any(changed), op.__name__


def test_perlin_mask_blobs_scale_with_the_image():
    # the same draw at 64 and 256 px is the same mask, relative to the image, at every lattice scale
    from paper_repro.dadnet.masks import resize_mask

    for scale in range(6):
        small = torch.from_numpy(perlin_mask(64, np.random.default_rng(scale), min_scale=scale, max_scale=scale + 1))
        large = torch.from_numpy(perlin_mask(256, np.random.default_rng(scale), min_scale=scale, max_scale=scale + 1))
        large = resize_mask(large, 64)
        iou = (small * large).sum() / ((small + large) > 0).sum()
        assert iou > 0.3, (scale, float(iou))  # 0.41 at 2 px cells; a fixed pixel size gives ~0.02
