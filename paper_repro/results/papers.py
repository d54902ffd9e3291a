"""The papers' reported numbers as data: every row of every results table of both papers, each
citing the table it comes from. :mod:`paper_repro.results.tables` sets this project's numbers beside them.
"""
from __future__ import annotations

import pandas as pd

DEFECT_GAN = "Defect-GAN (Zhang et al., WACV 2021)"
DADNET = "DADNet (Zeng et al., J. GDUT 2025)"

# ------------------------------------------------------------------------------------------
# Defect-GAN, CODEBRIM, 128x128
# ------------------------------------------------------------------------------------------
# Table 1: FID (lower is better). Blocks: direct synthesis, image-to-image, the ideal synthesizer
# (the paper, §4.1: FID between two random groups of the real defect samples).
_DG_TABLE1 = [
    ("direct synthesis", "StackGAN++", 111.1),
    ("direct synthesis", "Conditional StackGAN++", 132.1),
    ("direct synthesis", "StyleGAN v2", 148.2),
    ("direct synthesis", "StyleGAN v2 + DiffAug", 142.4),
    ("image-to-image", "CycleGAN", 94.5),
    ("image-to-image", "StarGAN", 295.1),
    ("image-to-image", "StarGAN + SPADE", 103.0),
    ("image-to-image", "Defect-GAN", 65.6),
    ("reference", "Ideal Defect Synthesizer", 25.0),
]

# Table 2: ablation. SCC spatial & categorical control, ANI adaptive noise injection,
# LWC layer-wise composition, SC spatial constraints (eq. 9-10). FID, lower is better.
_DG_TABLE2 = [
    (False, False, False, False, 295.1),
    (True, False, False, False, 103.0),
    (True, True, False, False, 99.7),
    (True, False, True, False, 76.8),
    (True, False, True, True, 69.5),
    (True, True, True, True, 65.6),
]

# Table 3: CODEBRIM defect classification accuracy (%) with 50,000 synthesized samples added.
_DG_TABLE3 = [
    ("ResNet34", "None", 70.25),
    ("ResNet34", "Conditional StackGAN++", 62.59),
    ("ResNet34", "StarGAN + SPADE", 71.90),
    ("ResNet34", "Defect-GAN", 75.48),
    ("DenseNet121", "None", 70.77),
    ("DenseNet121", "Conditional StackGAN++", 58.68),
    ("DenseNet121", "StarGAN + SPADE", 72.61),
    ("DenseNet121", "Defect-GAN", 75.79),
]

# ------------------------------------------------------------------------------------------
# DADNet, MVTec AD, 256x256, mean of 3 runs (%)
# ------------------------------------------------------------------------------------------
DADNET_METHODS = ("FastFlow", "PaDiM", "RD", "STFPM", "DADNet")
DADNET_CATEGORIES = ("carpet", "leather", "tile", "wood", "bottle", "toothbrush", "cable", "screw")

_DADNET_PER_CATEGORY = {
    # Table 1: image AUROC
    "image_auroc": {
        "carpet": (97.9, 99.8, 99.6, 95.4, 95.8),
        "leather": (100.0, 100.0, 87.8, 98.9, 100.0),
        "tile": (96.7, 98.1, 83.3, 94.9, 99.1),
        "wood": (97.8, 99.2, 98.9, 96.1, 99.8),
        "bottle": (100.0, 99.9, 99.8, 97.9, 99.4),
        "toothbrush": (84.4, 96.1, 96.7, 99.7, 99.1),
        "cable": (89.1, 92.7, 98.2, 83.8, 94.4),
        "screw": (52.1, 85.8, 77.8, 83.5, 99.9),
        "average": (89.8, 96.5, 92.8, 93.8, 98.4),
    },
    # Table 2: pixel AUROC
    "pixel_auroc": {
        "carpet": (98.3, 99.0, 98.9, 98.6, 97.5),
        "leather": (99.6, 99.0, 98.4, 99.1, 99.3),
        "tile": (94.4, 94.1, 86.7, 94.6, 98.3),
        "wood": (95.6, 94.1, 93.9, 94.9, 96.7),
        "bottle": (98.3, 98.2, 98.1, 97.1, 99.1),
        "toothbrush": (97.9, 98.8, 99.0, 98.3, 98.7),
        "cable": (95.4, 96.7, 96.5, 89.8, 95.8),
        "screw": (92.6, 98.4, 98.7, 98.3, 99.6),
        "average": (96.5, 97.3, 96.3, 96.3, 98.1),
    },
    # Table 3: pixel F1 (eq. 20)
    "pixel_f1": {
        "carpet": (57.3, 58.1, 59.6, 64.2, 62.2),
        "leather": (56.0, 49.5, 45.4, 55.8, 65.7),
        "tile": (56.9, 54.0, 63.2, 70.4, 87.8),
        "wood": (55.7, 47.2, 52.2, 59.2, 65.7),
        "bottle": (67.0, 72.2, 71.0, 78.5, 83.5),
        "toothbrush": (47.9, 57.3, 56.6, 60.9, 59.7),
        "cable": (54.7, 45.8, 52.6, 61.5, 67.3),
        "screw": (6.1, 22.4, 45.6, 39.0, 69.3),
        "average": (50.2, 50.8, 55.8, 61.2, 70.2),
    },
}
_DADNET_TABLE_OF = {"image_auroc": 1, "pixel_auroc": 2, "pixel_f1": 3}

# Table 4: ablation, averages over the eight categories (%).
_DADNET_TABLE4 = [
    ("Baseline+DGM", 78.0, 79.3, 25.4),
    ("Baseline+SDGM", 97.2, 97.4, 60.9),
    ("Baseline+DGM+DRAM", 97.6, 97.4, 67.9),
    ("DADNet", 98.4, 98.3, 70.2),
]


def _cite(paper: str, table: int) -> str:
    return f"{paper}, Table {table}"


def defect_gan_table1() -> pd.DataFrame:
    """Defect-GAN Table 1: FID of image synthesis methods on CODEBRIM (lower is better)."""
    return pd.DataFrame(
        [{"block": b, "method": m, "fid": v, "source": _cite(DEFECT_GAN, 1)} for b, m, v in _DG_TABLE1])


def defect_gan_table2() -> pd.DataFrame:
    """Defect-GAN Table 2: ablation of SCC, ANI, LWC, SC (FID, lower is better)."""
    return pd.DataFrame([{"SCC": a, "ANI": b, "LWC": c, "SC": d, "fid": v, "source": _cite(DEFECT_GAN, 2)}
                         for a, b, c, d, v in _DG_TABLE2])


def defect_gan_table3() -> pd.DataFrame:
    """Defect-GAN Table 3: CODEBRIM classification accuracy (%) with synthesized training data."""
    return pd.DataFrame([{"network": n, "augmentation": a, "accuracy": v, "source": _cite(DEFECT_GAN, 3)}
                         for n, a, v in _DG_TABLE3])


def dadnet_table(metric: str) -> pd.DataFrame:
    """DADNet Tables 1-3 in long form: ``category, method, <metric>, source`` (percent).

    ``metric`` is ``image_auroc`` (Table 1), ``pixel_auroc`` (Table 2) or ``pixel_f1`` (Table 3).
    """
    if metric not in _DADNET_PER_CATEGORY:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(_DADNET_PER_CATEGORY)}")
    source = _cite(DADNET, _DADNET_TABLE_OF[metric])
    return pd.DataFrame([
        {"category": cat, "method": method, metric: value, "source": source}
        for cat, values in _DADNET_PER_CATEGORY[metric].items()
        for method, value in zip(DADNET_METHODS, values)
    ])


def dadnet_table4() -> pd.DataFrame:
    """DADNet Table 4: ablation of DGM/SDGM and DRAM (averages over eight MVTec categories, %)."""
    return pd.DataFrame([{"experiment": e, "image_auroc": i, "pixel_auroc": p, "pixel_f1": f,
                          "source": _cite(DADNET, 4)} for e, i, p, f in _DADNET_TABLE4])


PAPER_TABLES = {
    "defect_gan.table1": defect_gan_table1,
    "defect_gan.table2": defect_gan_table2,
    "defect_gan.table3": defect_gan_table3,
    "dadnet.table1": lambda: dadnet_table("image_auroc"),
    "dadnet.table2": lambda: dadnet_table("pixel_auroc"),
    "dadnet.table3": lambda: dadnet_table("pixel_f1"),
    "dadnet.table4": dadnet_table4,
}


def paper_table(key: str) -> pd.DataFrame:
    """One of :data:`PAPER_TABLES` by key, e.g. ``paper_table("dadnet.table4")``."""
    if key not in PAPER_TABLES:
        raise KeyError(f"unknown paper table {key!r}: expected one of {', '.join(PAPER_TABLES)}")
    return PAPER_TABLES[key]()


__all__ = ["DEFECT_GAN", "DADNET", "DADNET_METHODS", "DADNET_CATEGORIES", "defect_gan_table1",
           "defect_gan_table2", "defect_gan_table3", "dadnet_table", "dadnet_table4", "PAPER_TABLES",
           "paper_table"]
