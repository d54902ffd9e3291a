"""Control at inference (§3.1, Figs. 5-6): build the attribute control map A ∈ R^{C×H×W} from
class names and boxes or painted masks, synthesize defects of chosen classes at chosen places on
any normal image (also ones never seen in training), and restore defective images (A = 0).

During training A is a label repeated over space; at inference A may vary over space: the chosen
classes inside the region, 0 (the *normal* target) outside.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from paper_repro.compose import compose
from paper_repro.data.io import IMAGE_SUFFIXES, list_images, read_image
from paper_repro.defect_gan.generator import Generator, GeneratorOutput
from paper_repro.errors import UserError


def class_names(names: Sequence[str], classes: Sequence[str]) -> list[str]:
    """``names`` as the run spells them in ``classes`` (matched case-insensitively, spaces around a
    name ignored); an unknown name is a UserError listing the run's classes."""
    lookup = {c.strip().lower(): c for c in classes}
    chosen = []
    for name in names:
        if name.strip().lower() not in lookup:
            raise UserError(f"unknown defect class {name.strip()!r}: expected one of {', '.join(classes)}")
        chosen.append(lookup[name.strip().lower()])
    return chosen


def class_vector(names: Sequence[str], classes: Sequence[str]) -> torch.Tensor:
    """Multi-hot vector over ``classes`` with ``names`` set (case-insensitive)."""
    index = {c: i for i, c in enumerate(classes)}
    vector = torch.zeros(len(classes))
    for name in class_names(names, classes):
        vector[index[name]] = 1
    return vector


def box_mask(size: int | tuple[int, int], box: Sequence[float] | None) -> torch.Tensor:
    """(1, H, W) map, 1 inside ``box = (x0, y0, x1, y1)`` and 0 outside; the whole image if None.

    Coordinates are pixels; values in [0, 1] (all four) are read as fractions of the image size."""
    h, w = (size, size) if isinstance(size, int) else size
    mask = torch.zeros(1, h, w)
    if box is None:
        return mask + 1
    if len(box) != 4:
        raise UserError(f"region {tuple(box)}: expected four numbers x0, y0, x1, y1")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise UserError(f"region {tuple(box)}: expected finite numbers x0, y0, x1, y1")
    if max(x0, y0, x1, y1) <= 1.0:
        x0, x1, y0, y1 = x0 * w, x1 * w, y0 * h, y1 * h
    x0, x1 = sorted((int(round(x0)), int(round(x1))))
    y0, y1 = sorted((int(round(y0)), int(round(y1))))
    if x1 <= x0 or y1 <= y0 or x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        raise UserError(f"region {tuple(box)} is empty or outside the {w}x{h} image")
    mask[:, max(y0, 0):y1, max(x0, 0):x1] = 1
    return mask


def control_map(names: Sequence[str], classes: Sequence[str], size: int | tuple[int, int],
                box: Sequence[float] | None = None, mask: torch.Tensor | np.ndarray | None = None
                ) -> torch.Tensor:
    """A (C, H, W): the chosen classes inside the region (a box, a painted mask, or everywhere)."""
    if mask is not None:
        region = torch.as_tensor(np.asarray(mask), dtype=torch.float32)
        region = region.reshape(1, *region.shape[-2:])
        if isinstance(size, int) and region.shape[-1] != size or not isinstance(size, int) and tuple(
                region.shape[-2:]) != tuple(size):
            region = torch.nn.functional.interpolate(region[None], size=size, mode="nearest")[0]
    else:
        region = box_mask(size, box)
    return class_vector(names, classes)[:, None, None] * region


@torch.no_grad()
def synthesize(G: Generator, normals: torch.Tensor, control: torch.Tensor,
               restrict: bool = False) -> GeneratorOutput:
    """Deface ``normals`` (N, 3, H, W) in [-1, 1] under ``control`` ((C, H, W), (N, C, H, W) or (N, C)).

    ``restrict=True`` (not in the paper) multiplies the learned map m by the control region, so
    pixels outside it are returned bit for bit; by default only A steers where defects go.
    """
    if control.dim() == 3:
        control = control.unsqueeze(0).expand(len(normals), -1, -1, -1)
    out = G(normals, control)
    if restrict and out.mask is not None and control.dim() == 4:
        region = (control.amax(dim=1, keepdim=True) > 0).to(out.mask.dtype)
        mask = out.mask * region
        return GeneratorOutput(compose(normals, out.foreground, mask), out.foreground, mask)
    return out


@torch.no_grad()
def restore(G: Generator, images: torch.Tensor) -> GeneratorOutput:
    """Restoration (eq. 3-4): the target is *normal*, A = 0 everywhere."""
    return G(images, torch.zeros(len(images), G.num_classes, device=images.device))


def region_change(output: torch.Tensor, source: torch.Tensor, region: torch.Tensor) -> dict[str, float]:
    """Mean |output − input| (in [0, 1] image units) outside and inside a region (1, H, W) or (N, 1, H, W)."""
    diff = ((output - source).abs() / 2).mean(dim=1, keepdim=True)  # [-1, 1] -> [0, 1] units
    region = region.expand_as(diff).bool()
    return {"outside": diff[~region].mean().item() if (~region).any() else float("nan"),
            "inside": diff[region].mean().item() if region.any() else float("nan")}


# ---- image files ------------------------------------------------------------------------------
def model_picture(path: str | Path, size: int) -> Image.Image:
    """The image at ``path`` as a generator of ``size`` px reads it: RGB, resized to ``size`` x ``size`` (bicubic)."""
    return read_image(Path(path), "RGB").resize((size, size), Image.BICUBIC)


def read_images(folder: str | Path, size: int, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Every image in ``folder`` resized to ``size``×``size`` RGB, as (N, 3, H, W) in [-1, 1]."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; expected a folder of normal images "
                        f"({', '.join(IMAGE_SUFFIXES)})")
    files = list_images(folder)[:limit]
    if not files:
        raise UserError(f"{folder}: no images found (expected {', '.join(IMAGE_SUFFIXES)} files)")
    images = []
    for path in files:
        image = model_picture(path, size)
        images.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1))
    return torch.stack(images), [p.stem for p in files]


def file_part(text: str) -> str:
    """``text`` made safe as one part of a file name: every character but letters, digits and ``+-_.``
    becomes ``_``, and it cannot start with a dot. A class name from a run's ``run.json`` or a stem of
    a user's file thus never names another folder (``../x`` becomes ``_._x``)."""
    safe = re.sub(r"[^A-Za-z0-9+\-_.]", "_", str(text))
    return ("_" + safe[1:] if safe.startswith(".") else safe) or "_"


def synthesized_name(index: int, stem: str, classes: Sequence[str]) -> str:
    """``00003_<stem>_Crack+Spallation.png``: the file ``defect-gan synth`` writes for one image."""
    return f"{index:05d}_{file_part(stem)}_{file_part('+'.join(classes))}.png"


def restored_name(stem: str) -> str:
    """``<stem>_restored.png``: the file ``defect-gan restore`` writes for one image."""
    return f"{file_part(stem)}_restored.png"


def write_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write one (3, H, W) image in [-1, 1] as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = ((image.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path)
    return path
