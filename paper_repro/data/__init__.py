"""Data: the bundled synthetic-surfaces set and loaders for the real MVTec AD and CODEBRIM.

The book runs end to end with no download on :func:`bundled_root` (procedural surfaces written in
the published layouts), and on the real data sets when a chapter's ``data_root`` points at them: the
loaders are the same code either way.

- :func:`resolve_data` ``(data_root or None, layout, scale, seed) -> DataSource``: the data set a
  command or chapter reads (``root``, and the ``key`` cached runs remember it by).
- :class:`MVTecAD` ``(root, category, split="train"|"test", image_size=256)``: items ``image``,
  ``mask``, ``label``, ``defect_type``, ``path``.
- :class:`CODEBRIM` ``(root, split="train"|"val"|"test", image_size=128)``: items ``image``,
  ``labels`` (float[6] over :data:`CODEBRIM_CLASSES`), ``path``.
- :class:`NormalPool` ``(root or None, n, image_size, seed)``: extra defect-free images, re-cropped from a
  folder or generated.
- :class:`CODEBRIMOriginals` ``(root)`` and :class:`DefectFreeCrops` ``(originals, n, image_size, seed)``:
  CODEBRIM's original photographs and windows of them that avoid every annotated defect box
  (Defect-GAN §4.1's extra normals); :func:`find_originals` finds the archive next to a data set.
- :mod:`paper_repro.data.io`: every image file read as the 8-bit picture it holds, or refused in one line.
- :mod:`paper_repro.data.synthetic`: ``render(...)``, the writers, :func:`bundled_root`.
"""
from paper_repro.data.codebrim import CODEBRIM, CODEBRIM_CLASSES
from paper_repro.data.mvtec import MVTEC_CATEGORIES, MVTecAD
from paper_repro.data.originals import CODEBRIMOriginals, DefectFreeCrops
from paper_repro.data.pool import NormalPool
from paper_repro.data.roots import DataSource, find_dataset_root, find_originals, resolve_data
from paper_repro.data.synthetic import BUNDLED_CATEGORIES, bundled_root, generator_code, synthesize

__all__ = [
    "resolve_data", "DataSource", "find_dataset_root", "find_originals", "bundled_root", "MVTecAD", "CODEBRIM",
    "CODEBRIM_CLASSES", "NormalPool", "CODEBRIMOriginals", "DefectFreeCrops", "MVTEC_CATEGORIES",
    "BUNDLED_CATEGORIES", "generator_code", "synthesize",
]
