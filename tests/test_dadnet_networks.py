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


def test_bottleneck_share_counts_what_the_encoder_outputs():
    from paper_repro.dadnet.networks import bottleneck_share

    # the paper's geometry: 1,024 channels at 16 x 16 for a 3 x 256 x 256 image
    assert bottleneck_share(128, 256) == 1024 * 16 * 16 / (3 * 256 * 256)
    for width, size in ((8, 64), (16, 128), (4, 32)):
        net = ReconstructiveNetwork(width, dram=False)
        features = net.encoder(torch.zeros(1, 3, size, size))
        assert bottleneck_share(width, size) == features.numel() / (3 * size * size)


def test_contrast_kept_reads_flat_and_faithful_reconstructions():
    from paper_repro.dadnet.evaluate import contrast_kept

    images = torch.rand(4, 3, 16, 16)
    assert abs(contrast_kept(images, images) - 1) < 1e-6
    assert contrast_kept(images, torch.full_like(images, 0.5)) == 0
    halved = 0.5 * (images - images.mean((2, 3), keepdim=True)) + 0.3
    assert abs(contrast_kept(images, halved) - 0.5) < 1e-5
