"""The checkerboard measure (paper_repro.evaluation.artifacts) and the generator's upsampling (issue 27)."""
import pytest
import torch

from paper_repro.config import get_config
from paper_repro.data.codebrim import CODEBRIM
from paper_repro.data.roots import resolve_data
from paper_repro.defect_gan.generator import UPSAMPLINGS, Generator
from paper_repro.evaluation.artifacts import artifact_verdict, nyquist_share, nyquist_shares


@pytest.fixture(scope="module")
def real_crops():
    """The bundled smoke CODEBRIM-layout crops (64 px) read at 32 px, in [0, 1], and their labels: resized
    down by 2 as the demo run reads its 128-px crops at 64 px (the Nyquist share depends on resampling)."""
    source = resolve_data(None, "codebrim", "smoke", seed=42)
    data = CODEBRIM(source.root, "train", image_size=32)
    return torch.stack([data[i]["image"] for i in range(len(data))]), data.labels


def lattice(n: int = 4, size: int = 64, amplitude: float = 0.15, seed: int = 0) -> torch.Tensor:
    """Smooth random images with a magenta-green period-2 dot lattice painted over them, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(n, 3, size // 8, size // 8, generator=g), size=size,
                                             mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    dots = ((yy % 2 == 0) & (xx % 2 == 0)).float()  # one lit pixel in every 2x2 cell
    colour = torch.tensor([1.0, -1.0, 1.0])[:, None, None]  # magenta up, green down
    return (0.25 + 0.5 * smooth + amplitude * colour * dots).clamp(0, 1)


def test_a_pure_checkerboard_has_all_its_power_at_nyquist():
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    board = ((yy + xx) % 2).float().expand(2, 3, -1, -1)
    assert nyquist_shares(board) == pytest.approx(torch.ones(2))
    assert nyquist_share(torch.full((1, 3, 32, 32), 0.3)) == 0.0  # flat: no power at all


def test_the_share_ignores_the_value_range_and_needs_even_sides():
    images = lattice(2)
    assert nyquist_share(images) == pytest.approx(nyquist_share(images * 2 - 1), rel=1e-5)
    with pytest.raises(ValueError, match="even sides"):
        nyquist_share(torch.rand(1, 3, 33, 33))


def test_a_period2_lattice_fails_and_real_crops_pass(real_crops):
    images, labels = real_crops
    defects, normals = images[labels[:, 1:].sum(1) > 0], images[labels[:, 1:].sum(1) == 0]
    real_share = nyquist_share(defects)
    assert real_share < 0.005  # surfaces' spectra fall with frequency: ~0.002 here, ~0.0006 at demo
    assert artifact_verdict(normals, defects, "real backgrounds").artifact_free
    painted = lattice(8, size=32)
    verdict = artifact_verdict(painted, defects, "painted lattice")
    assert not verdict.artifact_free and verdict.ratio > 10
    assert "period-2 lattice" in str(verdict)
    # a fainter lattice (amplitude 0.06 on a [0, 1] image) is still caught
    assert not artifact_verdict(lattice(8, size=32, amplitude=0.06), defects).artifact_free


def _constant_input_foreground(upsample: str) -> torch.Tensor:
    torch.manual_seed(0)
    G = Generator(5, conv_dim=8, n_res_blocks=1, spade_hidden=8, upsample=upsample, mask_init=0.02).eval()
    x = torch.full((2, 3, 128, 128), 0.2)
    with torch.no_grad():
        return G(x, torch.eye(5)[:2]).foreground


def test_resize_conv_paints_no_lattice_at_init_and_transposed_does():
    """A constant input: whatever the decoder paints is its own. Away from the borders (zero padding) a
    resize-conv decoder paints a constant; StarGAN's transposed convs paint a period-2 pattern."""
    inner = slice(32, 96)  # a 64-px window clear of every conv's border effects (zero padding)
    resize = _constant_input_foreground("resize-conv")[..., inner, inner]
    transposed = _constant_input_foreground("transposed")[..., inner, inner]
    spatial_std = lambda f: float(f.flatten(2).std(-1).max())  # noqa: E731  per image and channel
    assert spatial_std(resize) < 1e-4
    assert spatial_std(transposed) > 1e-2 and nyquist_share(transposed) > 0.5


def test_the_upsampling_is_one_named_choice_at_every_scale():
    assert UPSAMPLINGS == ("resize-conv", "transposed")
    for profile in ("defect_gan", "defect_gan_tables"):
        assert {get_config(profile, s).upsample for s in ("smoke", "demo", "full")} == {"resize-conv"}
    with pytest.raises(ValueError, match="upsample 'bogus'"):
        Generator(2, conv_dim=4, n_res_blocks=1, spade_hidden=4, upsample="bogus")


def test_the_chapter_summary_names_the_classes_above_the_bar():
    import pandas as pd

    from paper_repro.book.showcase import artifact_summary
    from paper_repro.evaluation.artifacts import ArtifactVerdict

    def row(v, kind):
        return {"class": v.name, "images": kind, "Nyquist share": v.share, "real defects' share": v.reference,
                "ratio": v.ratio, f"within {v.factor:g}x": v.artifact_free}

    rows = [row(ArtifactVerdict("Crack", 0.0138, 0.00058), "generated"),
            row(ArtifactVerdict("Spallation", 0.0007, 0.00058), "generated"),
            row(ArtifactVerdict("(normal crops)", 0.00053, 0.00058), "real")]
    table = pd.DataFrame(rows).set_index("class")
    assert artifact_summary(table).startswith("Not artifact-free by the Nyquist measure: Crack is above 3x")
    assert artifact_summary(table.drop("Crack")).startswith("Artifact-free by the Nyquist measure: every class")


def test_the_recognition_summary_compares_painted_with_real_crops():
    import pandas as pd

    from paper_repro.book.showcase import recognition_summary

    table = pd.DataFrame({"painted, called this class": [0.9, 0.1, 0.0],
                          "real crops, called this class": [0.8, 0.8, 0.0]},
                         index=pd.Index(["Crack", "Efflorescence", "ExposedBars"], name="class"))
    summary = recognition_summary(table)
    assert "at least half the real crops: Crack;" in summary and "not yet: Efflorescence;" in summary
    assert "not judged (the classifier misses the real crops too): ExposedBars" in summary


def test_recognition_check_reads_every_class_with_the_in_domain_judge(tmp_path, monkeypatch):
    """On the smoke data, with an untrained generator: one row per class, shares in [0, 1], and the real
    crops' column is the judge's own reading of the data (the same for any generator)."""
    from paper_repro.book.notebook import chapter_setup
    from paper_repro.book.showcase import recognition_check

    ctx = chapter_setup(scale="smoke")
    classes = ["Crack", "Spallation", "Efflorescence", "ExposedBars", "CorrosionStain"]
    tables = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        G = Generator(5, conv_dim=4, n_res_blocks=1, spade_hidden=4, mask_init=0.02).eval()
        tables.append(recognition_check(ctx, G, classes, 32, n=4, progress=False))
    table = tables[0]
    assert list(table.index) == classes
    shares = table[["painted, called this class", "real crops, called this class", "painted, called normal"]]
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert table["real crops of the class"].gt(0).all()
    assert tables[0]["real crops, called this class"].equals(tables[1]["real crops, called this class"])
