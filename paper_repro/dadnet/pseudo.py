"""Training inputs: normal images turned into pseudo-anomalies ``(A, M_g)``.

- DGM (:func:`paper_repro.dadnet.dgm.dgm_anomaly`): drawn fresh every epoch (it is cheap).
- A *bank* of generated images ``D`` with their masks ``M_g``: the expensive part of SDGM (or of
  another generator, such as Defect-GAN in the bridge experiment), generated once and cached on disk
  (:func:`sdgm_bank`, several variants per normal image); each epoch composes eq. (6) from a random
  variant under a random flip and rotation of the pair ``(D, M_g)`` (eight of them), so the
  pseudo-anomalies are fresh every epoch, as DGM's are, not one fixed image per normal for the run.

Every sample draws from its own generator keyed by ``(seed, epoch, index)``, so a run is the same on
resume and under several processes.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from paper_repro.compose import compose
from paper_repro.dadnet.dgm import dgm_anomaly
from paper_repro.dadnet.masks import random_mask, sample_rng
from paper_repro.dadnet.sdgm import SDGMComponents, load_sdgm, prompts_for, sdgm_generate
from paper_repro.data.mvtec import MVTecAD
from paper_repro.runs.cached import cached_tensors
from paper_repro.runs.progress import tqdm


def load_normals(root: str | Path, category: str, image_size: int, limit: int = 0) -> torch.Tensor:
    """The ``train/good`` images of ``category`` (the first ``limit``; 0: all) as one ``(N, 3, S, S)``
    float tensor in [0, 1]."""
    data = MVTecAD(root, category, split="train", image_size=image_size)
    count = min(limit, len(data)) if limit else len(data)
    return torch.stack([data[i]["image"] for i in range(count)])


def sdgm_bank(normals: torch.Tensor, category: str, *, model="tiny", variants: int = 1,
              n_prompts: int = 4, steps: int = 50, strength: float = 0.75, guidance_scale: float = 7.5,
              seed: int = 42, batch_size: int = 4, device: str | torch.device = "cpu",
              progress: bool = True) -> dict[str, torch.Tensor]:
    """SDGM outputs for every normal image, ``variants`` times: ``{"D", "M", "prompt", "index"}``.

    ``D`` (uint8, N*variants x 3 x S x S) are the decoded diffusion images, ``M`` (uint8, ... x 1 x S x S)
    the masks M_g, ``prompt`` which of the category's prompts made each, ``index`` which normal
    image it started from. Cached (:func:`~paper_repro.runs.cached.cached_tensors`), recomputed when SDGM's code changes. ``model`` is a
    model id, a folder, ``"tiny"`` or already loaded :class:`~paper_repro.dadnet.sdgm.SDGMComponents`.
    """
    prompts = prompts_for(category, n_prompts, model)
    loaded = isinstance(model, SDGMComponents)
    key = dict(model=model.source if loaded else str(model), category=category, variants=variants,
               prompts=prompts, steps=steps, strength=strength, guidance=guidance_scale, seed=seed,
               n=len(normals), size=normals.shape[-1],
               normals=float(normals.double().sum()) if len(normals) else 0.0)

    def generate() -> dict[str, torch.Tensor]:
        comps = model if loaded else load_sdgm(model, device=device)
        size = normals.shape[-1]
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
        return {k: torch.cat(v) for k, v in out.items()}

    return cached_tensors("sdgm", key, generate, modules=[__name__])


def dihedral(image: torch.Tensor, turn: int) -> torch.Tensor:
    """``image`` (C, H, W) under the ``turn``-th (0-7) symmetry of the square: quarter turns, then a flip."""
    out = torch.rot90(image, turn % 4, dims=(-2, -1))
    return out.flip(-1) if turn >= 4 else out


class PseudoAnomalies(Dataset):
    """``normals`` (N, 3, S, S) -> items ``{"image": I, "anomalous": A, "mask": M_g}``.

    Without a ``bank`` the pseudo-anomalies are DGM's; with one (the format of :func:`sdgm_bank`)
    they are eq. (6) over its generated images. ``source`` names them in run folders and captions
    (``dgm``, ``sdgm:<checkpoint>``, ...). Half the items (``p_anomaly``) are anomalous; the rest come
    back unchanged with an empty mask, as DRAEM trains. Call :meth:`set_epoch` each epoch for new draws.
    """

    def __init__(self, normals: torch.Tensor, seed: int = 42, bank: dict[str, torch.Tensor] | None = None,
                 p_anomaly: float = 0.5, source: str | None = None):
        self.normals, self.seed, self.p_anomaly, self.bank = normals, seed, p_anomaly, bank
        self.source = source or ("dgm" if bank is None else "bank")
        self.epoch = 0
        if bank is not None:  # variants of each normal image, by index
            self.variants = [torch.nonzero(bank["index"] == i).flatten() for i in range(len(normals))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.normals)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.normals[index]
        rng = sample_rng(self.seed, self.epoch, index)
        if self.bank is None:
            anomalous, mask = dgm_anomaly(image, rng, p_anomaly=self.p_anomaly)
        elif rng.random() >= self.p_anomaly or len(self.variants[index]) == 0:
            anomalous, mask = image, torch.zeros(1, *image.shape[-2:])
        else:
            k = int(self.variants[index][int(rng.integers(len(self.variants[index])))])
            turn = int(rng.integers(8))  # one of the eight flips and rotations of the square
            mask = dihedral(self.bank["M"][k].float(), turn)
            anomalous = compose(image, dihedral(self.bank["D"][k].float() / 255, turn), mask)   # eq. (6)
        return {"image": image, "anomalous": anomalous, "mask": mask}


__all__ = ["load_normals", "sdgm_bank", "dihedral", "PseudoAnomalies"]
