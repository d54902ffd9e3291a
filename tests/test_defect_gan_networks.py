"""Defect-GAN networks: shapes, noise scalars, composition, SPADE locality, ablation switches."""
import pytest
import torch

from paper_repro.defect_gan import SPADE, Discriminator, Generator, NoiseInjection
from paper_repro.defect_gan.trainer import build_networks, make_config


@pytest.mark.parametrize("classes,size", [(1, 16), (5, 32), (7, 48)])
def test_shapes_for_several_classes_and_sizes(classes, size):
    torch.manual_seed(0)
    G = Generator(classes, conv_dim=4, n_res_blocks=1, spade_hidden=8)
    D = Discriminator(classes, image_size=size, conv_dim=4, repeat=3)
    x = torch.rand(2, 3, size, size) * 2 - 1
    out = G(x, torch.ones(2, classes))
    assert out.image.shape == (2, 3, size, size)
    assert out.foreground.shape == (2, 3, size, size)
    assert out.mask.shape == (2, 1, size, size)
    assert 0 <= out.mask.min() and out.mask.max() <= 1
    assert G(x, torch.ones(2, classes, size, size)).image.shape == x.shape  # a spatial map works too
    src, cls = D(x)
    assert src.shape == (2, 1, size // 8, size // 8)
    assert cls.shape == (2, classes)


def test_noise_scalars_start_at_zero_and_receive_gradients():
    torch.manual_seed(0)
    G = Generator(3, conv_dim=4, n_res_blocks=2, spade_hidden=8)
    injections = [m for m in G.modules() if isinstance(m, NoiseInjection)]
    assert len(injections) == 3 + 2 + 2  # stem + 2 downsamples, 2 residual blocks, 2 upsamples
    assert all(m.weight.item() == 0.0 for m in injections)
    G(torch.randn(2, 3, 16, 16), torch.ones(2, 3)).image.square().sum().backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs() > 0 for m in injections)


def test_noise_injection_adds_scaled_noise():
    inject = NoiseInjection()
    x, z = torch.randn(2, 4, 5, 5), torch.randn(2, 1, 5, 5)
    assert torch.equal(inject(x, z), x)  # weight 0: identity
    with torch.no_grad():
        inject.weight.fill_(0.5)
    assert torch.allclose(inject(x, z), x + 0.5 * z)


def test_composition_with_zero_map_returns_input_exactly():
    torch.manual_seed(0)
    G = Generator(2, conv_dim=4, n_res_blocks=1, spade_hidden=8)
    with torch.no_grad():  # make the map head output sigmoid(-inf) = 0 everywhere
        G.to_mask.weight.zero_()
    G.to_mask.register_forward_hook(lambda m, i, o: torch.full_like(o, -float("inf")))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = G(x, torch.ones(2, 2))
    assert torch.equal(out.mask, torch.zeros_like(out.mask))
    assert torch.equal(out.image, x)


def test_mask_init_starts_the_map_near_its_value():
    torch.manual_seed(0)
    G = Generator(3, conv_dim=4, n_res_blocks=1, spade_hidden=8, mask_init=0.02)
    assert torch.allclose(torch.sigmoid(G.to_mask.bias), torch.tensor([0.02]))
    with torch.no_grad():
        G.to_mask.weight.zero_()
    out = G(torch.rand(2, 3, 16, 16) * 2 - 1, torch.ones(2, 3))
    assert torch.allclose(out.mask, torch.full_like(out.mask, 0.02))
    assert Generator(3, conv_dim=4, n_res_blocks=1, spade_hidden=8).to_mask.bias is None


def test_spade_changes_output_only_where_control_changes():
    torch.manual_seed(0)
    spade = SPADE(channels=6, control_channels=3, hidden=8)
    x = torch.randn(1, 6, 16, 16)
    a = torch.zeros(1, 3, 16, 16)
    b = a.clone()
    b[:, 1, 6:9, 6:9] = 1  # change A in a 3x3 patch
    diff = (spade(x, a) - spade(x, b)).abs().amax(dim=1)[0]
    # Two 3x3 convs: the change can spread at most 2 pixels from the patch, never further.
    near = torch.zeros(16, 16, dtype=torch.bool)
    near[4:11, 4:11] = True
    assert diff[~near].max() == 0
    assert diff[6:9, 6:9].min() > 0


def test_spade_modulates_a_parameter_free_norm():
    torch.manual_seed(0)
    spade = SPADE(4, 2, hidden=8)
    assert not any(p.requires_grad for p in spade.norm.parameters())
    for p in list(spade.gamma.parameters()) + list(spade.beta.parameters()):
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 4, 8, 8)
    expected = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(spade(x, torch.rand(2, 2, 4, 4)), expected, atol=1e-5)  # x*(1+0)+0


def _names(module):
    return {name for name, _ in module.named_parameters()}


def test_ablation_flags_change_the_parameter_set():
    cfg = make_config("smoke")
    full, _ = build_networks(cfg, 5)
    stargan, _ = build_networks(make_config("smoke", scc=False, ani=False, lwc=False, sc=False), 5)
    spade_only, _ = build_networks(make_config("smoke", ani=False, lwc=False, sc=False), 5)
    no_ani, _ = build_networks(make_config("smoke", ani=False), 5)
    no_lwc, _ = build_networks(make_config("smoke", lwc=False, sc=False), 5)
    no_sc, _ = build_networks(make_config("smoke", sc=False), 5)
    # StarGAN: class map concatenated at the input, instance norm everywhere, one direct image head.
    assert stargan.encoder[0].conv.in_channels == 3 + 5
    assert not any("spade" in n or "noise" in n or "to_mask" in n for n in _names(stargan))
    # StarGAN + SPADE (SCC only): image-only input, SPADE in every decoder block, nothing else.
    assert spade_only.encoder[0].conv.in_channels == 3
    assert all(block.norm2.spade is not None for block in spade_only.decoder[:-2])
    assert all(block.norm.spade is not None for block in spade_only.decoder[-2:])
    assert not any("noise" in n or "to_mask" in n for n in _names(spade_only))
    # Each switch removes exactly its own parameters.
    assert _names(full) - _names(no_ani) == {n for n in _names(full) if n.endswith("noise.weight")}
    assert _names(full) - _names(no_lwc) == {n for n in _names(full) if n.startswith("to_mask.")}
    assert _names(no_sc) == _names(full)  # SC is a loss switch: same networks, fewer loss terms
    with pytest.raises(Exception, match="SC"):
        build_networks(make_config("smoke", lwc=False), 5)


def test_cli_ablation_names_map_to_table2_rows():
    from paper_repro.commands.defect_gan import parse_ablation
    from paper_repro.errors import UserError

    assert parse_ablation("stargan") == {"scc": False, "ani": False, "lwc": False, "sc": False}
    assert parse_ablation("stargan+spade") == {"ani": False, "lwc": False, "sc": False}
    assert parse_ablation("lwc") == {"lwc": False, "sc": False}  # SC acts on LWC's maps
    assert parse_ablation("ani, sc") == {"ani": False, "sc": False}
    assert parse_ablation(None) == {}
    with pytest.raises(UserError, match="--ablation"):
        parse_ablation("dropout")
