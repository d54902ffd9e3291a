"""Applying a trained DADNet to a team's own images: ``dadnet predict``.

Each image is read as the loaders read it (:func:`paper_repro.data.io.read_image`: any size, grayscale,
RGBA, palette, 16-bit), resized to the run's square input, and passed through both stages exactly as
``dadnet eval`` passes its test set (:func:`paper_repro.dadnet.evaluate.anomaly_maps`); its score is
eval's too (:func:`~paper_repro.dadnet.evaluate.image_scores`, at the model's resolution). The map M_p
is then resized back to the image's own size (bilinear) for what is written to ``--out``::

    scores.csv                   one row per image found, read or not (CSV_COLUMNS)
    maps/<relative path>.png     M_p as a 16-bit grayscale PNG (0..65535 for probability 0..1)
    masks/<relative path>.png    M_p >= the pixel threshold, 0 / 255
    overlays/<relative path>.png the image, M_p as a colour heat map over it, the mask's outline

Output names mirror the images' paths below ``--images``, so ``a/001.png`` and ``b/001.png`` do not
collide (nor ``001.png`` and ``001.jpg``: those keep their suffix, ``001.jpg.png``). Every file is
written atomically: an interrupted run leaves earlier outputs whole. An image that cannot be read is a
row with its reason, and the others go on.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image, ImageChops, ImageFilter

from paper_repro.dadnet.calibrate import DEFAULT_THRESHOLD, default_description, describe, read_thresholds
from paper_repro.dadnet.evaluate import anomaly_maps, image_scores
from paper_repro.dadnet.trainer import load_model
from paper_repro.data.image_folder import find_images, relative_name
from paper_repro.data.io import image_tensor, read_image
from paper_repro.errors import UserError
from paper_repro.runs.checkpoints import atomic_write
from paper_repro.runs.devices import resolve_device
from paper_repro.runs.progress import tqdm

CSV_NAME = "scores.csv"
CSV_COLUMNS = ("path", "status", "reason", "width", "height", "image_score", "decision", "image_threshold",
               "pixel_threshold", "map", "mask", "overlay")
OUTPUT_FOLDERS = {"map": "maps", "mask": "masks", "overlay": "overlays"}  # CSV column: folder
HEAT_MAP = "inferno"          # matplotlib colour map of the overlay
HEAT_OPACITY = 0.5            # the heat map's weight over the image
OUTLINE_COLOUR = (0, 255, 0)  # the mask's outline on the overlay


@dataclass(frozen=True)
class Thresholds:
    """The two cuts a prediction applies, and one line saying where they came from."""

    image: float
    pixel: float
    source: str


def resolve_thresholds(run_dir: str | Path, threshold: str | float = "auto") -> Thresholds:
    """``"auto"``: the run's calibration (``thresholds.json``), else :data:`DEFAULT_THRESHOLD`; a number:
    that value for both image scores and pixels."""
    if threshold != "auto":
        value = float(threshold)
        return Thresholds(value, value, f"threshold {value:g} (--threshold) for image scores and pixels")
    record = read_thresholds(run_dir)
    if record is None:
        return Thresholds(DEFAULT_THRESHOLD, DEFAULT_THRESHOLD, default_description(run_dir))
    return Thresholds(record["image"]["threshold"], record["pixel"]["threshold"], describe(record, run_dir))


def output_names(relative_paths: list[Path]) -> list[Path]:
    """One ``.png`` name per image, mirroring its relative path; images whose paths differ only by
    their suffix keep it (``001.jpg`` -> ``001.jpg.png``)."""
    plain = [p.with_suffix(".png") for p in relative_paths]
    taken = Counter(plain)
    return [name if taken[name] == 1 else p.with_name(p.name + ".png") for name, p in zip(plain, relative_paths)]


def heat_overlay(picture: Image.Image, anomaly_map: np.ndarray, mask: Image.Image) -> Image.Image:
    """``picture`` (RGB) with ``anomaly_map`` (H, W in [0, 1]) as a colour heat map over it and the
    outline of ``mask`` (its morphological gradient, 2 px wide) drawn on top."""
    heat = colormaps[HEAT_MAP](anomaly_map)[..., :3] * 255
    blended = (1 - HEAT_OPACITY) * np.asarray(picture, dtype=np.float64) + HEAT_OPACITY * heat
    overlay = Image.fromarray(np.rint(blended).astype(np.uint8), "RGB")
    outline = ImageChops.difference(mask.filter(ImageFilter.MaxFilter(3)), mask.filter(ImageFilter.MinFilter(3)))
    overlay.paste(OUTLINE_COLOUR, mask=outline)
    return overlay


def save_png(image: Image.Image, path: Path) -> None:
    """Write ``image`` as PNG at ``path`` atomically (an earlier file stays whole if this fails)."""
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def write_outputs(picture: Image.Image, small_map: torch.Tensor, pixel_threshold: float, out: Path,
                  name: Path) -> dict[str, str]:
    """The map, mask and overlay of one image at its own size; returns their paths relative to ``out``."""
    width, height = picture.size
    full = F.interpolate(small_map[None], size=(height, width), mode="bilinear", align_corners=False)
    anomaly_map = full[0, 0].clamp(0, 1).numpy()
    mask = Image.fromarray(np.where(anomaly_map >= pixel_threshold, 255, 0).astype(np.uint8), "L")
    images = {"map": Image.fromarray(np.rint(anomaly_map * 65535).astype(np.uint16)),  # mode I;16
              "mask": mask, "overlay": heat_overlay(picture, anomaly_map, mask)}
    for key, image in images.items():
        save_png(image, out / OUTPUT_FOLDERS[key] / name)
    return {key: str(Path(OUTPUT_FOLDERS[key]) / name) for key in images}


def write_csv(rows: list[dict], path: Path) -> None:
    """``rows`` as a CSV of :data:`CSV_COLUMNS` at ``path``, written atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    atomic_write(path, write)


def predict_images(run_dir: str | Path, images: str | Path, out: str | Path, threshold: str | float = "auto",
                   device: str = "cpu", batch_size: int | None = None, progress: bool = True,
                   announce=print) -> list[dict]:
    """Predict every image of ``images`` (a folder, searched recursively, or one file) with the run's
    latest checkpoint; write ``out`` as the module docstring says; return the CSV rows.

    Everything that can be refused (the images' path, the run's checkpoint, its thresholds) is checked
    before ``out`` is touched; ``announce`` receives the line saying which thresholds apply."""
    images, out = Path(images).expanduser(), Path(out).expanduser()
    files = [path for path in find_images(images, "images to inspect")
             if out.resolve() not in path.resolve().parents]  # not the outputs of an earlier run into --images
    if not files:
        raise UserError(f"{images}: holds no images besides the outputs in {out}; expected images to inspect")
    device = resolve_device(device)
    model, cfg, _ = load_model(run_dir, device)
    cuts = resolve_thresholds(run_dir, threshold)
    announce(cuts.source)
    names = output_names([relative_name(path, images) for path in files])
    rows: list[dict] = []
    batch_size = batch_size or cfg.batch_size
    with tqdm(total=len(files), desc="DADNet predict", unit="image", leave=False, disable=not progress) as bar:
        for start in range(0, len(files), batch_size):
            batch = list(zip(files[start:start + batch_size], names[start:start + batch_size]))
            rows += _predict_batch(model, cfg.image_size, batch, cuts, out, device)
            bar.update(len(batch))
    write_csv(rows, out / CSV_NAME)
    return rows


def _predict_batch(model, image_size: int, batch: list[tuple[Path, Path]], cuts: Thresholds, out: Path,
                   device) -> list[dict]:
    """CSV rows of one batch, in order: the images read are scored and written, the others get a reason."""
    rows, pictures = [], {}
    for index, (path, _) in enumerate(batch):
        try:
            pictures[index] = read_image(path, "RGB")
        except UserError as err:
            rows.append({"path": str(path), "status": "failed", "reason": str(err)})
            continue
        rows.append({"path": str(path), "status": "ok", "reason": ""})
    if pictures:
        tensors = torch.stack([image_tensor(picture, image_size) for picture in pictures.values()])
        _, maps = anomaly_maps(model, tensors, device)
        for (index, picture), small_map, score in zip(pictures.items(), maps, image_scores(maps).tolist()):
            rows[index].update(
                width=picture.width, height=picture.height, image_score=score,
                decision="anomalous" if score >= cuts.image else "normal",
                image_threshold=cuts.image, pixel_threshold=cuts.pixel,
                **write_outputs(picture, small_map, cuts.pixel, out, batch[index][1]))
    return rows


__all__ = ["CSV_NAME", "CSV_COLUMNS", "OUTPUT_FOLDERS", "HEAT_MAP", "Thresholds", "resolve_thresholds",
           "output_names", "heat_overlay", "write_outputs", "write_csv", "predict_images"]
