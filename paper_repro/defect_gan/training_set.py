"""A ready training set from Defect-GAN (issue 32): defects of chosen classes synthesized on a folder of
one's own normal images, written in CODEBRIM's classification layout or as one folder per class.

What ``python -m paper_repro defect-gan synth --layout codebrim|folders`` writes::

    codebrim                                        folders
    SYNTHETIC.json                                  SYNTHETIC.json
    train|val|test/defects/00000_<normal>_Crack.png  train|val|test/Crack/00000_<normal>_Crack.png
    train|val|test/background/..._Background.png    train|val|test/Background/..._Background.png
    metadata/defects.xml, metadata/background.xml   masks/train|val|test/Crack/00000_<normal>_Crack.png
    masks/train|val|test/defects/<image's name>     maps/train|val|test/Crack/00000_<normal>_Crack.png
    maps/train|val|test/defects/<image's name>

The codebrim layout is read by :class:`~paper_repro.data.CODEBRIM` unchanged; each folder ``train``,
``val``, ``test`` of the folders layout by torchvision's ``ImageFolder``. The rules:

- **Normals.** Every image file in ``--normals`` or below it (hidden files and folders skipped), or the one
  file it names, that :func:`~paper_repro.data.io.read_image` reads, resized to the run's square image
  size; files it cannot read are skipped and listed.
- **Label sets.** Each comma-separated entry of ``--classes`` is one label set; ``+`` joins classes that
  appear together in one image: ``Crack,Spallation,Crack+Efflorescence`` makes three. In the folders
  layout a label set is one folder (``Crack+Efflorescence/``), so every image has exactly one.
- **Splits.** The normals are shuffled (seeded) into train, val and test, :data:`HELD_OUT` of them in
  val and again in test (at least one each), and every defect painted on a normal lands in that normal's
  split: nothing seen in training is evaluated on. Val and test each get :data:`HELD_OUT` of the defect
  images, at least one per label set; train gets the rest. Every split thus holds every label set, so
  ``ImageFolder`` numbers the classes alike in each.
- **Pairing.** Defect image ``j`` of a split carries label set ``j mod L``, on the split's normals taken
  in seeded shuffled passes (each normal once before any is used again).
- **Background.** Every normal is also written once as it is (resized), labelled Background: CODEBRIM's
  ``background/`` crops, the ``Background`` folder of the folders layout.
- **Masks.** Beside each defect image, at the same path under ``masks/``, the control map's region
  (white where the classes were asked for: the whole image unless a region or mask was given), and under
  ``maps/`` the generator's spatial map m_d (where it painted, in grey levels), both the image's size.
- **Marker.** ``SYNTHETIC.json`` (the file name the bundled data sets use) names the run, the label sets,
  the seed and the skipped files, with a digest of every file, so the set is never taken for real data.
  Its ``generator`` is this module, not the bundled data's, so ``data synth --force`` never replaces it
  and Defect-GAN trained on it does not take it for procedural surfaces.

:func:`write_training_set` writes into a hidden sibling of the output folder and renames it when complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from paper_repro.data.codebrim import CODEBRIM_CLASSES, KINDS, SPLITS
from paper_repro.data.image_folder import find_images, relative_name
from paper_repro.data.synthetic import MARKER, write_codebrim_xml
from paper_repro.defect_gan.control import (class_names, control_map, file_part, model_picture, synthesize,
                                            synthesized_name, write_image)
from paper_repro.defect_gan.generator import Generator
from paper_repro.errors import UserError
from paper_repro.runs.cached import file_digests
from paper_repro.runs.checkpoints import current_umask, disk_full, disk_full_errno
from paper_repro.runs.progress import tqdm

LAYOUTS = ("codebrim", "folders")
BACKGROUND = CODEBRIM_CLASSES[0]          # the label of a normal image, in both layouts
DEFECTS_KIND, BACKGROUND_KIND = KINDS     # CODEBRIM's folders (and metadata files): defects/, background/
HELD_OUT = 0.1                            # share of the normals and of the defect images in val, and in test
PER_LABEL_SET = 10                        # defect images per label set when --n is not given
WRITER = __name__                         # what the marker names as the set's writer


# ---- what to write ----------------------------------------------------------------------------------
def label_sets(entries: Sequence[str], classes: Sequence[str], layout: str) -> list[tuple[str, ...]]:
    """The label sets of ``--classes`` entries (``"Crack+Spallation"`` is one set of two), each in the
    run's class order, duplicates dropped. For the codebrim layout every class must be one of CODEBRIM's."""
    sets = []
    for entry in entries:
        chosen = set(class_names(entry.split("+"), classes))
        sets.append(tuple(c for c in classes if c in chosen))
    sets = list(dict.fromkeys(sets))
    foreign = [c for s in sets for c in s if c not in CODEBRIM_CLASSES[1:]]
    if layout == "codebrim" and foreign:
        raise UserError(f"class {foreign[0]!r} of this run is not one of CODEBRIM's defect classes "
                        f"({', '.join(CODEBRIM_CLASSES[1:])}); expected --layout folders for it")
    return sets


def defect_counts(n: int, n_sets: int) -> dict[str, int]:
    """Defect images per split: val and test :data:`HELD_OUT` of ``n`` each, at least one per label set."""
    held = max(n_sets, round(n * HELD_OUT))
    if n - 2 * held < n_sets:
        raise UserError(f"--n {n}: too few images for {n_sets} label set(s) in each of train, val and test; "
                        f"expected at least {3 * n_sets}")
    return {"train": n - 2 * held, "val": held, "test": held}


def split_normals(m: int, seed: int) -> dict[str, list[int]]:
    """The normals (indices) of each split: a seeded shuffle, :data:`HELD_OUT` in val and in test."""
    if m < len(SPLITS):
        raise UserError(f"{m} readable normal image(s); a train/val/test split needs at least {len(SPLITS)}")
    order = torch.randperm(m, generator=torch.Generator().manual_seed(seed)).tolist()
    held = max(1, round(m * HELD_OUT))
    return {"train": sorted(order[2 * held:]), "val": sorted(order[:held]), "test": sorted(order[held:2 * held])}


@dataclass(frozen=True)
class Entry:
    """One image of the set: its split, the normal it starts from, its labels, the number in its name."""
    split: str
    normal: int
    labels: tuple[str, ...]
    index: int

    @property
    def is_background(self) -> bool:
        return self.labels == (BACKGROUND,)


def plan(m: int, n: int, sets: Sequence[tuple[str, ...]], seed: int) -> list[Entry]:
    """Every image of the set, defects first, by the module's splitting and pairing rules."""
    normals, counts = split_normals(m, seed), defect_counts(n, len(sets))
    defects = []
    for s, split in enumerate(SPLITS):
        pool = torch.tensor(normals[split])
        draw = torch.Generator().manual_seed(seed * len(SPLITS) + s + 1)
        passes = -(-counts[split] // len(pool))
        order = torch.cat([pool[torch.randperm(len(pool), generator=draw)] for _ in range(passes)]).tolist()
        defects += [(split, order[j], tuple(sets[j % len(sets)])) for j in range(counts[split])]
    background = [(split, i, (BACKGROUND,)) for split in SPLITS for i in normals[split]]
    return [Entry(*spec, index=k) for k, spec in enumerate(defects + background)]


def relative_path(entry: Entry, layout: str, stem: str) -> str:
    """Where an entry's image goes below the set's root; its mask and map go to the same path under
    ``masks/`` and ``maps/``."""
    if layout == "codebrim":
        folder = BACKGROUND_KIND if entry.is_background else DEFECTS_KIND
    else:
        folder = file_part("+".join(entry.labels))
    return f"{entry.split}/{folder}/{synthesized_name(entry.index, stem, entry.labels)}"


# ---- reading the normals ----------------------------------------------------------------------------
@dataclass
class Normals:
    """The readable normal images of a folder: ``pixels`` (M, 3, S, S) uint8, ``names`` (paths relative
    to the folder), and ``skipped``: ``(relative path, why)`` of each file that could not be read."""
    pixels: torch.Tensor
    names: list[str]
    skipped: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.names)


def read_normals(folder: str | Path, size: int, progress: bool = True) -> Normals:
    """Every image in ``folder`` or below it (:func:`~paper_repro.data.image_folder.find_images`) that can be
    read, resized as :func:`~paper_repro.defect_gan.control.model_picture` resizes for the generator;
    the others are skipped and named. A missing folder, one without images, or one whose images all fail
    to read is one UserError."""
    folder = Path(folder).expanduser()
    files = find_images(folder, "normal images")
    pixels, names, skipped = [], [], []
    for path in tqdm(files, desc="reading normals", unit="img", leave=False, disable=not progress):
        name = relative_name(path, folder).as_posix()
        try:
            picture = model_picture(path, size)
        except UserError as err:
            skipped.append((name, str(err).removeprefix(f"{path}: ")))
            continue
        pixels.append(torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy()).permute(2, 0, 1))
        names.append(name)
    if not pixels:
        raise UserError(f"{folder}: none of its {len(files)} image(s) can be read (e.g. {skipped[0][0]}: "
                        f"{skipped[0][1]})")
    return Normals(torch.stack(pixels), names, skipped)


def skipped_line(normals: Normals, shown: int = 3) -> str:
    """One line naming the files that could not be read, and why, without what the reader expected ("" if
    none; the marker keeps every file's whole reason)."""
    if not normals.skipped:
        return ""
    total = len(normals) + len(normals.skipped)
    named = "; ".join(f"{name} ({why.split('; expected')[0]})" for name, why in normals.skipped[:shown])
    more = f"; and {len(normals.skipped) - shown} more" if len(normals.skipped) > shown else ""
    return f"skipped {len(normals.skipped)} of {total} normal images that cannot be read: {named}{more}"


# ---- the output folder ------------------------------------------------------------------------------
def check_out(out: Path) -> None:
    """``out`` must be a new or an empty folder: a set is never written over another (one UserError)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UserError(f"--out {out}: is a {'symbolic link' if out.is_symlink() else 'file'}; expected a new "
                        f"or empty folder for the training set")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out}: already holds {_what_is_in(out)}; expected a new or empty folder "
                        f"(nothing was changed: choose another folder or remove this one)")


def _what_is_in(folder: Path) -> str:
    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{sum(1 for _ in folder.iterdir())} entries"
    if isinstance(info, dict) and info.get("generator") == WRITER:
        return (f"a training set synthesized by the run {info.get('run')} ({', '.join(info.get('classes', []))}, "
                f"seed {info.get('seed')})")
    return f"a data set this project generated ({MARKER})"


# ---- writing ----------------------------------------------------------------------------------------
def _save_gray(values: torch.Tensor, path: Path) -> None:
    """A (H, W) map in [0, 1] as an 8-bit grayscale PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (values.detach().float().cpu().clamp(0, 1) * 255).round().byte().numpy()
    Image.fromarray(array).save(path)


def _save_normal(pixels: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(path)


def _write_images(G: Generator, classes: Sequence[str], normals: Normals, entries: list[Entry], layout: str,
                  root: Path, region: Sequence[float] | None, mask: np.ndarray | None, restrict: bool,
                  device: str | torch.device, batch_size: int, progress: bool) -> dict[str, Entry]:
    """Write every entry's image (and a defect's mask and map) below ``root``; ``{relative path: entry}``."""
    size = normals.pixels.shape[-1]
    stems = [Path(name).with_suffix("").as_posix() for name in normals.names]
    paths = {e.index: relative_path(e, layout, stems[e.normal]) for e in entries}
    controls = {labels: control_map(labels, classes, size, box=region, mask=mask)
                for labels in {e.labels for e in entries if not e.is_background}}
    defects = [e for e in entries if not e.is_background]
    with tqdm(total=len(entries), desc="synthesizing", unit="img", leave=False, disable=not progress) as bar:
        for start in range(0, len(defects), batch_size):
            batch = defects[start:start + batch_size]
            images = normals.pixels[[e.normal for e in batch]].float().div(127.5).sub(1).to(device)
            control = torch.stack([controls[e.labels] for e in batch]).to(device)
            result = synthesize(G, images, control, restrict=restrict)
            for k, entry in enumerate(batch):
                write_image(result.image[k], root / paths[entry.index])
                _save_gray((control[k].amax(dim=0) > 0).float(), root / "masks" / paths[entry.index])
                if result.mask is not None:   # a run without LWC has no map m_d
                    _save_gray(result.mask[k, 0], root / "maps" / paths[entry.index])
            bar.update(len(batch))
        for entry in (e for e in entries if e.is_background):
            _save_normal(normals.pixels[entry.normal], root / paths[entry.index])
            bar.update()
    return {paths[e.index]: e for e in entries}


def _write_metadata(root: Path, written: dict[str, Entry]) -> None:
    """CODEBRIM's ``metadata/defects.xml`` and ``metadata/background.xml``: one record per image."""
    records: dict[str, list] = {kind: [] for kind in KINDS}
    for path, entry in written.items():
        kind = BACKGROUND_KIND if entry.is_background else DEFECTS_KIND
        records[kind].append((Path(path).name, [int(c in entry.labels) for c in CODEBRIM_CLASSES]))
    (root / "metadata").mkdir()
    for kind, recs in records.items():
        write_codebrim_xml(root / "metadata" / f"{kind}.xml", recs)


def write_training_set(G: Generator, classes: Sequence[str], normals: Normals, out: str | Path, layout: str,
                       sets: Sequence[tuple[str, ...]], n: int, seed: int, info: dict | None = None, *,
                       region: Sequence[float] | None = None, mask: np.ndarray | None = None,
                       restrict: bool = False, device: str | torch.device = "cpu", batch_size: int = 16,
                       progress: bool = True) -> dict[str, dict[str, int]]:
    """Write the set (module docstring) to ``out``, a new or empty folder, atomically: into a hidden
    sibling first, renamed when complete (an interruption, or a disk that fills up, leaves ``out`` as it
    was). ``info`` (the run, ...) goes into the marker. Returns ``{split: {"defects": d, "background": b}}``."""
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    out = Path(out).expanduser()
    check_out(out)
    entries = plan(len(normals), n, sets, seed)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as err:
        raise UserError(f"--out {out}: cannot create it ({err.strerror or err})") from None
    try:
        written = _write_images(G, classes, normals, entries, layout, tmp, region, mask, restrict, device,
                                batch_size, progress)
        if layout == "codebrim":
            _write_metadata(tmp, written)
        counts = {split: {"defects": sum(not e.is_background for e in entries if e.split == split),
                          "background": sum(e.is_background for e in entries if e.split == split)}
                  for split in SPLITS}
        marker = {"generator": WRITER, "synthetic": True, **(info or {}), "layout": layout, "seed": seed,
                  "classes": ["+".join(s) for s in sets], "background": BACKGROUND, "splits": counts,
                  "image_size": int(normals.pixels.shape[-1]), "region": list(region) if region else None,
                  "restrict": restrict, "skipped": [{"path": p, "why": why} for p, why in normals.skipped],
                  "files": file_digests(tmp, [MARKER])}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o777 & ~current_umask())   # mkdtemp's folder is private; the set gets the usual rights
        if out.exists():
            out.rmdir()   # check_out allowed only an empty folder
        os.replace(tmp, out)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        code = disk_full_errno(err)
        if code is not None:   # the disk filled up while writing: one line, and out as it was
            raise disk_full(out, code) from None
        raise
    return counts


__all__ = ["LAYOUTS", "BACKGROUND", "HELD_OUT", "PER_LABEL_SET", "WRITER", "label_sets", "defect_counts",
           "split_normals", "Entry", "plan", "relative_path", "Normals", "read_normals",
           "skipped_line", "check_out", "write_training_set"]
