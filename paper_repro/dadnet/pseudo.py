"""Training inputs: normal images turned into pseudo-anomalies ``(A, M_g)`` on the fly or from cache.

- ``dgm``: :func:`paper_repro.dadnet.dgm.dgm_anomaly`, drawn fresh every epoch (it is cheap).
- ``sdgm``: the diffusion images ``D`` and masks ``M_g`` are the expensive part, so they are generated
  once per (checkpoint, category, image size, prompts, seed, ...) and cached on disk as a safetensors
  file (:func:`sdgm_bank`); each epoch then composes eq. (6) from a random cached variant.

Every sample draws from its own generator keyed by ``(seed, epoch, index)``, so a run is the same on
resume and under several processes.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from paper_repro.compose import compose
from paper_repro.dadnet.dgm import dgm_anomaly
from paper_repro.dadnet.masks import random_mask, sample_rng

PSEUDO_SOURCES = ("dgm", "sdgm")


def load_normals(root: str | Path, category: str, image_size: int) -> torch.Tensor:
    """All ``train/good`` images of ``category`` as one ``(N, 3, S, S)`` float tensor in [0, 1]."""
    from paper_repro.data import MVTecAD

    data = MVTecAD(root, category, split="train", image_size=image_size)
    return torch.stack([data[i]["image"] for i in range(len(data))])


def sdgm_bank(normals: torch.Tensor, category: str, *, model="tiny", variants: int = 1,
              n_prompts: int = 4, steps: int = 50, strength: float = 0.75, guidance_scale: float = 7.5,
              seed: int = 42, batch_size: int = 4, device: str | torch.device = "cpu",
              cache: bool = True, progress: bool = True) -> dict[str, torch.Tensor]:
    """SDGM outputs for every normal image, ``variants`` times: ``{"D", "M", "prompt", "index"}``.

    ``D`` (uint8, N*variants x 3 x S x S) are the decoded diffusion images, ``M`` (uint8, ... x 1 x S x S)
    the masks M_g, ``prompt`` which of the category's prompts made each, ``index`` which normal
    image it started from. Cached under ``cache_dir()/sdgm/`` when ``cache``. ``model`` is a model
    id, a folder, ``"tiny"`` or already loaded :class:`~paper_repro.dadnet.sdgm.SDGMComponents`.
    """
    from paper_repro.config import cache_dir
    from paper_repro.dadnet.sdgm import SDGMComponents, load_sdgm, prompts_for, sdgm_generate
    from paper_repro.training import config_hash

    prompts = prompts_for(category, n_prompts)
    size = normals.shape[-1]
    loaded = isinstance(model, SDGMComponents)
    key = config_hash(dict(model=model.source if loaded else str(model), category=category, variants=variants, prompts=prompts,
                           steps=steps, strength=strength, guidance=guidance_scale, seed=seed,
                           n=len(normals), size=size,
                           normals=float(normals.double().sum()) if len(normals) else 0.0))
    path = cache_dir() / "sdgm" / f"{category}-{key}.safetensors"
    if cache and path.is_file():
        return load_file(str(path))
    comps = model if loaded else load_sdgm(model, device=device)
    jobs = [(v, i) for v in range(variants) for i in range(len(normals))]
    out: dict[str, list[torch.Tensor]] = {"D": [], "M": [], "prompt": [], "index": []}
    generator = torch.Generator().manual_seed(seed)
    for start in tqdm(range(0, len(jobs), batch_size), desc=f"SDGM {category}", disable=not progress):
        batch = jobs[start:start + batch_size]
        rngs = [sample_rng(seed, v, i) for v, i in batch]
        masks = torch.stack([random_mask(size, rng) for rng in rngs])
        which = [int(rng.integers(len(prompts))) for rng in rngs]
        images = normals[[i for _, i in batch]]
        _, defect = sdgm_generate(comps, images, masks, [prompts[p] for p in which], steps=steps,
                                  strength=strength, guidance_scale=guidance_scale, generator=generator)
        out["D"].append((defect.cpu() * 255).round().to(torch.uint8))
        out["M"].append(masks.to(torch.uint8))
        out["prompt"].append(torch.tensor(which))
        out["index"].append(torch.tensor([i for _, i in batch]))
    bank = {k: torch.cat(v).contiguous() for k, v in out.items()}
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(bank, str(tmp))
        tmp.replace(path)
    return bank


class PseudoAnomalies(Dataset):
    """``normals`` (N, 3, S, S) -> items ``{"image": I, "anomalous": A, "mask": M_g}``.

    With ``source="sdgm"`` a ``bank`` from :func:`sdgm_bank` is required. Half the items (``p_anomaly``)
    are anomalous; the rest come back unchanged with an empty mask, as DRAEM trains.
    Call :meth:`set_epoch` each epoch for new draws.
    """

    def __init__(self, normals: torch.Tensor, source: str = "dgm", seed: int = 42,
                 bank: dict[str, torch.Tensor] | None = None, p_anomaly: float = 0.5):
        if source not in PSEUDO_SOURCES:
            raise ValueError(f"unknown pseudo-anomaly source {source!r}: expected dgm or sdgm")
        if source == "sdgm" and bank is None:
            raise ValueError("source='sdgm' needs a bank from sdgm_bank()")
        self.normals, self.source, self.seed, self.p_anomaly = normals, source, seed, p_anomaly
        self.epoch = 0
        if bank is not None:  # variants of each normal image, by index
            self.bank = bank
            self.variants = [torch.nonzero(bank["index"] == i).flatten() for i in range(len(normals))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.normals)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.normals[index]
        rng = sample_rng(self.seed, self.epoch, index)
        if self.source == "dgm":
            anomalous, mask = dgm_anomaly(image, rng, p_anomaly=self.p_anomaly)
        elif rng.random() >= self.p_anomaly or len(self.variants[index]) == 0:
            anomalous, mask = image, torch.zeros(1, *image.shape[-2:])
        else:
            k = int(self.variants[index][int(rng.integers(len(self.variants[index])))])
            mask = self.bank["M"][k].float()
            anomalous = compose(image, self.bank["D"][k].float() / 255, mask)   # eq. (6)
        return {"image": image, "anomalous": anomalous, "mask": mask}
