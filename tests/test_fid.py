"""FID (paper_repro.evaluation.fid): zero on identical sets, growing with a shift, named extractor, split halves."""
import numpy as np
import pytest
import torch
from scipy import linalg

from paper_repro.data import bundled_root
from paper_repro.evaluation import fid
from paper_repro.weights import WeightsMissing


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 16, 16, generator=g)
    return (base + 0.25 * torch.randn(120, 3, 16, 16, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def extractor():
    return fid.RandomConvFeatures(seed=0, widths=(8, 16))


def test_fid_of_a_set_against_itself_is_zero(images, extractor):
    score = fid.fid(images, images, extractor)
    assert abs(score.value) < 1e-3
    assert score.n_real == score.n_fake == len(images)


def test_fid_grows_with_a_shift(images, extractor):
    values = [fid.fid(images, (images + s).clamp(0, 1), extractor).value for s in (0.0, 0.1, 0.2, 0.4)]
    assert values[0] < 1e-3
    assert all(b > a for a, b in zip(values, values[1:])), values


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units: singular covariances
def test_fid_equals_the_frechet_formula_on_the_same_features(images, extractor):
    real, fake = images[:60], (images[60:] * 0.8 + 0.1)
    with torch.no_grad():
        a, b = extractor(real).double().numpy(), extractor(fake).double().numpy()
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert fid.fid(real, fake, extractor).value == pytest.approx(expected, rel=1e-3, abs=1e-4)


def test_every_score_names_its_extractor(images, extractor):
    score = fid.fid(images[:30], images[30:60], extractor)
    assert extractor.name in str(score) and "random-conv" in score.extractor
    assert float(score) == score.value


def test_batches_can_be_streamed(images, extractor):
    whole = fid.fid(images[:60], images[60:], extractor).value
    streamed = fid.fid(iter(images[:60].split(7)), iter(images[60:].split(11)), extractor).value
    assert streamed == pytest.approx(whole, rel=1e-5, abs=1e-6)


def test_each_real_defect_has_one_fid_role_by_its_file_name():
    """Half of the defect images train the extractor, a quarter each are the reference and the ideal
    sample; the role depends on the file name only (not its folder, order or the seed)."""
    names = [f"image_{i:07d}.png" for i in range(4000)]
    roles = [fid.fid_role(n) for n in names]
    shares = {role: roles.count(role) / len(roles) for role in set(fid.FID_ROLES)}
    # binomial sd of a share over 4,000 names is at most 0.008: 4 sd either side
    assert shares["extractor"] == pytest.approx(0.5, abs=0.032)
    assert shares["reference"] == pytest.approx(0.25, abs=0.028) and shares["ideal"] == pytest.approx(0.25, abs=0.028)
    assert fid.fid_role("a/b/image_0000007.png") == fid.fid_role("image_0000007.png") == roles[7]


def test_the_extractor_never_trains_on_the_fid_sets():
    from paper_repro.data.codebrim import CODEBRIM

    data = CODEBRIM(bundled_root("codebrim", "smoke"), "train", image_size=16)
    kept = fid.extractor_training_set(data)
    kept_paths = {data.samples[i][0] for i in kept.indices}
    for path, labels in data.samples:
        defect = any(labels[1:])
        assert (path in kept_paths) == (not defect or fid.fid_role(path) == "extractor"), path
    assert any(not any(labels[1:]) for _, labels in data.samples)  # normals are kept: there are some


def test_ideal_synthesizer_row_is_the_fid_of_real_defects_against_the_reference(images, extractor, monkeypatch):
    seen = []
    real_fid = fid.fid

    def spy(real, fake, ext, **kw):
        seen.append((real, fake))
        return real_fid(real, fake, ext, **kw)

    monkeypatch.setattr(fid, "fid", spy)
    score = fid.ideal_synthesizer_fid(images[:50], images[50:100], extractor)
    (real, fake), = seen
    assert torch.equal(real, images[50:100]) and torch.equal(fake, images[:50])  # reference first, as a generated set
    assert score.value > 0
    with pytest.raises(ValueError, match="as large as each other"):
        fid.ideal_synthesizer_fid(images[:40], images[50:100], extractor)


def test_inception_without_weights_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv("PAPER_REPRO_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(WeightsMissing, match="weights-inception-2015-12-05.*curl"):
        fid.InceptionV3Features()
    with pytest.raises(WeightsMissing, match="missing.pth.*no such"):
        fid.InceptionV3Features(tmp_path / "missing.pth")


def test_auto_falls_back_to_the_in_domain_extractor_and_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv("PAPER_REPRO_INCEPTION_WEIGHTS", raising=False)
    sentinel = fid.RandomConvFeatures(seed=5)
    monkeypatch.setattr(fid, "in_domain_extractor", lambda *a, **k: sentinel)
    assert fid.resolve_extractor("auto", codebrim=object()) is sentinel
    assert "in-domain extractor" in capsys.readouterr().out


def test_in_domain_extractor_trains_once_and_is_cached(tmp_path):
    root = bundled_root("codebrim", "smoke")
    cfg = fid.ExtractorConfig(image_size=32, epochs=1, widths=(8, 16))
    a = fid.train_in_domain_features(root, cfg, seed=0, run_dir=tmp_path / "x", progress=False)
    b = fid.train_in_domain_features(root, cfg, seed=0, run_dir=tmp_path / "x", progress=False)
    assert (tmp_path / "x" / "extractor.safetensors").is_file()
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(a(x), b(x)) and a(x).shape == (4, 16)
    assert "in-domain" in b.name and "32px" in b.name
