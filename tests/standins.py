"""Stand-ins for the weights a ``full`` batch loads, in their real file formats and places, with
random values: Inception-v3 for FID (torch-fidelity's network), the baselines' timm backbones in a
Hugging Face cache, and a tiny Stable Diffusion inpainting checkpoint in the diffusers folder layout.

They let this CPU machine check the whole full path (``reproduce --scale full --dry-run``) through the
very loading code the real weights go through. Their numbers mean nothing.

    python tests/standins.py /tmp/standins          # writes them, prints the environment to use
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from paper_repro.config import get_config
from paper_repro.dadnet.sdgm import build_tiny_sdgm
from paper_repro.weights import INCEPTION_WEIGHTS_FILE, timm_repo_id

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"  # a commit hash, as the Hugging Face cache names snapshots


class InceptionSkeleton(FeatureExtractorInceptionV3):
    """torch-fidelity's network with its random initial weights: its constructor's load is skipped."""

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return None


def inception_state() -> dict[str, torch.Tensor]:
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return InceptionSkeleton("skeleton", ["2048"], feature_extractor_weights_path=empty).state_dict()


def write_timm(cache: Path, backbone: str) -> Path:
    """``model.safetensors`` of ``backbone``'s repository in the Hugging Face cache layout."""
    repo = cache / f"models--{timm_repo_id(backbone).replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    path = repo / "snapshots" / SNAPSHOT / "model.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = timm.create_model(backbone, pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def write_standins(root: str | Path) -> dict[str, str]:
    """Write every stand-in under ``root``; return the environment variables that point the package at them
    (``PAPER_REPRO_SD_MODEL`` included)."""
    root = Path(root)
    inception = root / INCEPTION_WEIGHTS_FILE
    if not inception.is_file():
        root.mkdir(parents=True, exist_ok=True)
        torch.save(inception_state(), inception)
    plan = get_config("baselines", "full")
    for backbone in dict.fromkeys((plan.backbone, plan.rd_backbone)):
        write_timm(root / "hf", backbone)
    if not (root / "sd" / "model_index.json").is_file():
        build_tiny_sdgm(root / "sd")
    return {"PAPER_REPRO_INCEPTION_WEIGHTS": str(inception), "HF_HUB_CACHE": str(root / "hf"),
            "HF_HUB_OFFLINE": "1", "PAPER_REPRO_SD_MODEL": str(root / "sd")}


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "standins"
    for name, value in write_standins(target).items():
        print(f"export {name}={value}")
