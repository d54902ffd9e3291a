"""DRAM (eq. 13-19) and the two U-Nets."""
import torch

from paper_repro.dadnet.dram import DRAM
from paper_repro.dadnet.networks import DADNet, ReconstructiveNetwork, predicted_mask


def test_dram_shapes_and_ranges():
    torch.manual_seed(0)
    f = torch.randn(2, 32, 5, 7)
    dram = DRAM(32, gamma=0.25)
    h_g, h_l = dram.attention(f)
    assert dram(f).shape == f.shape
    assert h_g.shape == (2, 32, 1, 1)  # H_G: 1 x 1 x C
    assert h_l.shape == (2, 1, 5, 7)   # H_L: H x W x 1
    for h in (h_g, h_l):
        assert bool(((h > 0) & (h < 1)).all())
    assert torch.allclose(dram(f), f * h_g * h_l)  # eq. (19)
    assert dram.global_fc1.out_channels == 8 and dram.local_fc1.out_channels == 8  # gamma C


def test_dram_local_track_sees_the_global_latent():
    """Eq. (17): H_L depends on Z_g, so changing the image mean elsewhere changes H_L at a pixel."""
    torch.manual_seed(0)
    dram = DRAM(8)
    f = torch.randn(1, 8, 4, 4)
    g = f.clone()
    g[..., 3, 3] += 5.0
    assert not torch.allclose(dram.attention(f)[1][..., 0, 0], dram.attention(g)[1][..., 0, 0])


def test_unet_shapes_and_no_dram():
    x = torch.rand(2, 3, 32, 32)
    model = DADNet(recon_width=4, disc_width=4).eval()
    r, logits = model(x)
    assert r.shape == x.shape and logits.shape == (2, 2, 32, 32)
    m = predicted_mask(logits)
    assert m.shape == (2, 1, 32, 32) and bool(((m >= 0) & (m <= 1)).all())
    assert isinstance(ReconstructiveNetwork(4, dram=False).dram, torch.nn.Identity)


def test_independent_gradients():
    """§3.2: the discriminative loss must not reach the reconstructive network."""
    model = DADNet(recon_width=4, disc_width=4)
    _, logits = model(torch.rand(2, 3, 32, 32))
    logits.sum().backward()
    assert all(p.grad is None for p in model.reconstructive.parameters())
    assert any(p.grad is not None for p in model.discriminative.parameters())
