"""Weights (paper_repro.weights, issue 17 item 2 and the fail-fast part of issue 16).

A pickle is planted at every place the project reads weights: the file's unpickling would create a
marker file (``pathlib.Path.touch``), in torch.save's zip format, its legacy format, and as a bare
pickle. Each read must end in one line naming the file, and the marker must never exist. Then
random-init stand-ins saved in the real formats and layouts (torch hub's cache, the Hugging Face
cache, a diffusers folder) must load through the same paths.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from huggingface_hub import constants as hf_constants
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

from bad_inputs_support import PICKLE_FORMATS, plant_pickle

from paper_repro import weights
from paper_repro.baselines import anomalib_models
from paper_repro.config import get_config
from paper_repro.environment import BACKBONE_WEIGHTS_ENV, INCEPTION_WEIGHTS_ENV
from paper_repro.dadnet.sdgm import build_tiny_sdgm, load_sdgm
from paper_repro.dadnet.trainer import load_model
from paper_repro.defect_gan.classifier import DefectClassifier, build_backbone
from paper_repro.defect_gan.trainer import load_generator
from paper_repro.errors import UserError
from paper_repro.evaluation import fid
from paper_repro.runs.checkpoints import checkpoint_path
from paper_repro.runs.folders import write_run_config
from paper_repro.weights import WeightsMissing, WeightsRefused, read_state_dict

HAS_ANOMALIB = importlib.util.find_spec("anomalib") is not None
needs_anomalib = pytest.mark.skipif(not HAS_ANOMALIB, reason="anomalib is not installed (pip install '.[baselines]')")

TORCHVISION_FILES = {"resnet34": "resnet34-b627a593.pth", "densenet121": "densenet121-a639ec97.pth"}
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"  # a commit hash, as the Hugging Face cache names snapshots


# ------------------------------------------------------------------------------------------
# Planted pickles and what a refusal must look like
# ------------------------------------------------------------------------------------------
FORMATS = PICKLE_FORMATS


def assert_refused(call, marker: Path, *names: str | Path, kind: type = UserError) -> str:
    """``call()`` raises one one-line ``kind`` naming ``names``, and the planted code never ran."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is checked after the marker
        call()
    assert not marker.exists(), "the planted pickle ran code: the marker file exists"
    assert isinstance(info.value, kind), f"{type(info.value).__name__}: {str(info.value)[:300]}"
    message = str(info.value)
    assert "\n" not in message.strip(), f"not one line: {message[:400]!r}"
    for name in names:
        assert str(name) in message, f"{name} not named in: {message}"
    return message


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "MARKER"


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """torch hub's ``checkpoints`` folder in a fresh directory; no weights folder from the environment."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    monkeypatch.delenv(BACKBONE_WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    yield tmp_path / "torch_hub" / "checkpoints"
    torch.hub.set_dir(previous)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache (``$HF_HUB_CACHE``) in a fresh directory."""
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    return cache


def hf_snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in a Hugging Face cache, with ``refs/main`` pointing at it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    snapshot = repo / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def random_state(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """``module``'s state dict with every float tensor scaled by its own random factors, 1 +- 10 %
    (a stand-in for trained weights: unlike a fresh module's, and its activations stay finite)."""
    g = torch.Generator().manual_seed(seed)
    return {k: v * (1 + 0.1 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v.clone()
            for k, v in module.state_dict().items()}


# ------------------------------------------------------------------------------------------
# The reader
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_planted_pickle_does_run_code_when_fully_unpickled(tmp_path, marker, fmt):
    """The trap is real: what torchvision's and torch-fidelity's loaders do (weights_only=False) runs it."""
    with contextlib.suppress(RuntimeError):  # a bare pickle is not torch.save's format: it fails *after* running
        torch.load(plant_pickle(tmp_path / "w.pth", marker, fmt), weights_only=False)
    assert marker.exists()


def test_read_state_dict_reads_safetensors_and_both_torch_save_formats(tmp_path):
    state = {"a": torch.randn(3, 2), "b": torch.arange(4)}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    for name in ("w.safetensors", "zip.pth", "legacy.pth"):
        read = read_state_dict(tmp_path / name)
        assert type(read) is dict and read.keys() == state.keys()
        assert all(torch.equal(read[k], state[k]) for k in state)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".safetensors", ""])
@pytest.mark.parametrize("fmt", FORMATS)
def test_read_state_dict_refuses_a_pickle_without_running_it(tmp_path, marker, suffix, fmt):
    planted = plant_pickle(tmp_path / f"weights{suffix}", marker, fmt)
    message = assert_refused(lambda: read_state_dict(planted), marker, planted, kind=WeightsRefused)
    assert "refused" in message


@pytest.mark.parametrize("content", ["garbage", "truncated", "a list", "nested", "not tensors"])
def test_read_state_dict_refuses_what_is_not_a_flat_state_dict(tmp_path, marker, content):
    path = tmp_path / "weights.pth"
    if content == "garbage":
        path.write_bytes(b"not a weights file" * 10)
    elif content == "truncated":
        torch.save({"a": torch.randn(100)}, path)
        path.write_bytes(path.read_bytes()[:200])
    else:
        torch.save({"a list": [torch.randn(2)], "nested": {"state_dict": {"a": torch.randn(2)}},
                    "not tensors": {"a": 1.5}}[content], path)
    assert_refused(lambda: read_state_dict(path), marker, path, kind=WeightsRefused)


def test_read_state_dict_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(WeightsMissing, match="nothing.pth: no such weights file"):
        read_state_dict(tmp_path / "nothing.pth")


def test_load_state_refuses_weights_of_another_network_in_one_line():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    for state in ({"0.weight": torch.zeros(5, 4), "0.bias": torch.zeros(3)},      # another shape
                  {"0.weight": torch.zeros(3, 4)},                                # a tensor missing
                  {**net.state_dict(), "head.weight": torch.zeros(1)}):          # an unexpected one
        with pytest.raises(WeightsRefused, match="other.pth: does not fit Sequential") as info:
            weights.load_state(net, state, "other.pth")
        assert "\n" not in str(info.value)
    weights.load_state(net, {**net.state_dict(), "head.weight": torch.zeros(1)}, "x", ignore_unexpected=True)


# ------------------------------------------------------------------------------------------
# torchvision backbones (Defect-GAN Table 3)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", list(TORCHVISION_FILES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_planted_pickle_in_torch_hub_cache_is_refused(hub, marker, backbone, fmt):
    planted = plant_pickle(hub / TORCHVISION_FILES[backbone], marker, fmt)
    assert_refused(lambda: build_backbone(backbone, weights="DEFAULT"), marker, planted, kind=WeightsRefused)


def test_planted_pickle_is_refused_through_the_classifier(hub, marker):
    planted = plant_pickle(hub / TORCHVISION_FILES["resnet34"], marker)
    assert_refused(lambda: DefectClassifier("resnet34", weights="DEFAULT"), marker, planted)


def test_planted_pickle_in_the_backbone_folder_or_given_as_a_file_is_refused(hub, tmp_path, marker, monkeypatch):
    planted = plant_pickle(tmp_path / "folder" / TORCHVISION_FILES["densenet121"], marker)
    monkeypatch.setenv(BACKBONE_WEIGHTS_ENV, str(planted.parent))
    assert_refused(lambda: build_backbone("densenet121", "DEFAULT"), marker, planted)
    assert_refused(lambda: build_backbone("densenet121", str(planted)), marker, planted)


@pytest.fixture(scope="module")
def resnet34_state() -> dict[str, torch.Tensor]:
    return random_state(torchvision.models.resnet34(weights=None))


def test_resnet34_stand_in_in_torch_hub_cache_loads(hub, resnet34_state):
    hub.mkdir(parents=True)
    torch.save(resnet34_state, hub / "resnet34-b627a593.pth")
    net, width = build_backbone("resnet34", "DEFAULT")
    assert width == 512
    assert torch.equal(net.conv1.weight, resnet34_state["conv1.weight"])
    assert torch.equal(net.layer4[2].bn2.running_var, resnet34_state["layer4.2.bn2.running_var"])
    model = DefectClassifier("resnet34", weights="IMAGENET1K_V1")
    assert torch.equal(model.features.conv1.weight, resnet34_state["conv1.weight"])


def test_densenet121_stand_in_with_torchvisions_old_key_names_loads(hub):
    state = random_state(torchvision.models.densenet121(weights=None), seed=1)
    old = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in state.items()
           if not k.endswith("num_batches_tracked")}  # the 2017 file: old names, no batch counters
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    hub.mkdir(parents=True)
    torch.save(old, hub / "densenet121-a639ec97.pth")
    net, width = build_backbone("densenet121", "DEFAULT")
    assert width == 1024
    key = "features.denseblock4.denselayer16.conv2.weight"
    assert torch.equal(net.state_dict()[key], state[key])
    assert torch.equal(net.features.denseblock1.denselayer1.norm1.weight,
                       state["features.denseblock1.denselayer1.norm1.weight"])


def test_backbone_folder_comes_before_torch_hub_cache_and_a_file_path_works(hub, tmp_path, monkeypatch, resnet34_state):
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(resnet34_state, folder / "resnet34-b627a593.pth")
    hub.mkdir(parents=True)
    (hub / "resnet34-b627a593.pth").write_bytes(b"never read")
    monkeypatch.setenv(BACKBONE_WEIGHTS_ENV, str(folder))
    assert weights.locate_torchvision("resnet34") == folder / "resnet34-b627a593.pth"
    assert torch.equal(build_backbone("resnet34", "DEFAULT")[0].conv1.weight, resnet34_state["conv1.weight"])
    save_file(resnet34_state, str(tmp_path / "r34.safetensors"))
    net, _ = build_backbone("resnet34", str(tmp_path / "r34.safetensors"))
    assert torch.equal(net.conv1.weight, resnet34_state["conv1.weight"])


def test_missing_torchvision_weights_name_the_file_and_the_download(hub):
    for name, filename in TORCHVISION_FILES.items():
        with pytest.raises(WeightsMissing) as info:
            weights.locate_torchvision(name)
        message = str(info.value)
        assert f"curl -L -o {hub / filename} https://download.pytorch.org/models/{filename}" in message
        assert "\n" not in message and "torchvision.models" not in message
    with pytest.raises(UserError, match="unknown weights 'IMAGENET9'"):
        weights.torchvision_url("resnet34", "IMAGENET9")


def test_torchvision_file_names_are_torchvisions_own():
    for name, filename in TORCHVISION_FILES.items():
        assert torchvision.models.get_model_weights(name).DEFAULT.url.endswith("/" + filename)


# ------------------------------------------------------------------------------------------
# Inception-v3 for FID (Defect-GAN Tables 1-2)
# ------------------------------------------------------------------------------------------
class _InceptionSkeleton(FeatureExtractorInceptionV3):
    """torch-fidelity's network with its random initial weights: its constructor's load is skipped."""

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return None


@pytest.fixture(scope="session")
def inception_state() -> dict[str, torch.Tensor]:
    """The real module's state dict (names, shapes, dtypes) with random values."""
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return random_state(_InceptionSkeleton("skeleton", ["2048"], feature_extractor_weights_path=empty))


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory, inception_state) -> Path:
    """The ~95 MB stand-in, written once per session."""
    path = tmp_path_factory.mktemp("inception") / weights.INCEPTION_WEIGHTS_FILE
    torch.save(inception_state, path)
    return path


def test_inception_stand_in_has_the_real_modules_tensors(inception_state):
    assert weights.INCEPTION_URL == URL_INCEPTION_V3
    params = [k for k in inception_state if not k.endswith("num_batches_tracked")]
    assert len(params) == 472 and len(inception_state) == 472 + 94  # 94 BasicConv2d blocks + fc
    assert inception_state["fc.weight"].shape == (1008, 2048)


@pytest.mark.parametrize("how", ["argument", "environment", "hub-cache"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_planted_pickle_as_inception_weights_is_refused(hub, tmp_path, marker, monkeypatch, how, fmt):
    if how == "hub-cache":
        planted = plant_pickle(hub / weights.INCEPTION_WEIGHTS_FILE, marker, fmt)
        call = fid.InceptionV3Features
    else:
        planted = plant_pickle(tmp_path / "inception.pth", marker, fmt)
        if how == "environment":
            monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(planted))
            call = fid.InceptionV3Features
        else:
            def call():
                return fid.InceptionV3Features(weights_path=planted)
    assert_refused(call, marker, planted, kind=WeightsRefused)


def test_auto_extractor_does_not_fall_back_past_a_refused_file(hub, marker):
    planted = plant_pickle(hub / weights.INCEPTION_WEIGHTS_FILE, marker)
    assert_refused(lambda: fid.resolve_extractor("auto", codebrim=object()), marker, planted, kind=WeightsRefused)


@pytest.mark.parametrize("how", ["argument", "environment", "hub-cache"])
def test_inception_stand_in_loads_from_each_place(hub, monkeypatch, inception_file, inception_state, how):
    if how == "hub-cache":
        hub.mkdir(parents=True)
        (hub / weights.INCEPTION_WEIGHTS_FILE).symlink_to(inception_file)
        features = fid.InceptionV3Features()
    elif how == "environment":
        monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(inception_file))
        features = fid.InceptionV3Features()
    else:
        features = fid.InceptionV3Features(inception_file)
    loaded = features.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in inception_state.items())
    assert not features.net.training


def test_inception_stand_in_computes_pool3_features(inception_file):
    features = fid.InceptionV3Features(inception_file)
    with torch.no_grad():
        out = features(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 2048) and torch.isfinite(out).all()


def test_inception_without_batch_counters_or_of_another_network(tmp_path, inception_state, marker):
    without = {k: v for k, v in inception_state.items() if not k.endswith("num_batches_tracked")}
    save_file(without, str(tmp_path / "inception.safetensors"))  # BatchNorm fills the missing counters
    assert torch.equal(fid.InceptionV3Features(tmp_path / "inception.safetensors").net.fc.bias,
                       inception_state["fc.bias"])
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, other)
    assert_refused(lambda: fid.InceptionV3Features(other), marker, other, kind=WeightsRefused)


# ------------------------------------------------------------------------------------------
# timm backbones of the anomalib baselines (DADNet Tables 1-3)
# ------------------------------------------------------------------------------------------
def test_timm_repositories_are_derived_from_timms_pretrained_cfg():
    assert weights.timm_repo_id("resnet18") == "timm/resnet18.a1_in1k"
    assert weights.timm_repo_id("wide_resnet50_2") == "timm/wide_resnet50_2.racm_in1k"
    with pytest.raises(UserError, match="no-such-net"):
        weights.timm_repo_id("no-such-net")


@needs_anomalib
@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".safetensors"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_planted_pickle_as_a_baseline_backbone_file_is_refused(tmp_path, marker, suffix, fmt):
    planted = plant_pickle(tmp_path / f"backbone{suffix}", marker, fmt)
    cfg = anomalib_models.BaselineConfig("PaDiM", image_size=32, pretrained=str(planted))
    assert_refused(lambda: anomalib_models.build(cfg), marker, planted, kind=WeightsRefused)


@needs_anomalib
@pytest.mark.parametrize("method", ["PaDiM", "STFPM"])
def test_pickled_bin_in_the_hugging_face_cache_is_never_read(hf_cache, marker, method):
    planted = plant_pickle(hf_snapshot(hf_cache, "timm/resnet18.a1_in1k") / "pytorch_model.bin", marker)
    cfg = anomalib_models.BaselineConfig(method, image_size=32, pretrained=True)
    message = assert_refused(lambda: anomalib_models.build(cfg), marker, "timm/resnet18.a1_in1k",
                             "hf download timm/resnet18.a1_in1k model.safetensors config.json", kind=WeightsMissing)
    assert "pickled pytorch_model.bin is never read" in message
    assert planted.is_file()


@needs_anomalib
def test_planted_pickle_named_model_safetensors_in_the_cache_is_refused(hf_cache, marker):
    plant_pickle(hf_snapshot(hf_cache, "timm/resnet18.a1_in1k") / "model.safetensors", marker)
    cfg = anomalib_models.BaselineConfig("PaDiM", image_size=32, pretrained=True)
    assert_refused(lambda: anomalib_models.build(cfg), marker, "model.safetensors", kind=WeightsRefused)


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    return random_state(timm.create_model("resnet18", pretrained=False), seed=2)


@needs_anomalib
@pytest.mark.parametrize("method", ["FastFlow", "PaDiM", "RD", "STFPM"])
def test_timm_stand_in_in_the_hugging_face_cache_loads_into_each_baseline(hf_cache, resnet18_state, method):
    snapshot = hf_snapshot(hf_cache, "timm/resnet18.a1_in1k")
    save_file(resnet18_state, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text('{"architecture": "resnet18"}')
    cfg = anomalib_models.BaselineConfig(method, image_size=32, pretrained=True)
    assert weights.locate_timm("resnet18") == snapshot / "model.safetensors"
    model = anomalib_models.build(cfg)
    backbone = {"FastFlow": lambda m: m.feature_extractor, "PaDiM": lambda m: m.feature_extractor.feature_extractor,
                "RD": lambda m: m.encoder.feature_extractor, "STFPM": lambda m: m.teacher_model.feature_extractor}
    loaded = backbone[method](model).state_dict()
    assert loaded.keys() <= resnet18_state.keys()
    assert all(torch.equal(v, resnet18_state[k]) for k, v in loaded.items())
    assert cfg.describe_backbone() == "resnet18 (ImageNet, timm/resnet18.a1_in1k)"
    if method == "STFPM":  # the student stays random and trainable, the teacher frozen
        student = model.student_model.feature_extractor.state_dict()
        assert not torch.equal(student["conv1.weight"], resnet18_state["conv1.weight"])
        assert all(p.requires_grad for p in model.student_model.parameters())
        assert not any(p.requires_grad for p in model.teacher_model.parameters())


@needs_anomalib
def test_stfpm_is_assembled_from_the_parts_anomalibs_constructor_makes(monkeypatch):
    """Guards the STFPM assembly against a change of anomalib's constructor: the same modules,
    attributes, tensors, trainable flags and modes as ``STFPMModel(...)`` with a random teacher."""
    import anomalib.models.image.stfpm.torch_model as stfpm

    original = stfpm.TimmFeatureExtractor
    monkeypatch.setattr(stfpm, "TimmFeatureExtractor", lambda *a, **k: original(*a, **{**k, "pre_trained": False}))
    reference = stfpm.STFPMModel(layers=list(anomalib_models.LAYERS), backbone="resnet18")
    ours = anomalib_models.build(anomalib_models.BaselineConfig("STFPM", image_size=32, pretrained=False))
    assert type(ours) is type(reference)
    assert set(vars(ours)) == set(vars(reference))
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in reference.named_modules()]
    assert ours.state_dict().keys() == reference.state_dict().keys()
    assert [(n, p.requires_grad) for n, p in ours.named_parameters()] == \
        [(n, p.requires_grad) for n, p in reference.named_parameters()]
    assert [m.training for m in ours.modules()] == [m.training for m in reference.modules()]
    assert (ours.tiler, ours.backbone) == (reference.tiler, reference.backbone)


@needs_anomalib
def test_missing_baseline_weights_say_what_to_fetch(hf_cache, tmp_path):
    cfg = anomalib_models.BaselineConfig("RD", backbone="wide_resnet50_2", image_size=32, pretrained=True)
    with pytest.raises(WeightsMissing, match="hf download timm/wide_resnet50_2.racm_in1k model.safetensors"):
        anomalib_models.build(cfg)
    with pytest.raises(WeightsMissing, match="missing.pth: backbone weights not found"):
        anomalib_models.build(anomalib_models.BaselineConfig("PaDiM", image_size=32,
                                                             pretrained=str(tmp_path / "missing.pth")))


# ------------------------------------------------------------------------------------------
# Stable Diffusion (DADNet's SDGM)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    return build_tiny_sdgm(tmp_path_factory.mktemp("sd") / "tiny")


def copy_sd(tiny_sd: Path, folder: Path) -> Path:
    shutil.copytree(tiny_sd, folder)
    return folder


@pytest.mark.parametrize("component", ["unet", "vae", "text_encoder", "all"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_stable_diffusion_folder_with_only_pickled_weights_is_refused(tiny_sd, tmp_path, marker, component, fmt):
    folder = copy_sd(tiny_sd, tmp_path / "sd")
    for name, stem in weights.SD_WEIGHTS.items():
        if component in (name, "all"):
            for safe in (folder / name).glob("*.safetensors"):
                safe.unlink()
            bin_stem = "pytorch_model" if name == "text_encoder" else stem
            plant_pickle(folder / name / f"{bin_stem}.bin", marker, fmt)
    first = component if component != "all" else "unet"
    message = assert_refused(lambda: load_sdgm(str(folder)), marker, folder / first, ".bin", kind=WeightsRefused)
    assert "refused" in message


def _shard(folder: Path, component: str, stem: str, shard_names: list[str]) -> Path:
    """Replace ``component``'s single weights file by an index naming ``shard_names`` (the first holds every
    tensor, as safetensors; the others are written by the caller)."""
    single = folder / component / f"{stem}.safetensors"
    tensors = load_file(str(single))
    single.unlink()
    save_file(tensors, str(folder / component / shard_names[0]))
    index = folder / component / f"{stem}.safetensors.index.json"
    names = sorted(tensors)
    weight_map = {k: shard_names[min(i, len(shard_names) - 1)] for i, k in enumerate(names)}
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shard", ["model-00002-of-00002.bin", "model-00002-of-00002.safetensors", "../outside.safetensors"])
def test_a_sharded_text_encoder_with_a_pickled_shard_is_refused_before_any_library_opens_it(
        tiny_sd, tmp_path, marker, monkeypatch, fmt, shard):
    folder = copy_sd(tiny_sd, tmp_path / "sd")
    index = _shard(folder, "text_encoder", "model", ["model-00001-of-00002.safetensors", shard])
    plant_pickle(folder / "text_encoder" / shard, marker, fmt)   # a pickle, whatever its name says
    opened = []
    monkeypatch.setattr(CLIPTextModel, "from_pretrained", classmethod(lambda cls, *a, **k: opened.append(a)))
    monkeypatch.setattr(torch, "load", lambda *a, **k: opened.append(a))
    message = assert_refused(lambda: load_sdgm(str(folder)), marker, kind=UserError)
    assert str(index if not shard.endswith(".safetensors") or "/" in shard else folder / "text_encoder" / shard) in message
    assert "refused" in message and not opened   # no library saw the folder, nothing was unpickled


def test_a_sharded_text_encoder_of_safetensors_shards_loads(tiny_sd, tmp_path):
    folder = copy_sd(tiny_sd, tmp_path / "sd")
    _shard(folder, "text_encoder", "model", ["model-00001-of-00001.safetensors"])
    assert weights.sd_variants(folder)["text_encoder"] is None
    assert load_sdgm(str(folder)).text_encoder is not None


@pytest.mark.parametrize("component", list(weights.SD_WEIGHTS))
@pytest.mark.parametrize("damage", ["truncated", "empty", "an index of the wrong shape"])
def test_a_truncated_or_malformed_stable_diffusion_weight_file_is_one_line(tiny_sd, tmp_path, component, damage):
    folder = copy_sd(tiny_sd, tmp_path / "sd")
    stem = weights.SD_WEIGHTS[component]
    path = folder / component / f"{stem}.safetensors"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path = folder / component / f"{stem}.safetensors.index.json"
        path.write_text(json.dumps({"weight_map": ["not", "a", "map"]}))
    with pytest.raises(UserError) as err:
        load_sdgm(str(folder))
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "refused" in message


def test_stable_diffusion_fp16_variant_alone_loads_as_float32(tiny_sd, tmp_path):
    """The real inpainting checkpoint ships safetensors only as ``*.fp16.safetensors``."""
    folder = copy_sd(tiny_sd, tmp_path / "sd")
    halves = {}
    for name, stem in weights.SD_WEIGHTS.items():
        full = folder / name / f"{stem}.safetensors"
        halves[name] = {k: v.half() for k, v in load_file(str(full)).items()}
        save_file(halves[name], str(folder / name / f"{stem}.fp16.safetensors"))
        full.unlink()
    assert weights.sd_variants(folder) == {"unet": "fp16", "vae": "fp16", "text_encoder": "fp16"}
    comps = load_sdgm(str(folder))
    for name in weights.SD_WEIGHTS:
        module = getattr(comps, name)
        assert all(p.dtype == torch.float32 for p in module.parameters())
        loaded = module.state_dict()
        key = next(k for k in halves[name] if k in loaded and halves[name][k].dim() > 1)
        assert torch.equal(loaded[key], halves[name][key].float())


def test_stable_diffusion_model_id_is_read_from_the_hugging_face_cache(tiny_sd, hf_cache):
    snapshot = hf_snapshot(hf_cache, "paper-repro/tiny-sd")
    snapshot.rmdir()
    copy_sd(tiny_sd, snapshot)
    assert weights.locate_stable_diffusion("paper-repro/tiny-sd") == snapshot
    comps = load_sdgm("paper-repro/tiny-sd")
    assert comps.source == "paper-repro/tiny-sd" and comps.inpainting


def test_pickled_stable_diffusion_in_the_hugging_face_cache_is_refused_with_the_fetch_command(tiny_sd, hf_cache,
                                                                                               marker):
    snapshot = hf_snapshot(hf_cache, "paper-repro/tiny-sd")
    snapshot.rmdir()
    copy_sd(tiny_sd, snapshot)
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    planted = plant_pickle(snapshot / "unet" / "diffusion_pytorch_model.bin", marker)
    assert_refused(lambda: load_sdgm("paper-repro/tiny-sd"), marker, planted.name,
                   "hf download paper-repro/tiny-sd --include", kind=WeightsRefused)


def test_missing_stable_diffusion_says_where_it_looked_and_how_to_fetch(tiny_sd, hf_cache, tmp_path):
    model = "stable-diffusion-v1-5/stable-diffusion-inpainting"
    with pytest.raises(WeightsMissing) as info:
        load_sdgm(model)
    message = str(info.value)
    assert model in message and str(hf_cache) in message and "\n" not in message
    assert (f'hf download {model} --include "*.json" --include "*.txt" --include "*.safetensors"') in message
    with pytest.raises(WeightsMissing, match="no-such-folder.*no such folder"):
        load_sdgm(str(tmp_path / "no-such-folder"))
    folder = copy_sd(tiny_sd, tmp_path / "sd")
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(WeightsMissing, match="no tokenizer/ folder"):
        weights.locate_stable_diffusion(folder)


def test_tiny_pipeline_still_loads(tiny_sd):
    assert weights.locate_stable_diffusion(tiny_sd) == tiny_sd
    assert weights.sd_variants(tiny_sd) == {"unet": None, "vae": None, "text_encoder": None}
    assert load_sdgm("tiny").is_tiny


# ------------------------------------------------------------------------------------------
# The project's own run checkpoints (safetensors already; a pickle in their place is refused)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("paper", ["defect_gan", "dadnet", "fid_extractor"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_planted_pickle_as_a_run_checkpoint_is_refused(tmp_path, marker, paper, fmt):
    run = tmp_path / "run"
    if paper == "fid_extractor":
        planted = plant_pickle(run / "extractor.safetensors", marker, fmt)

        def call():
            return fid.train_in_domain_features(tmp_path / "unused", fid.ExtractorConfig(32, 1), run_dir=run,
                                                progress=False)
    else:
        write_run_config(run, get_config(paper, "smoke"), classes=["Crack", "Spallation"])
        planted = plant_pickle(checkpoint_path(run, 1), marker, fmt)

        def call():
            return (load_generator if paper == "defect_gan" else load_model)(run)
    assert_refused(call, marker, planted)


# ------------------------------------------------------------------------------------------
# The fail-fast API: locating builds nothing and reads nothing
# ------------------------------------------------------------------------------------------
def test_locate_functions_only_look(hub, hf_cache, tiny_sd, monkeypatch):
    hub.mkdir(parents=True)
    for filename in [*TORCHVISION_FILES.values(), weights.INCEPTION_WEIGHTS_FILE]:
        (hub / filename).write_bytes(b"")  # existence is all a locate function checks
    (hf_snapshot(hf_cache, "timm/resnet18.a1_in1k") / "model.safetensors").write_bytes(b"")

    def forbidden(*args, **kwargs):
        raise AssertionError("a locate function built a network or read a file")

    monkeypatch.setattr(torch.nn.Module, "__init__", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(weights, "load_file", forbidden)
    assert weights.locate_torchvision("resnet34") == hub / "resnet34-b627a593.pth"
    assert weights.locate_torchvision("densenet121") == hub / "densenet121-a639ec97.pth"
    assert weights.locate_inception() == hub / weights.INCEPTION_WEIGHTS_FILE
    assert weights.locate_timm("resnet18").name == "model.safetensors"
    assert weights.locate_stable_diffusion(tiny_sd) == tiny_sd


def test_missing_weights_are_one_kind_of_user_error():
    assert issubclass(WeightsMissing, UserError) and issubclass(WeightsRefused, UserError)
    assert issubclass(fid.InceptionUnavailable, WeightsMissing)
