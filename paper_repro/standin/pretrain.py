"""The SDGM stand-in: a small latent-diffusion *inpainting* model that the project pretrains itself.

DADNet's SDGM (§2.1, eq. 1-6) asks Stable Diffusion to repaint the inside of a random mask M_g with
the defect a prompt names. Stable Diffusion cannot be downloaded everywhere, and the randomly
initialised ``"tiny"`` pipeline of :mod:`paper_repro.dadnet.sdgm` only paints structured noise. This
module trains, on one CPU thread in about 35 minutes, a 9.7 MB checkpoint (plus CLIP's tokenizer
files) with the *same parts and the same folder layout* as a Stable Diffusion inpainting checkpoint,
so that
:func:`~paper_repro.dadnet.sdgm.load_sdgm` and :func:`~paper_repro.dadnet.sdgm.sdgm_generate` use it
unchanged:

==================  ===========================================================================
``tokenizer/``      CLIP's BPE tokenizer (:func:`~paper_repro.dadnet.sdgm.build_clip_tokenizer`)
``text_encoder/``   a 16-wide, 2-layer ``CLIPTextModel`` (0.8 M parameters, trained with the UNet)
``vae/``            an ``AutoencoderKL`` that downsamples 4x: 64 px -> 16 x 16 x 4 latents (0.65 M)
``unet/``           a 9-channel inpainting ``UNet2DConditionModel`` with cross-attention (0.98 M)
``scheduler/``      DDIM over Stable Diffusion's noise schedule
==================  ===========================================================================

What it learns from (:func:`corpus_sample`): surfaces of the six bundled families with the
defect each prompt names painted *inside a mask*, by the project's own renderer
(:mod:`paper_repro.data.textures`, :mod:`paper_repro.data.defects`), from random generators in a key
namespace of their own (``"sdgm-corpus"``) that the detection data never uses. Caveat: the renderer
is the one that draws the detection *test* defects too, so the stand-in knows exactly the defect
kinds it will be tested on; Stable Diffusion only knows what the web taught it. Results with the
stand-in are an optimistic proxy for results with Stable Diffusion.

How it learns (:func:`pretrain`), in three stages:

1. the VAE, on crops of corpus images, most centred on a defect (L1 reconstruction, heavier on
   defect pixels, plus a small KL term); its latents' standard deviation sets ``scaling_factor``
   so the diffusion sees roughly unit-variance latents;
2. every corpus example is encoded once: the latent of the target, of the normal image it came
   from, and of the masked image (exactly as ``sdgm_generate`` computes it);
3. the UNet and the text encoder, with Stable Diffusion's noise-prediction loss (eq. 1: noise the
   target latent to a random step t, predict the noise), classifier-free guidance training (the
   prompt is replaced by ``""`` 15 % of the time) and an exponential moving average of the weights.
   As ``sdgm_generate`` starts from the *normal* image noised to strength 0.75, half the examples at
   t >= 400 start from it too, and the UNet learns to paint the defect over what it sees.

Determinism: every random draw comes from ``seed`` (numpy generators for the corpus, one
``torch.Generator`` for training); on one CPU thread two runs write byte-identical weights.
"""
from __future__ import annotations

import copy
import json
import math
import platform
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import diffusers
import numpy as np
import torch
import torch.nn.functional as F
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from paper_repro.compose import compose
from paper_repro.dadnet.masks import random_mask
from paper_repro.dadnet.sdgm import PROMPTS_FILE, build_clip_tokenizer, file_sha256
from paper_repro.data.defects import paint
from paper_repro.data.textures import illuminate, texture
from paper_repro.errors import UserError
from paper_repro.runs.progress import tqdm

# ------------------------------------------------------------------------------------------
# Prompts and the defect each one names
# ------------------------------------------------------------------------------------------

# Four prompts per bundled category and the kind of :data:`paper_repro.data.defects.DEFECTS` the
# corpus paints for each. Five differ from ``sdgm.DEFAULT_PROMPTS``, whose prompt has no defect of
# that kind in the renderer (marked "was: ..."); the stand-in is trained on these prompts only.
PROMPT_DEFECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "carpet": (("a carpet with a hole", "hole"),
               ("a carpet with a colour stain", "stain"),
               ("a carpet with a missing patch", "missing_part"),        # was: a cut thread
               ("a carpet with metal contamination", "contamination")),
    "leather": (("leather with a cut", "scratch"),
                ("leather with a crack", "crack"),                        # was: a fold
                ("leather with a glue stain", "stain"),
                ("leather with a poke hole", "hole")),
    "tile": (("a cracked ceramic tile", "crack"),
             ("a tile with a missing piece", "missing_part"),             # was: a glue strip
             ("a tile with contamination", "contamination"),              # was: grey stroke marks
             ("a tile with oil stains", "stain")),
    "wood": (("wood with a scratch", "scratch"),
             ("wood with a hole", "hole"),
             ("wood with a colour stain", "stain"),
             ("wood with a liquid stain", "stain")),
    "metal": (("brushed metal with a scratch", "scratch"),
              ("brushed metal with contamination", "contamination"),      # was: a dent
              ("brushed metal with rust", "corrosion_stain"),
              ("brushed metal with a hole", "hole")),
    "concrete": (("concrete with a crack", "crack"),
                 ("concrete with spalling", "spallation"),
                 ("concrete with efflorescence", "efflorescence"),
                 ("concrete with a rust stain", "corrosion_stain")),
}

# The prompts alone, shaped like ``sdgm.DEFAULT_PROMPTS`` (category -> four prompts).
STANDIN_PROMPTS: dict[str, tuple[str, ...]] = {
    cat: tuple(prompt for prompt, _ in pairs) for cat, pairs in PROMPT_DEFECTS.items()}

# Every (family, prompt, defect) the corpus is drawn from, in a fixed order: the prompt index.
PROMPT_TABLE: tuple[tuple[str, str, str], ...] = tuple(
    (family, prompt, defect) for family, pairs in PROMPT_DEFECTS.items() for prompt, defect in pairs)


# ------------------------------------------------------------------------------------------
# The corpus: defects painted inside masks, from random generators of its own
# ------------------------------------------------------------------------------------------

CORPUS_NAMESPACE = "sdgm-corpus"
# An entropy word of every corpus seed (the model card gives the formula), not a cache key: nothing
# caches the corpus; the stand-in trained on it ships with the package and is retrained by hand.
CORPUS_VERSION = 1
P_BLOB = 0.6                # the share of examples whose mask is a random_mask blob


def corpus_rng(seed: int, *key: object) -> np.random.Generator:
    """The generator of one corpus example, keyed like the bundled data's but in its own namespace.

    ``paper_repro.data.synthetic`` seeds every bundled image with the entropy words
    ``[seed, crc32(layout or "normal"/"texture"), crc32(k) for the rest of its key]``. Here the
    second word is always ``crc32("sdgm-corpus")`` (and the word list one longer than any bundled
    key's), so no corpus entropy list equals a bundled one whatever the seeds; distinct entropy
    gives distinct ``SeedSequence`` states, hence different images.
    """
    words = [int(seed), zlib.crc32(CORPUS_NAMESPACE.encode()), CORPUS_VERSION]
    words += [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng(np.random.SeedSequence(words))


def _light_and_noise(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Light and sensor noise, as :func:`paper_repro.data.synthetic.render` applies them, drawn once
    and applied identically to each image (so a normal image and its defective twin differ only
    where the defect is). Returns uint8 images."""
    state = copy.deepcopy(rng.bit_generator.state)
    lit = []
    for image in images:
        rng.bit_generator.state = copy.deepcopy(state)
        lit.append(illuminate(rng, image))
    sigma = np.float32(rng.uniform(0.004, 0.012))
    noise = rng.standard_normal(images[0].shape, dtype=np.float32) * sigma
    return [np.clip((image + noise) * 255.0 + 0.5, 0, 255).astype(np.uint8) for image in lit]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of a (H, W) bool mask by a disc of ``radius`` pixels."""
    if radius <= 0:
        return mask.copy()
    r = np.arange(-radius, radius + 1)
    disc = torch.from_numpy((r[:, None] ** 2 + r[None, :] ** 2 <= radius ** 2).astype(np.float32))
    grown = F.conv2d(torch.from_numpy(mask.astype(np.float32))[None, None], disc[None, None],
                     padding=radius)
    return grown[0, 0].numpy() > 0.5


def _paint_inside(surface: np.ndarray, defect: str, region: np.ndarray, rng: np.random.Generator,
                  max_defects: int = 4, coverage: float = 0.5) -> np.ndarray:
    """Paint ``defect`` onto ``surface`` so that it lands inside ``region``; repeat (up to
    ``max_defects`` times) until the defects cover ``coverage`` of the region.

    The renderer places a defect itself, so each one is drawn twice from the same generator state:
    once to see where it falls, then on the surface shifted (``np.roll``) so that one of its pixels
    lands on a still uncovered pixel of the region, and shifted back. Every defect's colours are
    computed pixel by pixel from the surface under it, so painting on a shifted surface and shifting
    back is the same defect moved; a piece that wraps past an edge is clipped by the region anyway.
    """
    covered = np.zeros_like(region)
    area = int(region.sum())
    for _ in range(max_defects):
        state = copy.deepcopy(rng.bit_generator.state)
        _, gt = paint(surface, defect, rng)                      # where would it fall?
        src = np.argwhere(gt)
        dst = np.argwhere(region & ~covered)
        if len(src) == 0 or len(dst) == 0:
            break
        (sy, sx), (dy, dx) = src[rng.integers(len(src))], dst[rng.integers(len(dst))]
        shift = (int(dy - sy), int(dx - sx))
        rng.bit_generator.state = state                           # the same defect, moved
        painted, gt = paint(np.roll(surface, (-shift[0], -shift[1]), axis=(0, 1)), defect, rng)
        surface = np.roll(painted, shift, axis=(0, 1))
        covered |= np.roll(gt, shift, axis=(0, 1)) & region
        if covered.sum() >= coverage * area:
            break
    return surface


def corpus_sample(prompt_index: int, size: int, index: int, seed: int = 0) -> dict[str, np.ndarray | int | str]:
    """Corpus example ``index`` for prompt ``PROMPT_TABLE[prompt_index]`` at ``size`` px.

    Returns ``normal`` and ``image`` (uint8, (size, size, 3)): a surface and the same surface with
    the prompt's defect composed inside ``mask`` (uint8 {0, 1}, (size, size)), where
    ``image = normal * (1 - mask) + defective * mask``, eq. (6) exactly. Two kinds of mask:

    - ``"blob"`` (60 %): M is :func:`~paper_repro.dadnet.masks.random_mask`, the masks SDGM is given
      at generation time, and the defect is painted inside M, one to four times, until it covers
      half of M (:func:`_paint_inside`). This teaches what SDGM is asked to do: fill an arbitrary
      blob with the named defect, keeping the surface around it.
    - ``"dilated"`` (40 %): one defect anywhere, M its ground truth dilated by 1-3 px. The defect is
      whole here, never clipped by a blob's edge, so the model also sees each defect's full shape
      (a crack's taper, a hole's lip).
    """
    family, prompt, defect = PROMPT_TABLE[prompt_index]
    rng = corpus_rng(seed, family, prompt, size, index)
    surface = texture(family, rng, size)
    mode = "blob" if rng.random() < P_BLOB else "dilated"
    if mode == "blob":
        mask = random_mask(size, rng)[0].numpy() > 0.5
        painted = _paint_inside(surface, defect, mask, rng)
    else:
        painted, gt = paint(surface, defect, rng)
        radius = int(rng.integers(1, 4) * max(1, round(size / 64)))
        mask = _dilate(gt, radius)
    normal, defective = _light_and_noise([surface, painted], rng)
    m = mask.astype(np.uint8)[..., None]
    image = compose(normal, defective, m).astype(np.uint8)   # eq. (6): only the inside of M changes
    return dict(normal=normal, image=image, mask=mask.astype(np.uint8), prompt=prompt_index,
                family=family, defect=defect, mode=mode)


def build_corpus(n: int, size: int, seed: int = 0, start: int = 0, progress: bool = False) -> dict[str, torch.Tensor]:
    """``n`` corpus examples at ``size`` px, prompts in turn (example k uses prompt k mod 24).

    Returns uint8 tensors ``normal``, ``image`` (n, 3, S, S) and ``mask`` (n, 1, S, S), and int64
    ``prompt`` (n,). Examples ``start .. start + n - 1`` (so disjoint ranges give disjoint examples).
    """
    normal, image, mask, prompt = [], [], [], []
    for k in tqdm(range(start, start + n), desc=f"corpus {size}px", disable=not progress, leave=False):
        s = corpus_sample(k % len(PROMPT_TABLE), size, k // len(PROMPT_TABLE), seed)
        normal.append(s["normal"])
        image.append(s["image"])
        mask.append(s["mask"])
        prompt.append(s["prompt"])
    chw = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return dict(normal=chw(normal), image=chw(image), mask=torch.from_numpy(np.stack(mask))[:, None],
                prompt=torch.tensor(prompt))

# ------------------------------------------------------------------------------------------
# The components, built from configs (same classes as a Stable Diffusion inpainting checkpoint)
# ------------------------------------------------------------------------------------------

TEXT_WIDTH = 16   # CLIP's 49,408-token embedding dominates the checkpoint: 16 wide keeps it 3 MB


def build_components(tokenizer_dir: Path, seed: int) -> dict:
    """Freshly initialised tokenizer, text encoder, VAE, UNet and scheduler (seeded by ``seed``).

    - VAE: three encoder/decoder blocks of 16/32/64 channels, so two downsamplings (4x), 4 latent
      channels as Stable Diffusion; no attention in its middle block, which keeps it convolutional
      all through so it can be trained on crops and used on any size.
    - UNet: two levels (32 and 64 channels; 16 x 16 and 8 x 8 latents at 64 px) with
      cross-attention to the text in the lower level and the middle block, 9 input channels
      (noisy latent, mask, masked-image latent), as the Stable Diffusion inpainting UNet.
    - text encoder: a 16-wide, 2-layer CLIP text transformer over CLIP's BPE vocabulary.
    - scheduler: DDIM over Stable Diffusion's scaled-linear betas (0.00085 -> 0.012, 1000 steps).
    """
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(tokenizer_dir)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH,
        num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=77,
        projection_dim=TEXT_WIDTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    vae = AutoencoderKL(
        block_out_channels=(16, 32, 64), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1, norm_num_groups=8, sample_size=64, mid_block_add_attention=False)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=9,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8, norm_num_groups=16)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, unet=unet, scheduler=scheduler)


# ------------------------------------------------------------------------------------------
# Stage 1: the VAE
# ------------------------------------------------------------------------------------------

def _warmup_cosine(opt: torch.optim.Optimizer, steps: int, warmup: int = 100,
                   final: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate: linear warm-up over ``warmup`` steps, then a cosine down to ``final`` of it."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 3, H, W) -> float in [-1, 1], the VAE's range (as ``sdgm_generate``)."""
    return images.float() / 127.5 - 1


def _crops(corpus: dict[str, torch.Tensor], n: int, crop: int, p_defect: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random ``crop`` x ``crop`` crops of corpus images and their masks; with probability
    ``p_defect`` a crop is centred (as far as the border allows) on a random pixel of the mask."""
    images, masks = corpus["image"], corpus["mask"]
    side = images.shape[-1]
    xs, ms = [], []
    for i in torch.randint(len(images), (n,), generator=generator).tolist():
        inside = masks[i, 0].nonzero()
        if len(inside) and float(torch.rand(1, generator=generator)) < p_defect:
            cy, cx = inside[int(torch.randint(len(inside), (1,), generator=generator))].tolist()
            oy = min(max(cy - crop // 2, 0), side - crop)
            ox = min(max(cx - crop // 2, 0), side - crop)
        else:
            oy, ox = torch.randint(0, side - crop + 1, (2,), generator=generator).tolist()
        xs.append(images[i, :, oy:oy + crop, ox:ox + crop])
        ms.append(masks[i, :, oy:oy + crop, ox:ox + crop])
    return _to_unit(torch.stack(xs)), torch.stack(ms).float()


def train_vae(vae: AutoencoderKL, corpora: list[dict[str, torch.Tensor]], steps: int,
              generator: torch.Generator, batch_size: int = 32, crop: int = 32, lr: float = 1e-3,
              kl_weight: float = 1e-6, defect_weight: float = 9.0, p_defect: float = 0.7,
              progress: bool = False) -> list[float]:
    """Train ``vae`` to reconstruct ``crop`` x ``crop`` crops of corpus images.

    Loss: L1, ten times heavier on the pixels inside M (``1 + defect_weight``), plus ``kl_weight``
    times the KL divergence to N(0, I) per latent value. Stable Diffusion's VAE is also trained with
    a small KL weight (and perceptual and adversarial losses, left out here): the latents stay
    close to deterministic, their scale is fixed afterwards by ``scaling_factor``. Defects cover a
    few per cent of the pixels, so 70 % of the crops are centred on one and its pixels weigh more:
    without that the VAE spends itself on surface grain and returns holes as brown smudges.
    Crops suffice because the VAE is convolutional (no attention). Returns the loss every 50 steps.
    """
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = _warmup_cosine(opt, steps)
    log = []
    for step in tqdm(range(steps), desc="VAE", disable=not progress, leave=False):
        corpus = corpora[int(torch.randint(len(corpora), (1,), generator=generator))]
        x, m = _crops(corpus, batch_size, min(crop, corpus["image"].shape[-1]), p_defect, generator)
        posterior = vae.encode(x).latent_dist
        y = vae.decode(posterior.sample(generator)).sample
        w = 1 + defect_weight * m
        loss = (w * (y - x).abs()).mean() / w.mean() + kl_weight * posterior.kl().mean() / posterior.mean[0].numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            log.append(loss.item())
    vae.eval()
    return log


# ------------------------------------------------------------------------------------------
# Stage 2: every corpus example encoded once
# ------------------------------------------------------------------------------------------

@dataclass
class LatentCorpus:
    """The corpus in latent space, at one image size (all latents already times ``scaling_factor``).

    ``target`` the latent of the example (defect inside M), ``normal`` of the normal image it was made
    from, ``masked`` of ``image * (1 - M)``; ``mask`` M resized to the latent grid by nearest
    neighbour (the UNet's mask channel, as ``sdgm_generate`` makes it) and ``weight`` M max-pooled
    to the latent grid (every latent pixel that touches M); ``prompt`` the prompt index.
    """

    target: torch.Tensor
    normal: torch.Tensor
    masked: torch.Tensor
    mask: torch.Tensor
    weight: torch.Tensor
    prompt: torch.Tensor


@torch.no_grad()
def encode_corpus(vae: AutoencoderKL, corpus: dict[str, torch.Tensor], scaling_factor: float,
                  batch_size: int = 128) -> LatentCorpus:
    """Encode a corpus (:func:`build_corpus`) exactly as ``sdgm_generate`` encodes its inputs:
    latent means (the VAE's posteriors are near deterministic), the masked image with M set to 0 in
    the [-1, 1] range."""
    parts: dict[str, list[torch.Tensor]] = {"target": [], "normal": [], "masked": []}
    for start in range(0, len(corpus["image"]), batch_size):
        sl = slice(start, start + batch_size)
        m = corpus["mask"][sl].float()
        x = _to_unit(corpus["image"][sl])
        parts["target"].append(vae.encode(x).latent_dist.mode() * scaling_factor)
        parts["normal"].append(vae.encode(_to_unit(corpus["normal"][sl])).latent_dist.mode() * scaling_factor)
        parts["masked"].append(vae.encode(x * (1 - m)).latent_dist.mode() * scaling_factor)
    lat = {k: torch.cat(v) for k, v in parts.items()}
    side = lat["target"].shape[-1]
    m = corpus["mask"].float()
    return LatentCorpus(target=lat["target"], normal=lat["normal"], masked=lat["masked"],
                        mask=F.interpolate(m, size=(side, side), mode="nearest"),
                        weight=F.adaptive_max_pool2d(m, side), prompt=corpus["prompt"])


# ------------------------------------------------------------------------------------------
# Stage 3: the UNet and the text encoder
# ------------------------------------------------------------------------------------------

P_UNCOND = 0.15        # classifier-free guidance training: the prompt is "" this often
P_NORMAL_START = 0.5   # at t >= T_NORMAL_START, how often z_t is made from the normal image
T_NORMAL_START = 400
OUTSIDE_WEIGHT = 0.2   # loss weight of latent pixels outside M (inside: 1 + this)


class EMA:
    """Exponential moving average of parameters (decay ramps up as ``(1 + n) / (10 + n)``).

    Not diffusers' ``EMAModel``: its warm-up (``diffusers/training_utils.py``, ``get_decay``) gives decay 0 at
    the first update and ``(1 + s) / (10 + s)`` with ``s = n - 1`` after, one update behind this one, and it
    updates by subtraction; the shipped checkpoint was trained with this average, and its model card
    reproduces it byte for byte only with it."""

    def __init__(self, modules: list[torch.nn.Module], decay: float = 0.999):
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay, self.n = decay, 0

    @torch.no_grad()
    def update(self) -> None:
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        for s, p in zip(self.shadow, self.params):
            s.mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)


def train_denoiser(unet: UNet2DConditionModel, text_encoder: CLIPTextModel, tokens: torch.Tensor,
                   corpora: list[LatentCorpus], alphas_cumprod: torch.Tensor, steps: int,
                   generator: torch.Generator, batch_size: int = 64, lr: float = 1e-3,
                   size_weights: tuple[float, ...] | None = None, progress: bool = False) -> list[float]:
    """Train the inpainting UNet and the text encoder together, then load their EMA weights.

    ``tokens`` (P + 1, 77) are the prompts' token ids, the last one the empty prompt ``""``.
    Each step draws one corpus (image size), a batch, a step ``t`` and noise ``eps``:

    - eq. (1): ``z_t = sqrt(a_t) z_start + sqrt(1 - a_t) eps`` with ``z_start`` the target's latent,
      except that at ``t >= 400`` half the time ``z_start`` is the *normal* image's latent, because
      that is where ``sdgm_generate`` starts (img2img: the normal image noised to strength 0.75,
      t = 626 at 8 DDIM steps). The UNet is then asked for the noise that leads to the *target*,
      ``(z_t - sqrt(a_t) z_target) / sqrt(1 - a_t)``, i.e. to paint the defect over the surface it
      sees rather than restore that surface.
    - the UNet sees ``[z_t, mask, masked-image latent]`` and the text (``""`` 15 % of the time), and
      predicts the noise; the squared error is weighted 1.2 inside M and 0.2 outside, where eq. (6)
      throws the output away (it still has to fit the surroundings at the mask's edge).

    Returns the loss every 50 steps.
    """
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = _warmup_cosine(opt, steps)
    ema = EMA([unet, text_encoder])
    unet.train()
    text_encoder.train()
    size_weights = torch.tensor(size_weights or [1.0] * len(corpora))
    n_prompts = len(tokens) - 1
    log = []
    for step in tqdm(range(steps), desc="UNet + text encoder", disable=not progress, leave=False):
        data = corpora[int(torch.multinomial(size_weights, 1, generator=generator))]
        idx = torch.randint(len(data.prompt), (batch_size,), generator=generator)
        t = torch.randint(0, len(alphas_cumprod), (batch_size,), generator=generator)
        eps = torch.randn(data.target[idx].shape, generator=generator)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        z_target = data.target[idx]
        from_normal = (torch.rand(batch_size, generator=generator) < P_NORMAL_START) & (t >= T_NORMAL_START)
        z_start = torch.where(from_normal.view(-1, 1, 1, 1), data.normal[idx], z_target)
        z_t = a.sqrt() * z_start + (1 - a).sqrt() * eps                              # eq. (1)
        eps_target = (z_t - a.sqrt() * z_target) / (1 - a).sqrt()
        prompt = data.prompt[idx].clone()
        prompt[torch.rand(batch_size, generator=generator) < P_UNCOND] = n_prompts   # ""
        v_p = text_encoder(tokens)[0][prompt]                                        # CLIP text vectors
        inp = torch.cat([z_t, data.mask[idx], data.masked[idx]], dim=1)
        eps_hat = unet(inp, t, encoder_hidden_states=v_p).sample
        w = OUTSIDE_WEIGHT + data.weight[idx]
        loss = (w * (eps_hat - eps_target) ** 2).mean() / w.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.update()
        if step % 50 == 0:
            log.append(loss.item())
    ema.copy_to_params()
    unet.eval()
    text_encoder.eval()
    return log


# ------------------------------------------------------------------------------------------
# All three stages, and the checkpoint folder
# ------------------------------------------------------------------------------------------

RETRAIN_COMMAND = "python -m paper_repro dadnet sdgm-pretrain --out {out} --steps {steps} --seed {seed}"


def pretrain(out_dir: str | Path, *, steps: int = 2800, seed: int = 0, image_size: int = 64,
             batch_size: int = 64, threads: int = 1, progress: bool = True,
             corpus_size: int = 10_000, vae_steps: int = 2_000) -> Path:
    """Build the corpus, train the stand-in and write it to ``out_dir`` as a diffusers folder
    (``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``,
    safetensors weights) plus ``MODEL_CARD.md``. Returns ``out_dir``.

    ``steps`` UNet steps of ``batch_size`` examples; ``image_size`` the main size (``corpus_size``
    examples), trained together with half that size (``corpus_size // 2`` examples, a quarter of
    the steps) so the checkpoint serves both the demo's 64 px and the smoke tests' 32 px.
    The run is a function of ``seed`` (on ``threads`` CPU threads; one by default).
    """
    if image_size < 16 or image_size % 8:
        raise UserError(f"sdgm-pretrain: --image-size {image_size} must be a multiple of 8 and at least 16 "
                        "(the VAE halves it twice, the UNet once more)")
    if not 0 <= seed < 2 ** 32:
        raise UserError(f"sdgm-pretrain: --seed {seed} must be a whole number from 0 to {2 ** 32 - 1}")
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _pretrain_into(out, steps=steps, seed=seed, image_size=image_size, batch_size=batch_size,
                              threads=threads, progress=progress, corpus_size=corpus_size, vae_steps=vae_steps)
    except BaseException:
        if created:   # a failed or interrupted run leaves no half-written checkpoint behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _pretrain_into(out: Path, *, steps: int, seed: int, image_size: int, batch_size: int, threads: int,
                   progress: bool, corpus_size: int, vae_steps: int) -> Path:
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    clock, cpu_clock = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}
    try:
        generator = torch.Generator().manual_seed(seed)
        comps = build_components(out / "tokenizer", seed)
        sizes = (image_size, image_size // 2) if image_size // 2 >= 16 else (image_size,)
        counts = (corpus_size, corpus_size // 2)[:len(sizes)]
        corpora = [build_corpus(n, s, seed=seed, progress=progress) for n, s in zip(counts, sizes)]
        timings["corpus"] = time.perf_counter() - clock

        vae_log = train_vae(comps["vae"], corpora, vae_steps, generator, progress=progress)
        timings["vae"] = time.perf_counter() - clock - sum(timings.values())

        with torch.no_grad():   # latents scaled to unit standard deviation
            probe = _to_unit(corpora[0]["image"][:512])
            std = float(comps["vae"].encode(probe).latent_dist.mode().std())
        scaling_factor = round(1.0 / std, 5)
        comps["vae"].register_to_config(scaling_factor=scaling_factor)
        latents = [encode_corpus(comps["vae"], c, scaling_factor) for c in corpora]
        timings["encode"] = time.perf_counter() - clock - sum(timings.values())

        prompts = [prompt for _, prompt, _ in PROMPT_TABLE] + [""]
        tokens = comps["tokenizer"](prompts, padding="max_length", max_length=77, truncation=True,
                                    return_tensors="pt").input_ids
        alphas_cumprod = comps["scheduler"].alphas_cumprod.float()
        unet_log = train_denoiser(comps["unet"], comps["text_encoder"], tokens, latents, alphas_cumprod,
                                  steps, generator, batch_size=batch_size,
                                  size_weights=(3.0, 1.0)[:len(sizes)], progress=progress)
        timings["unet"] = time.perf_counter() - clock - sum(timings.values())

        for module in (comps["vae"], comps["unet"], comps["text_encoder"]):
            module.requires_grad_(False)
        pipe = StableDiffusionInpaintPipeline(
            vae=comps["vae"], text_encoder=comps["text_encoder"], tokenizer=comps["tokenizer"],
            unet=comps["unet"], scheduler=comps["scheduler"], safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
        pipe.save_pretrained(str(out), safe_serialization=True)
        (out / PROMPTS_FILE).write_text(json.dumps(STANDIN_PROMPTS, indent=1) + "\n")  # prompts_for reads it
        timings["total"] = time.perf_counter() - clock
        timings["total_cpu"] = time.process_time() - cpu_clock   # CPU time of this process
        info = dict(steps=steps, seed=seed, image_size=image_size, sizes=list(sizes),
                    corpus_counts=list(counts), batch_size=batch_size, threads=threads,
                    vae_steps=vae_steps, scaling_factor=scaling_factor, timings=timings,
                    vae_loss=vae_log, unet_loss=unet_log)
        (out / "pretrain.json").write_text(json.dumps(info, indent=1) + "\n")
        write_model_card(out, info)
    finally:
        torch.set_num_threads(previous_threads)
    return out


def write_model_card(out: Path, info: dict) -> Path:
    """``MODEL_CARD.md``: what the checkpoint is, what it learnt from, how to rebuild it."""
    weights = sorted(out.rglob("*.safetensors"))
    weight_bytes = sum(p.stat().st_size for p in weights)
    tokenizer_bytes = sum(p.stat().st_size for p in (out / "tokenizer").rglob("*") if p.is_file())
    t = info["timings"]
    prompt_rows = "\n".join(f"| {fam} | {prompt} | `{defect}` |" for fam, prompt, defect in PROMPT_TABLE)
    lines = [
        "# SDGM stand-in: a small latent-diffusion inpainting model pretrained by paper_repro",
        "",
        "A checkpoint with the parts and folder layout of a Stable Diffusion *inpainting* checkpoint",
        "(CLIP tokenizer and text encoder, AutoencoderKL, 9-channel UNet2DConditionModel, DDIM), small",
        "enough to train on one CPU thread. Load it with `paper_repro.dadnet.sdgm.load_sdgm(folder)`.",
        "It is a **stand-in**: it paints the defects of the project's own procedural renderer, the one",
        "that draws the bundled detection test defects, so pseudo-anomalies made with it are an",
        "optimistic proxy of those Stable Diffusion would make.",
        "",
        "## Retrain",
        "",
        "```",
        RETRAIN_COMMAND.format(out=out.name, steps=info["steps"], seed=info["seed"]),
        "```",
        "",
        f"(`paper_repro.standin.pretrain.pretrain(out, steps={info['steps']}, seed={info['seed']}, "
        f"image_size={info['image_size']}, batch_size={info['batch_size']}, threads={info['threads']})`)",
        "",
        "## Training",
        "",
        f"- seed {info['seed']}, {info['threads']} CPU thread(s); torch {torch.__version__}, diffusers "
        f"{diffusers.__version__}, transformers {transformers.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}",
        f"- wall time {t['total'] / 60:.1f} min (CPU time {t['total_cpu'] / 60:.1f} min): corpus {t['corpus']:.0f} s, VAE {t['vae']:.0f} s "
        f"({info['vae_steps']} steps of 32 crops of 32 px, 70 % centred on a defect), encoding {t['encode']:.0f} s, UNet + text "
        f"encoder {t['unet']:.0f} s ({info['steps']} steps of {info['batch_size']} examples, sizes "
        f"{info['sizes']} drawn 3:1)",
        f"- VAE `scaling_factor` {info['scaling_factor']} (1 / std of the latents of 512 corpus images)",
        f"- final losses: VAE {info['vae_loss'][-1]:.4f}, UNet {sum(info['unet_loss'][-10:]) / 10:.4f} "
        f"(mean of the last 10 logged)",
        "",
        "## Corpus",
        "",
        f"{' + '.join(f'{n} examples at {s} px' for n, s in zip(info['corpus_counts'], info['sizes']))},",
        "prompts in turn. Example k at size S: `corpus_sample(k % 24, S, k // 24, seed)`, drawn from",
        "`np.random.default_rng(np.random.SeedSequence([seed, crc32('sdgm-corpus'), "
        f"{CORPUS_VERSION}, crc32(family), crc32(prompt), crc32(str(S)), crc32(str(k // 24))]))`.",
        "The bundled detection data (`paper_repro.data.synthetic`) seeds each image with",
        "`[seed, crc32(layout), ...]` where layout is `mvtec`, `codebrim`, `normal` or `texture`, and",
        "shorter word lists, so no corpus generator is a bundled one for any pair of seeds.",
        "Each example: a surface of the family (`textures.texture`), the prompt's defect",
        "(`defects.paint`) inside a mask M, light and sensor noise shared by the normal image and the",
        "defective one, and `image = normal * (1 - M) + defective * M`. M is a",
        "`masks.random_mask` blob filled (up to half its area, 1-4 defects) with the defect (60 %), or",
        "one whole defect's ground truth dilated by 1-3 px (40 %).",
        "",
        "| family | prompt | defect painted |",
        "|---|---|---|",
        prompt_rows,
        "",
        "The empty prompt `\"\"` replaces the prompt 15 % of the time (classifier-free guidance).",
        "",
        '## What it has and has not seen',
        '',
        'Seen: the six procedural surface families of the table above, rendered by `textures.texture`, with',
        "the project's defect painters (`defects.paint`), the very painters that draw the bundled test defects.",
        "Not seen: any photograph. The bundled set's photographed categories (brick, grass and gravel, crops of",
        "scikit-image's photographs, `paper_repro.data.photographs`) are neither in its corpus nor among its",
        'prompts: SDGM on them asks for `a <category> surface with a crack`, `... a scratch`, `... a stain` and',
        '`... a hole`, prompts it was never trained on, so on those categories its pseudo-anomalies are what',
        "it makes of an unknown surface, not a proxy that knows the test's defects.",
        '',
        "## Files",
        "",
        f"Weights {weight_bytes / 1e6:.2f} MB (safetensors, float32); the tokenizer's vocabulary and merges "
        f"(`tokenizer/`, CLIP's, as in any Stable Diffusion checkpoint) {tokenizer_bytes / 1e6:.2f} MB more.",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
        *[f"| {p.relative_to(out)} | {p.stat().st_size} | `{file_sha256(p)}` |" for p in weights],
        "",
    ]
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
