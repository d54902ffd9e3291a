"""Pretrained weights: found before anything is built, read without running code.

The papers' numbers rest on weights trained elsewhere: torchvision's ImageNet ResNet34/DenseNet121
(Defect-GAN Table 3), torch-fidelity's Inception-v3 (FID, Tables 1-2), timm's ImageNet backbones
(the anomalib baselines of DADNet Tables 1-3) and Stable Diffusion (DADNet's SDGM). None of them can
be downloaded on the machine that builds the book, and a weight file is a program in disguise: a
pickle runs whatever code it names when it is unpickled. So this module holds the two rules every
weight file the project reads goes through (DESIGN.md, "Weights that cannot be downloaded here"):

**One reader.** :func:`read_state_dict` reads ``.safetensors`` with safetensors (no code at all) and
anything else with ``torch.load(map_location="cpu", weights_only=True)``, whose restricted unpickler
accepts tensors and plain containers and refuses every other global. A file it cannot read that way
is refused in one line (:class:`WeightsRefused`); nothing in it runs. :func:`load_state` puts the
tensors into a network and refuses, in one line, a file that does not fit it.

**Look, don't fetch.** Libraries' own loaders are not used, because they unpickle: torchvision's
``WeightsEnum.get_state_dict`` and torch-fidelity's Inception constructor call ``torch.load`` with
``weights_only=False``. The ``locate_*`` functions find a file where those libraries would have put
it, build no model, read nothing and download nothing, so a dry run can call them all in well under
a second. Each returns a path or raises :class:`WeightsMissing`, one line naming what is missing,
where it was looked for, and the command that fetches it:

- :func:`locate_torchvision` ``(name, weights="DEFAULT") -> Path``: a weights file given as
  ``weights``, else ``$PAPER_REPRO_BACKBONE_WEIGHTS/<file>``, else torch hub's cache
  ``<torch.hub.get_dir()>/checkpoints/<file>`` (``resnet34-b627a593.pth``, ``densenet121-a639ec97.pth``).
- :func:`locate_inception` ``(path=None) -> Path``: ``path``, else ``$PAPER_REPRO_INCEPTION_WEIGHTS``,
  else ``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``.
- :func:`locate_timm` ``(backbone) -> Path``: ``model.safetensors`` of the backbone's Hugging Face
  repository (``timm/resnet18.a1_in1k``, ``timm/wide_resnet50_2.racm_in1k``: the tag timm gives the
  bare name) in the Hugging Face cache.
- :func:`locate_stable_diffusion` ``(model) -> Path``: a diffusers folder, or the cached snapshot of a
  Hugging Face model id, whose ``unet``, ``vae`` and ``text_encoder`` hold safetensors. A folder whose
  weights are only pickled ``.bin`` files is refused (:class:`WeightsRefused`), not read.

Readers of the file built on these: :func:`torchvision_state_dict` (with DenseNet's old key names
renamed), :func:`paper_repro.evaluation.fid.InceptionV3Features`,
:func:`paper_repro.baselines.anomalib_models.build`, :func:`paper_repro.dadnet.sdgm.load_sdgm`; the
project's own run checkpoints are safetensors already (:mod:`paper_repro.runs.checkpoints`).

File hashes are not checked: a file read this way cannot run code, and one that is not the network's
fails on its keys or shapes. (The tests rely on this: they plant random stand-ins in the real formats.)
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

import timm  # a dependency of open-clip-torch, so always installed with this package
import torch
import torchvision
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from paper_repro.environment import BACKBONE_WEIGHTS_ENV, INCEPTION_WEIGHTS_ENV, environment
from paper_repro.errors import UserError

# $PAPER_REPRO_BACKBONE_WEIGHTS: a folder holding torchvision's weight files; $PAPER_REPRO_INCEPTION_WEIGHTS:
# the Inception-v3 FID weights file (read, like every PAPER_REPRO_* variable, by paper_repro.context)

# torch-fidelity 0.4.0, torch_fidelity/feature_extractor_inceptionv3.py, URL_INCEPTION_V3 (lines 19-21):
# the TensorFlow FID Inception (2015-12-05) converted to PyTorch, what the paper's FIDs were computed on.
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"

# The three Stable Diffusion components that hold weights, and their weight files' stems (diffusers
# names models' files diffusion_pytorch_model.*, transformers names them model.* / pytorch_model.*).
SD_WEIGHTS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
SD_CONFIG_FOLDERS = ("tokenizer", "scheduler")
# What `hf download` fetches for SDGM: configs, tokenizer vocabulary and merges, safetensors weights.
# stable-diffusion-v1-5/stable-diffusion-inpainting ships safetensors only as the fp16 variant
# (huggingface.co/stable-diffusion-v1-5/stable-diffusion-inpainting/tree/8a4288a/unet); "*.safetensors"
# matches exactly those there, and the fp32 files of checkpoints that have them. The safety checker is
# not used. `hf` takes one pattern per --include (huggingface_hub 2.4 cli/download.py: a second bare
# pattern would be read as a file name and the --include ignored).
SD_INCLUDE = ("*.json", "*.txt", "*.safetensors")
SD_EXCLUDE = ("safety_checker/*",)


class WeightsMissing(UserError):
    """A weights file or folder is not where it was looked for; the message says where and how to fetch it."""


class WeightsRefused(UserError):
    """A weights file is there but is not read: pickled code, a corrupt file, or not the network's weights."""


# ------------------------------------------------------------------------------------------
# Reading: one safe loader
# ------------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read without running any code in it.

    ``.safetensors`` through safetensors; anything else through ``torch.load(map_location="cpu",
    weights_only=True)`` (zip or legacy torch.save format). A file that needs more than tensors and
    plain containers to unpickle, a corrupt file, or one that is not a flat name -> tensor mapping
    raises :class:`WeightsRefused`, one line naming the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsMissing(f"{path}: no such weights file")
    try:
        state = load_file(str(path), device="cpu") if path.suffix == ".safetensors" else \
            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means the same thing: not plain tensors
        raise WeightsRefused(f"{path}: refused, not a plain weights file (safetensors, or a torch.save of "
                             f"tensors only): {one_line_reason(err)}") from None
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsRefused(f"{path}: refused, not a state dict (a flat mapping of names to tensors)")
    return dict(state)  # a plain dict: no `_metadata`, so BatchNorm fills a missing num_batches_tracked


def one_line_reason(err: BaseException, limit: int = 200) -> str:
    """The informative line of a loader's (often many-line) error message, shortened."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    telling = [line for line in lines if any(
        clue in line for clue in ("Unsupported global", "size mismatch", "Missing key", "Unexpected key"))]
    reason = (telling or lines or [type(err).__name__])[0]
    return reason if len(reason) <= limit else reason[:limit] + "..."


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path,
               ignore_unexpected: bool = False) -> nn.Module:
    """Copy ``state`` into ``module``; every one of its tensors must be there, in the right shape.

    ``ignore_unexpected``: tensors of ``state`` the module does not have are allowed (an ImageNet
    classifier head beside a feature extractor). Otherwise :class:`WeightsRefused` names ``source``.
    """
    name = type(module).__name__
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape
        raise WeightsRefused(f"{source}: does not fit {name}: {one_line_reason(err)}") from None
    unexpected = [] if ignore_unexpected else unexpected
    if missing or unexpected:
        raise WeightsRefused(f"{source}: does not fit {name}: {len(missing)} of its tensors missing"
                             f"{_first(missing)}, {len(unexpected)} unexpected{_first(unexpected)}")
    return module


def _first(keys: list[str]) -> str:
    return f" (first: {keys[0]})" if keys else ""


# ------------------------------------------------------------------------------------------
# torchvision ImageNet backbones (Defect-GAN Table 3)
# ------------------------------------------------------------------------------------------
def _weights_enum(name: str):
    """torchvision's enum of ``name``'s pretrained weights (metadata only: URLs, names)."""
    try:
        return torchvision.models.get_model_weights(name)
    except ValueError:
        raise UserError(f"unknown torchvision model {name!r}") from None


def _choices(kinds) -> str:
    return ", ".join(repr(n) for n in sorted(kinds.__members__, key=lambda n: n != "DEFAULT"))


def torchvision_url(name: str, weights: str = "DEFAULT") -> str:
    """The download URL torchvision records for ``name``'s ``weights`` (``DEFAULT``, ``IMAGENET1K_V1``...)."""
    kinds = _weights_enum(name)
    if weights not in kinds.__members__:  # DEFAULT is one of them, an alias
        raise UserError(f"unknown weights {weights!r} for {name}: expected None, {_choices(kinds)} or a weights file")
    return (kinds.DEFAULT if weights == "DEFAULT" else kinds[weights]).url


def locate_torchvision(name: str, weights: str | Path = "DEFAULT") -> Path:
    """The file of torchvision's ``name`` weights: ``weights`` itself when it is not one of torchvision's
    names for them (a file path), else the file torchvision would download (its URL's last part) in
    ``$PAPER_REPRO_BACKBONE_WEIGHTS``, then in torch hub's cache, where torchvision's loader keeps it
    (``load_state_dict_from_url``'s ``<torch.hub.get_dir()>/checkpoints``,
    docs.pytorch.org/docs/stable/model_zoo.html)."""
    kinds = _weights_enum(name)
    if weights not in kinds.__members__:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        raise WeightsMissing(f"{path}: no such {name} weights file (weights= takes None, {_choices(kinds)} or a file)")
    url = torchvision_url(name, str(weights))
    filename = url.rsplit("/", 1)[-1]
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    given = environment().backbone_weights
    folders = [Path(given).expanduser()] if given else []
    for folder in folders + [hub]:
        if (folder / filename).is_file():
            return folder / filename
    raise WeightsMissing(
        f"{name} ImageNet weights not found: no {filename} in {' or '.join(map(str, folders + [hub]))}; "
        f"fetch: mkdir -p {hub} && curl -L -o {hub / filename} {url} (or use weights=None, random init)")


# torchvision/models/densenet.py, _load_state_dict: "'.'s are no longer allowed in module names, but
# previous _DenseLayer has keys 'norm.1', 'relu.1', 'conv.1', 'norm.2', 'relu.2', 'conv.2'. They are
# also in the checkpoints in model_urls." The same pattern renames them here.
_OLD_DENSE_LAYER_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def rename_old_densenet_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``...denselayer1.norm.1.weight`` -> ``...denselayer1.norm1.weight`` (new names pass unchanged)."""
    renamed = {}
    for key, value in state.items():
        match = _OLD_DENSE_LAYER_KEY.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


def torchvision_state_dict(name: str, weights: str | Path = "DEFAULT") -> tuple[dict[str, torch.Tensor], Path]:
    """``(state dict, its file)`` of torchvision's ``name`` weights, located, read safely, and (for a
    DenseNet) with the old layer names torchvision's own loader renames."""
    path = locate_torchvision(name, weights)
    state = read_state_dict(path)
    return (rename_old_densenet_keys(state) if name.startswith("densenet") else state), path


# ------------------------------------------------------------------------------------------
# Inception-v3 for FID (Defect-GAN Tables 1-2)
# ------------------------------------------------------------------------------------------
def locate_inception(path: str | Path | None = None) -> Path:
    """The Inception-v3 FID weights: ``path``, else ``$PAPER_REPRO_INCEPTION_WEIGHTS``, else the file
    in torch hub's cache (where torch-fidelity's own download would keep it)."""
    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    fetch = f"fetch: mkdir -p {hub_file.parent} && curl -L -o {hub_file} {INCEPTION_URL}"
    for given, what in ((path, "argument"), (environment().inception_weights, f"${INCEPTION_WEIGHTS_ENV}")):
        if given:
            given = Path(given).expanduser()
            if not given.is_file():
                raise WeightsMissing(f"{given} ({what}): no such Inception-v3 weights file; {fetch}")
            return given
    if not hub_file.is_file():
        raise WeightsMissing(f"Inception-v3 weights not found: no {hub_file} and ${INCEPTION_WEIGHTS_ENV} "
                             f"unset; {fetch}")
    return hub_file


# ------------------------------------------------------------------------------------------
# timm ImageNet backbones on the Hugging Face Hub (the anomalib baselines)
# ------------------------------------------------------------------------------------------
def timm_repo_id(backbone: str) -> str:
    """The Hugging Face repository of timm's pretrained ``backbone``: a bare name takes timm's default
    tag, the first one registered with weights (timm/models/_registry.py, generate_default_cfgs), so
    ``resnet18`` -> ``timm/resnet18.a1_in1k`` and ``wide_resnet50_2`` -> ``timm/wide_resnet50_2.racm_in1k``."""
    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is None or not cfg.hf_hub_id:
        raise UserError(f"timm has no Hugging Face weights for backbone {backbone!r}")
    return cfg.hf_hub_id


def locate_timm(backbone: str) -> Path:
    """``model.safetensors`` of ``backbone``'s repository in the Hugging Face cache (``$HF_HUB_CACHE``,
    default ``~/.cache/huggingface/hub``, layout ``models--<org>--<name>/snapshots/<commit>/``).

    timm itself reads the same file first (timm/models/_hub.py, load_state_dict_from_hf). A pickled
    ``pytorch_model.bin`` beside it, or instead of it, is never read.
    """
    repo = timm_repo_id(backbone)
    found = try_to_load_from_cache(repo, "model.safetensors")
    if isinstance(found, str):
        return Path(found)
    pickled = isinstance(try_to_load_from_cache(repo, "pytorch_model.bin"), str)
    raise WeightsMissing(
        f"{backbone} ImageNet weights not found: no model.safetensors of {repo} in the Hugging Face cache "
        f"{hf_constants.HF_HUB_CACHE}{' (its pickled pytorch_model.bin is never read)' if pickled else ''}; "
        f"fetch: hf download {repo} model.safetensors config.json (or use pretrained=False, random init)")


# ------------------------------------------------------------------------------------------
# Stable Diffusion (DADNet's SDGM)
# ------------------------------------------------------------------------------------------
def stable_diffusion_fetch_command(model_id: str) -> str:
    """The ``hf download`` command that puts what :func:`locate_stable_diffusion` needs in the cache."""
    include = " ".join(f'--include "{pattern}"' for pattern in SD_INCLUDE)
    exclude = " ".join(f'--exclude "{pattern}"' for pattern in SD_EXCLUDE)
    return f"hf download {model_id} {include} {exclude}"


def is_repo_id(model: str) -> bool:
    """Is ``model`` shaped like a Hugging Face model id (``org/name``), not a path?"""
    if model.startswith(("/", ".", "~")) or model.count("/") != 1:
        return False
    try:
        validate_repo_id(model)
    except HFValidationError:
        return False
    return True


def locate_stable_diffusion(model: str | Path) -> Path:
    """The diffusers folder of ``model``: the folder itself, or the Hugging Face cache's snapshot of a
    model id (found through its ``model_index.json``). Its ``unet``, ``vae`` and ``text_encoder`` must
    hold safetensors (fp32 or the fp16 variant; :func:`sd_variants`), and ``tokenizer``/``scheduler``
    must be there. Missing -> :class:`WeightsMissing`; a component holding only pickled ``.bin``
    weights -> :class:`WeightsRefused`; for a model id, either message ends with the fetch command."""
    text = str(model)
    fetch = f"; fetch: {stable_diffusion_fetch_command(text)}" if is_repo_id(text) else ""
    folder = Path(text).expanduser()
    if not folder.is_dir():
        folder = _cached_snapshot(text) if fetch else None
    if folder is None:
        where = f"no such folder, and not in the Hugging Face cache {hf_constants.HF_HUB_CACHE}" if fetch \
            else "no such folder"
        raise WeightsMissing(f"Stable Diffusion checkpoint {text!r} not found: {where}{fetch}")
    try:
        _check_diffusers_folder(folder)
    except (WeightsMissing, WeightsRefused) as err:
        raise type(err)(f"{err}{fetch}") from None
    return folder


def _check_diffusers_folder(folder: Path) -> None:
    for sub in SD_CONFIG_FOLDERS:
        if not (folder / sub).is_dir():
            raise WeightsMissing(f"{folder}: no {sub}/ folder; a diffusers Stable Diffusion folder has "
                                 f"{', '.join([*SD_WEIGHTS, *SD_CONFIG_FOLDERS])}")
    sd_variants(folder)


def _cached_snapshot(model_id: str) -> Path | None:
    found = try_to_load_from_cache(model_id, "model_index.json")
    return Path(found).parent if isinstance(found, str) else None


def check_safetensors(path: Path) -> None:
    """Refuse ``path`` (:class:`WeightsRefused`, one line) unless it parses as safetensors, header and
    extent: a pickle renamed ``.safetensors`` or a truncated download is stopped before a library opens it."""
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (OSError, SafetensorError) as err:
        raise WeightsRefused(f"{path}: refused, not a complete safetensors file ({one_line_reason(err)}); "
                             "fetch it again") from None


def _index_shards(index: Path) -> list[Path]:
    """The shard files a sharded checkpoint's ``*.index.json`` names, each a safetensors file in the same
    folder; an index that names anything else (a ``.bin``, a path outside the folder, a missing file) or
    that is not the index format is refused before any library reads it."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
        if not shards or not all(isinstance(s, str) for s in shards):
            raise ValueError("no shard names")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise WeightsRefused(f"{index}: refused, not a safetensors index with a weight_map of shard files "
                             f"({one_line_reason(err)})") from None
    files = []
    for shard in shards:
        path = index.parent / shard
        if Path(shard).name != shard or not shard.endswith(".safetensors"):
            raise WeightsRefused(f"{index}: refused, it names {shard!r}; an index may name only .safetensors "
                                 "files beside it (pickled shards are never unpickled)")
        if not path.is_file():
            raise WeightsMissing(f"{index}: names {shard}, which is not in {index.parent}")
        files.append(path)
    return files


def sd_variants(folder: str | Path) -> dict[str, str | None]:
    """For each weights component of a diffusers folder, the variant to load: ``None`` when it holds
    fp32 safetensors, ``"fp16"`` when it holds only the fp16 variant's."""
    folder = Path(folder)
    return {component: _safetensors_variant(folder / component, stem) for component, stem in SD_WEIGHTS.items()}


def _safetensors_variant(component: Path, stem: str) -> str | None:
    names = {p.name for p in component.iterdir()} if component.is_dir() else set()
    for variant, single, index in ((None, f"{stem}.safetensors", f"{stem}.safetensors.index.json"),
                                   ("fp16", f"{stem}.fp16.safetensors", f"{stem}.safetensors.index.fp16.json")):
        if single in names or index in names:
            files = [component / single] if single in names else _index_shards(component / index)
            for file in files:
                check_safetensors(file)
            return variant
    pickled = sorted(n for n in names if n.endswith(".bin"))
    if pickled:
        raise WeightsRefused(f"{component}: refused, its weights are only pickled ({', '.join(pickled)}), "
                             f"which are never unpickled; put {stem}.safetensors (or {stem}.fp16.safetensors) there")
    raise WeightsMissing(f"{component}: no {stem}.safetensors or {stem}.fp16.safetensors")


__all__ = [
    "check_safetensors", "BACKBONE_WEIGHTS_ENV", "INCEPTION_WEIGHTS_ENV", "INCEPTION_WEIGHTS_FILE", "INCEPTION_URL", "SD_WEIGHTS",
    "WeightsMissing", "WeightsRefused", "read_state_dict", "one_line_reason", "load_state", "torchvision_url",
    "locate_torchvision", "rename_old_densenet_keys", "torchvision_state_dict", "locate_inception", "timm_repo_id",
    "locate_timm",
    "stable_diffusion_fetch_command", "is_repo_id", "locate_stable_diffusion", "sd_variants",
]
