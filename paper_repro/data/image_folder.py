"""Plain folders of images: a team's own data, without MVTec AD's layout.

Three uses, one reader (:func:`find_images`, then :func:`paper_repro.data.io.read_image` per file):

- ``dadnet train --data DIR``: a folder of normal images, searched recursively;
- ``dadnet eval --images DIR --masks DIR --good DIR`` and ``dadnet calibrate --bad DIR --masks DIR``:
  defective images and their masks, matched by relative path and stem (``sub/017.png`` takes
  ``sub/017_mask.png``, MVTec AD's name, or ``sub/017.png`` under the masks folder);
- ``dadnet predict --images PATH``: a folder or one image file.

:class:`ImageFolder` items are those of :class:`~paper_repro.data.mvtec.MVTecAD` (``image``, ``mask``,
``label``, ``defect_type``, ``path``), so every consumer of the MVTec loader reads a folder unchanged.
Construction checks what MVTecAD checks, with the same one-line errors: a folder that is missing or
holds no images, a file that is not a readable image (headers only; cheap), a mask missing for an
image, a mask whose size differs from its image.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from paper_repro.data.io import IMAGE_SUFFIXES, image_size as header_size, image_tensor, mask_tensor, read_image
from paper_repro.data.roots import LAYOUTS, SKIPPED_FOLDERS, find_dataset_root
from paper_repro.errors import UserError

MASK_TAILS = ("_mask", "")  # <stem>_mask.png (MVTec AD's name for a mask) or <stem>.png
FOLDER_LAYOUT = "folder"    # run.json's data_layout of a run trained on a plain folder of normal images


def find_images(path: str | Path, what: str = "images") -> list[Path]:
    """The image files in folder ``path`` and below it (sorted; hidden files and folders, and macOS's
    ``__MACOSX`` trees, skipped), or ``[path]`` for one file. One UserError for a path that does not
    exist or a folder holding no image; ``what`` names the images in it ("normal images", ...)."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path}: no such file or folder; expected a folder of {what} or one image")
    found = sorted(p for p in path.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") or part in SKIPPED_FOLDERS
                               for part in p.relative_to(path).parts))
    if not found:
        raise UserError(f"{path}: no images found in it or below it; expected {what} "
                        f"({', '.join(IMAGE_SUFFIXES)})")
    return found


def relative_name(path: Path, root: Path) -> Path:
    """``path`` relative to the folder ``root`` (its name alone when ``root`` is the file itself)."""
    return path.relative_to(root) if root.is_dir() else Path(path.name)


def find_mask(image: Path, images_root: Path, masks_root: Path) -> Path:
    """The mask of ``image``: at its relative path under ``masks_root``, named ``<stem>_mask`` or
    ``<stem>`` with any image suffix. One UserError when there is none, or more than one."""
    relative = relative_name(image, images_root)
    candidates = [masks_root / relative.parent / f"{relative.stem}{tail}{suffix}"
                  for tail in MASK_TAILS for suffix in IMAGE_SUFFIXES]
    found = [c for c in candidates if c.is_file()]
    if not found:
        expected = masks_root / relative.parent / f"{relative.stem}_mask.png"
        raise UserError(f"{image}: image has no mask; expected {expected} (or {expected.name.replace('_mask', '')} "
                        f"beside it)")
    if len(found) > 1:
        raise UserError(f"{image}: more than one mask fits it ({', '.join(str(f) for f in found)}); keep one")
    return found[0]


class ImageFolder(Dataset):
    """The images of a folder (recursively) or one image file, as a torch ``Dataset``.

    Without ``masks`` every item is normal (label 0, an all-zero mask) unless ``defective``; with
    ``masks`` (a folder mirroring ``root``) every item is defective (label 1) with its mask.
    ``image_size`` S resizes (bilinear; masks nearest), ``None`` keeps each file's size;
    ``min_images`` is how many a use needs (training normalises over batches: 2).
    """

    def __init__(self, root: str | Path, image_size: int | None = 256, masks: str | Path | None = None,
                 defective: bool = False, min_images: int = 1, what: str = "images") -> None:
        self.root = Path(root).expanduser()
        self.image_size = image_size
        self.masks_root = None if masks is None else Path(masks).expanduser()
        self.label = int(defective or masks is not None)
        files = find_images(self.root, what)
        if len(files) < min_images:
            raise UserError(f"{self.root}: {len(files)} image; expected at least {min_images} {what} "
                            "(detectors train on batches, and a batch of one cannot be normalised)")
        if self.masks_root is not None and not self.masks_root.is_dir():
            raise UserError(f"{self.masks_root}: no such folder; expected the masks of the images in {self.root}")
        self.samples: list[tuple[Path, Path | None]] = [
            (path, None if self.masks_root is None else find_mask(path, self.root, self.masks_root))
            for path in files]
        self._check_headers()

    def _check_headers(self) -> None:
        for path, mask in self.samples:
            size = header_size(path)
            msize = size if mask is None else header_size(mask)
            if msize != size:
                raise UserError(f"{mask}: mask is {msize[0]}x{msize[1]} but its image {path.name} is "
                                f"{size[0]}x{size[1]}; expected the same size")

    @property
    def labels(self) -> torch.Tensor:
        return torch.full((len(self),), self.label)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        path, mask_path = self.samples[index]
        image = image_tensor(read_image(path, "RGB"), self.image_size)
        mask = (torch.zeros(1, *image.shape[1:]) if mask_path is None
                else mask_tensor(read_image(mask_path, "L"), self.image_size))
        return {"image": image, "mask": mask, "label": self.label,
                "defect_type": "defective" if self.label else "good", "path": str(path)}

    def __repr__(self) -> str:
        masks = f", masks={self.masks_root}" if self.masks_root else ""
        return f"ImageFolder({self.root}, n={len(self)}, image_size={self.image_size}, label={self.label}{masks})"


def plain_folder(data: str | Path | None) -> Path | None:
    """``data`` as a plain folder of images, or ``None`` when it is no such thing: not given (the
    bundled set), not a folder, or holding a data set of a published layout (:data:`LAYOUTS`: MVTec AD,
    CODEBRIM) at or below it, so that its loader reads it (or says what is wrong with it), and no
    defective test image is ever taken for a normal one. Any ``train/good`` folder, however deep, counts
    as MVTec AD."""
    if data is None:
        return None
    folder = Path(data).expanduser()
    if not folder.is_dir() or next(folder.rglob("train/good"), None) is not None:
        return None
    for layout in LAYOUTS:
        try:
            find_dataset_root(folder, layout)
        except UserError:
            continue
        return None
    return folder


def normal_images(folder: str | Path, image_size: int, limit: int = 0, min_images: int = 1) -> torch.Tensor:
    """The normal images of ``folder`` (the first ``limit``; 0: all) as one ``(N, 3, S, S)`` float
    tensor in [0, 1], as :func:`paper_repro.dadnet.pseudo.load_normals` reads MVTec's ``train/good``."""
    data = ImageFolder(folder, image_size, min_images=min_images, what="normal images")
    count = min(limit, len(data)) if limit else len(data)
    return torch.stack([data[i]["image"] for i in range(count)])


def folder_test_set(images: str | Path, masks: str | Path, good: str | Path | None,
                 image_size: int | None) -> torch.utils.data.ConcatDataset:
    """A test set from folders: the normal images of ``good`` (when given), then the defective
    ``images`` with their ``masks``."""
    parts = [] if good is None else [ImageFolder(good, image_size, what="normal images")]
    parts.append(ImageFolder(images, image_size, masks=masks, what="defective images"))
    return torch.utils.data.ConcatDataset(parts)


__all__ = ["MASK_TAILS", "FOLDER_LAYOUT", "find_images", "relative_name", "find_mask", "ImageFolder", "plain_folder",
           "normal_images", "folder_test_set"]
