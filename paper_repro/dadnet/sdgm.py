"""SDGM, the semantic defect generation module (DADNet §2.1, eq. 1-6, Fig. 1), on diffusers.

One explicit loop over a Stable Diffusion checkpoint's components, used by the package and shown
in the book:

1. encode the normal image I with the VAE: ``z_0``;
2. eq. (1), forward diffusion to step t: ``z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps``
   (``scheduler.add_noise``; ``strength`` says how far, as in img2img);
3. encode the defect prompt with CLIP's text encoder: ``v_p``;
4. denoise ``z_t`` back to ``z_0`` with the UNet, whose cross-attention layers compute eq. (2)-(5),
   ``softmax(Q K^T / sqrt(d_k)) V`` with ``Q = W_Q z_t``, ``K = W_K v_p``, ``V = W_V v_p``
   (:class:`ExplicitAttention` makes that computation visible);
5. decode the latent: the defect image ``D``;
6. eq. (6): ``A = I (1 - M_g) + D M_g`` through the shared :func:`paper_repro.compose.compose`.

Two ways in, one code path (:func:`load_sdgm`):

- a model id or local folder of a real Stable Diffusion (inpainting) checkpoint, e.g.
  ``stable-diffusion-v1-5/stable-diffusion-inpainting``;
- ``"standin"`` (smoke and demo): a small inpainting diffusion model that the project pretrained
  itself on a corpus of rendered defects (:mod:`paper_repro.standin.pretrain`) and ships in
  ``sdgm_standin/`` in the diffusers layout, with a model card; it is loaded exactly as a real folder
  is, and its weights are checked against :data:`STANDIN_SHA256` first;
- ``"tiny"`` (tests only): a tiny, *randomly initialised* pipeline built from configs, with a CLIP
  tokenizer rebuilt offline from the BPE vocabulary that ships in the ``open_clip`` package. It
  exercises every line of the loop but knows nothing about defects: its pictures are structured noise.

A checkpoint folder may carry ``prompts.json`` (category -> prompts): the prompts it was trained
on, which :func:`prompts_for` then uses instead of :data:`DEFAULT_PROMPTS`.

An inpainting UNet (9 input channels) also receives the mask and the masked image's latent, as in
``StableDiffusionInpaintPipeline``; a text-to-image UNet (4 channels) just denoises. Either way the
pixels outside M_g are put back by eq. (6), since the model itself does not keep them.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import open_clip
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
from huggingface_hub import snapshot_download
from safetensors import SafetensorError
from open_clip.tokenizer import bytes_to_unicode
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from paper_repro.compose import compose
from paper_repro.config import STANDIN_SD_MODEL, TINY_SD_MODEL
from paper_repro.environment import cache_dir, environment
from paper_repro.errors import UserError
from paper_repro.runs.progress import silence_hugging_face_bars, tqdm
from paper_repro.weights import (SD_EXCLUDE, SD_INCLUDE, WeightsMissing, is_repo_id, locate_stable_diffusion,
                                 one_line_reason, sd_variants)

TINY = TINY_SD_MODEL
STANDIN = STANDIN_SD_MODEL
STANDIN_DIR = Path(__file__).resolve().parents[1] / "standin" / "sdgm_standin"   # paper_repro/standin/
# The shipped stand-in's weights (sdgm_standin/MODEL_CARD.md lists the same): a changed file is refused.
STANDIN_SHA256: dict[str, str] = {
    "text_encoder/model.safetensors": "7c96adb1382cae5844e8d36ef801decafce943dd01d7f3e4b5eedc4dde22bedb",
    "unet/diffusion_pytorch_model.safetensors": "53b786dfc4114fa1cf1d0322d3b76a786452638936236aed8052c4c932010d35",
    "vae/diffusion_pytorch_model.safetensors": "2305e1b147be014406de715f169df4d1baa70027027876aaea0ca47e1343cc2b",
}
PROMPTS_FILE = "prompts.json"

# §3.2: four defect semantics per category, set in advance. MVTec AD's eight categories of Tables
# 1-3 and the bundled synthetic surfaces; other categories get generic prompts.
DEFAULT_PROMPTS: dict[str, tuple[str, ...]] = {
    "carpet": ("a carpet with a hole", "a carpet with a colour stain", "a carpet with a cut thread",
               "a carpet with metal contamination"),
    "leather": ("leather with a cut", "leather with a fold", "leather with a glue stain",
                "leather with a poke hole"),
    "tile": ("a cracked ceramic tile", "a tile with a glue strip", "a tile with grey stroke marks",
             "a tile with oil stains"),
    "wood": ("wood with a scratch", "wood with a hole", "wood with a colour stain",
             "wood with a liquid stain"),
    "bottle": ("a bottle with a broken rim", "a bottle with a large crack", "a bottle with a chip",
               "a bottle with contamination"),
    "toothbrush": ("a toothbrush with bent bristles", "a toothbrush with missing bristles",
                   "a toothbrush with a stain", "a toothbrush with frayed bristles"),
    "cable": ("a cable with a missing wire", "a cable with a cut insulation", "a cable with a bent wire",
              "a cable with poked insulation"),
    "screw": ("a screw with a scratched head", "a screw with a damaged thread",
              "a screw with a scratched neck", "a screw with a manipulated front"),
    "concrete": ("concrete with a crack", "concrete with spalling", "concrete with efflorescence",
                 "concrete with a rust stain"),
    "metal": ("brushed metal with a scratch", "brushed metal with a dent", "brushed metal with rust",
              "brushed metal with a hole"),
}


def checkpoint_prompts(model: "str | Path | SDGMComponents | None") -> dict[str, tuple[str, ...]]:
    """The prompts a checkpoint was trained on (its ``prompts.json``; the stand-in has one), else ``{}``."""
    if isinstance(model, SDGMComponents):
        return model.prompts
    if model is None or str(model) == TINY:
        return {}
    folder = STANDIN_DIR if str(model) == STANDIN else Path(str(model)).expanduser()
    path = folder / PROMPTS_FILE
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text())
        return {str(category): tuple(str(p) for p in prompts) for category, prompts in table.items()}
    except (ValueError, AttributeError, TypeError) as err:
        raise UserError(f"{path}: expected {{category: [prompt, ...]}} as JSON ({one_line_reason(err)})") from None


def prompts_for(category: str, n: int = 4, model: "str | Path | SDGMComponents | None" = None) -> list[str]:
    """The first ``n`` defect prompts of ``category``: those ``model``'s checkpoint was trained on when
    it says (:func:`checkpoint_prompts`), else :data:`DEFAULT_PROMPTS` (generic ones for an unknown
    category)."""
    generic = tuple(f"a {category} surface with a {d}" for d in ("crack", "scratch", "stain", "hole"))
    known = checkpoint_prompts(model).get(category) or DEFAULT_PROMPTS.get(category, generic)
    prompts = list(known)
    return (prompts * math.ceil(n / len(prompts)))[:n]


# ------------------------------------------------------------------------------------------
# Eq. (2)-(5) made visible: an attention processor that computes softmax(QK^T / sqrt(d_k)) V
# ------------------------------------------------------------------------------------------

class ExplicitAttention:
    """A diffusers attention processor written as the paper writes attention.

    In a cross-attention layer ``hidden_states`` is the image latent z_t and ``encoder_hidden_states``
    the text embedding v_p. If ``store`` is a list, each cross-attention map (batch, heads, HW, tokens)
    is appended to it.
    """

    def __init__(self, store: list | None = None):
        self.store = store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args: Any, **kwargs: Any) -> torch.Tensor:
        residual = hidden_states
        spatial = hidden_states.ndim == 4
        if spatial:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        cross = encoder_hidden_states is not None
        context = encoder_hidden_states if cross else hidden_states
        if cross and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))   # eq. (3): Q = W_Q z_t
        k = attn.head_to_batch_dim(attn.to_k(context))         # eq. (4): K = W_K v_p
        v = attn.head_to_batch_dim(attn.to_v(context))         # eq. (5): V = W_V v_p
        d_k = q.shape[-1]
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d_k), dim=-1)  # eq. (2)
        if cross and self.store is not None:
            self.store.append(weights.detach().reshape(-1, attn.heads, *weights.shape[1:]).cpu())
        out = attn.batch_to_head_dim(weights @ v)              # eq. (2): ... V
        out = attn.to_out[1](attn.to_out[0](out))              # output projection, dropout
        if spatial:
            out = out.transpose(1, 2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


# ------------------------------------------------------------------------------------------
# Components: a real checkpoint, or a tiny random one built from configs
# ------------------------------------------------------------------------------------------

@dataclass
class SDGMComponents:
    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    scheduler: Any
    source: str  # the model id / folder, "standin (...)" or "tiny (random weights)"
    prompts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the checkpoint's prompts.json

    @property
    def inpainting(self) -> bool:
        return self.unet.config.in_channels == 9

    @property
    def is_tiny(self) -> bool:
        return self.source.startswith(TINY)

    @property
    def is_standin(self) -> bool:
        return self.source.startswith(STANDIN)

    def to(self, device: torch.device | str) -> "SDGMComponents":
        for module in (self.text_encoder, self.vae, self.unet):
            module.to(device)
        return self


def build_clip_tokenizer(folder: str | Path):
    """CLIP's 49,408-token BPE tokenizer rebuilt offline from ``open_clip``'s vocabulary file and
    saved with ``save_pretrained`` in ``folder`` (reload: ``CLIPTokenizer.from_pretrained(folder)``)."""
    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]   # as open_clip / OpenAI CLIP
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges,
                              model_max_length=77)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def build_tiny_sdgm(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny randomly initialised Stable Diffusion *inpainting* checkpoint to ``folder``.

    Same layout as a real one (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``,
    ``model_index.json``), so :func:`load_sdgm` reads both the same way. The VAE downsamples 8x
    (four 32-channel blocks) like SD's; the UNet has two levels of 32/64 channels with
    cross-attention to a 32-wide, 2-layer CLIP text encoder.
    """
    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=8)
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, sample_size=256)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, projection_dim=32,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    # Stable Diffusion's noise schedule (scaled-linear betas 0.00085 -> 0.012 over 1000 steps)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                          unet=unet, scheduler=scheduler, safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return folder


def tiny_sdgm_dir() -> Path:
    """The cached tiny checkpoint folder (built on first use)."""
    folder = cache_dir() / "sdgm" / "tiny-v1"
    if not (folder / "model_index.json").is_file():
        build_tiny_sdgm(folder)
    return folder


def standin_sdgm_dir() -> Path:
    """The shipped stand-in's folder, its weights checked against :data:`STANDIN_SHA256`."""
    for name, expected in STANDIN_SHA256.items():
        path = STANDIN_DIR / name
        if not path.is_file():
            raise UserError(f"SDGM stand-in: {path} is missing; reinstall paper_repro, or retrain it with "
                            f"`python -m paper_repro dadnet sdgm-pretrain --out DIR` and pass --sd-model DIR")
        if file_sha256(path) != expected:
            raise UserError(f"SDGM stand-in: {path} does not match its checksum (sdgm_standin/MODEL_CARD.md); "
                            f"a retrained stand-in is loaded by its folder: --sd-model DIR")
    return STANDIN_DIR


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_sdgm(model: str | Path = TINY, local_files_only: bool | None = None,
              device: torch.device | str = "cpu") -> SDGMComponents:
    """Load the components of ``model``: ``"standin"``, ``"tiny"``, a local folder, or a Hugging Face
    model id.

    A model id is read from the Hugging Face cache (after ``hf download <id> ...``; the command is in
    the error when it is missing). ``local_files_only=False``, or ``PAPER_REPRO_SD_DOWNLOAD=1`` when
    it is left ``None``, lets a missing model id download its configs and safetensors first.

    Weights are read from safetensors only (``use_safetensors=True`` everywhere: diffusers and
    transformers then never open a pickled ``.bin``), in float32, from the fp32 files or, where a
    checkpoint ships only those (stable-diffusion-v1-5/stable-diffusion-inpainting), the fp16 variant's.
    The scheduler is DDIM built from the checkpoint's own noise schedule. A checkpoint that is missing
    or refused (:func:`paper_repro.weights.locate_stable_diffusion`), or that diffusers cannot load,
    raises :class:`UserError`, one line naming it.
    """
    name = str(model)
    if local_files_only is None:
        local_files_only = name in (TINY, STANDIN) or not environment().sd_download
    if name == TINY:
        folder, source = tiny_sdgm_dir(), f"{TINY} (random weights)"
    elif name == STANDIN:
        folder, source = standin_sdgm_dir(), f"{STANDIN} (paper_repro's pretrained stand-in, {STANDIN_DIR.name}/)"
    else:
        folder, source = _sd_folder(name, download=not local_files_only), name
    comps = _load_components(folder, source=source)
    comps.prompts = checkpoint_prompts(folder)
    for module in (comps.text_encoder, comps.vae, comps.unet):
        module.eval().requires_grad_(False)
    comps.unet.set_attn_processor(ExplicitAttention())
    return comps.to(device)


def _sd_folder(model: str, download: bool) -> Path:
    """The local diffusers folder of ``model``, downloaded first (configs and safetensors only) when
    allowed and it is a model id missing from the cache."""
    try:
        return locate_stable_diffusion(model)
    except WeightsMissing:
        if not (download and is_repo_id(model)):
            raise
    try:
        snapshot_download(model, allow_patterns=list(SD_INCLUDE), ignore_patterns=list(SD_EXCLUDE))
    except Exception as err:  # noqa: BLE001 - network, authentication, unknown repository
        raise UserError(f"Stable Diffusion checkpoint {model!r} could not be downloaded: "
                        f"{one_line_reason(err)}") from None
    return locate_stable_diffusion(model)


def _load_components(folder: Path, source: str) -> SDGMComponents:
    """The five components of a located diffusers folder, weights from safetensors, in float32."""
    variants = sd_variants(folder)
    path = str(folder)
    weights = dict(local_files_only=True, use_safetensors=True)
    models = dict(weights, low_cpu_mem_usage=False, torch_dtype=torch.float32)  # no `accelerate` needed
    silence_hugging_face_bars()
    try:
        return SDGMComponents(
            tokenizer=CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", local_files_only=True),
            text_encoder=CLIPTextModel.from_pretrained(path, subfolder="text_encoder", variant=variants["text_encoder"],
                                                       dtype=torch.float32, **weights),
            vae=AutoencoderKL.from_pretrained(path, subfolder="vae", variant=variants["vae"], **models),
            unet=UNet2DConditionModel.from_pretrained(path, subfolder="unet", variant=variants["unet"], **models),
            scheduler=DDIMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True),
            source=source,
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:   # the libraries' own: a file they refuse
        raise UserError(f"Stable Diffusion checkpoint {source!r} ({folder}) could not be loaded: "
                        f"{one_line_reason(err)}") from None


# ------------------------------------------------------------------------------------------
# Eq. (1)-(6): the generation loop
# ------------------------------------------------------------------------------------------

def encode_prompts(comps: SDGMComponents, prompts: Sequence[str]) -> torch.Tensor:
    """CLIP text embeddings v_p, ``(B, 77, hidden)``."""
    tokens = comps.tokenizer(list(prompts), padding="max_length", max_length=comps.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
    device = comps.text_encoder.device
    return comps.text_encoder(tokens.input_ids.to(device))[0]


def start_timesteps(scheduler, steps: int, strength: float) -> torch.Tensor:
    """The denoising timesteps when eq. (1) noises z_0 only to ``strength`` of the way (img2img)."""
    scheduler.set_timesteps(steps)
    n = min(steps, max(1, int(round(steps * strength))))
    return scheduler.timesteps[steps - n:]


@torch.no_grad()
def sdgm_generate(comps: SDGMComponents, images: torch.Tensor, masks: torch.Tensor,
                  prompts: Sequence[str], steps: int = 50, strength: float = 0.75,
                  guidance_scale: float = 7.5, generator: torch.Generator | None = None,
                  progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (1)-(6) for a batch: normal ``images`` (B, 3, H, W) in [0, 1], masks M_g (B, 1, H, W),
    one prompt per image. Returns ``(A, D)``: the pseudo-anomalies and the diffusion images.

    H and W must be multiples of 8 (the VAE's downsampling).
    """
    device = comps.unet.device
    images, masks = images.to(device), masks.to(device)
    sf = comps.vae.config.scaling_factor
    x = images * 2 - 1
    z0 = comps.vae.encode(x).latent_dist.sample(generator) * sf                 # z_0 = E(I)
    v_p = encode_prompts(comps, prompts)                                         # CLIP text vectors
    guided = guidance_scale > 1
    if guided:  # classifier-free guidance, as Stable Diffusion samples
        v_p = torch.cat([encode_prompts(comps, [""] * len(prompts)), v_p])
    timesteps = start_timesteps(comps.scheduler, steps, strength)
    eps = torch.randn(z0.shape, generator=generator, device="cpu").to(device)
    z = comps.scheduler.add_noise(z0, eps, timesteps[:1].repeat(len(z0)))       # eq. (1): z_t
    if comps.inpainting:  # the inpainting UNet also sees where to paint and what is around it
        m_lat = F.interpolate(masks, size=z.shape[-2:], mode="nearest")
        masked = comps.vae.encode(x * (1 - masks)).latent_dist.mode() * sf
    for t in tqdm(timesteps, desc="SDGM denoising", disable=not progress, leave=False):
        inp = comps.scheduler.scale_model_input(z, t)
        if comps.inpainting:
            inp = torch.cat([inp, m_lat, masked], dim=1)
        if guided:
            inp = torch.cat([inp, inp])
        eps_hat = comps.unet(inp, t, encoder_hidden_states=v_p).sample           # eq. (2)-(5) inside
        if guided:
            uncond, cond = eps_hat.chunk(2)
            eps_hat = uncond + guidance_scale * (cond - uncond)
        z = comps.scheduler.step(eps_hat, t, z).prev_sample
    defect = (comps.vae.decode(z / sf).sample / 2 + 0.5).clamp(0, 1)            # D
    anomalous = compose(images, defect, masks)                                    # eq. (6)
    return anomalous, defect


def noise_levels(scheduler, timesteps: Sequence[int]) -> list[tuple[int, float, float]]:
    """Eq. (1)'s two weights at each t: ``(t, sqrt(a_t), sqrt(1 - a_t))``."""
    a = scheduler.alphas_cumprod
    return [(int(t), float(a[int(t)].sqrt()), float((1 - a[int(t)]).sqrt())) for t in timesteps]
