"""Data: the bundled synthetic-surfaces set and loaders for the real MVTec AD and CODEBRIM.

The book runs end to end with no download on :func:`bundled_root` (procedural surfaces written in
the published layouts), and on the real data sets when a chapter's ``data_root`` points at them: the
loaders are the same code either way.

- :func:`bundled_root` ``(layout, scale, seed=42) -> Path``: the cached bundled set's root.
- :class:`MVTecAD` ``(root, category, split="train"|"test", image_size=256)``: items ``image``,
  ``mask``, ``label``, ``defect_type``, ``path``.
- :class:`CODEBRIM` ``(root, split="train"|"val"|"test", image_size=128)``: items ``image``,
  ``labels`` (float[6] over :data:`CODEBRIM_CLASSES`), ``path``.
- :class:`NormalPool` ``(root or None, n, image_size, seed)``: extra defect-free images.
- :func:`find_dataset_root` ``(data_root, layout)``: a data set under a user's ``--data-root``.
- :mod:`paper_repro.data.synthetic`: ``texture(family, size, seed)``, ``render(...)``, the writers.
"""
from paper_repro.data.codebrim import CODEBRIM, CODEBRIM_CLASSES
from paper_repro.data.mvtec import MVTEC_CATEGORIES, MVTecAD
from paper_repro.data.pool import NormalPool
from paper_repro.data.roots import find_dataset_root
from paper_repro.data.synthetic import (BUNDLED_CATEGORIES, GENERATOR_VERSION, bundled_root,
                                        synthesize, texture)

__all__ = [
    "bundled_root", "MVTecAD", "CODEBRIM", "CODEBRIM_CLASSES", "NormalPool", "MVTEC_CATEGORIES",
    "BUNDLED_CATEGORIES", "GENERATOR_VERSION", "synthesize", "texture", "find_dataset_root",
]
