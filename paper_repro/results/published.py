"""Independent published numbers for the baselines of DADNet's Tables 1-3, as data.

Source: the benchmark tables of the model READMEs that ship with anomalib 2.7.0
(``src/anomalib/models/image/{fastflow,padim,reverse_distillation,stfpm}/README.md``, "Benchmark",
MVTec AD; PaDiM, RD and STFPM with seed 42, FastFlow with seed 0 and early stopping, patience 3).
Only the eight categories of DADNet's tables and the two CNN backbones are kept; values in percent,
rounded to one decimal as the READMEs give three digits of a fraction. ``tests/test_baselines.py``
checks every number against the README of the installed anomalib.

Not kept: per-category numbers of the DRAEM paper (Zavrtanik et al., ICCV 2021), which could not be
checked here; DRAEM's 15-category means (image AUROC 98.0, pixel AUROC 97.3) are quoted in the
chapter text only.
"""
from __future__ import annotations

import pandas as pd

from paper_repro.results.papers import DADNET_CATEGORIES

ANOMALIB_SOURCE = "anomalib 2.7.0 model README ({model}/README.md), {backbone}"
_README_DIR = {"FastFlow": "fastflow", "PaDiM": "padim", "RD": "reverse_distillation", "STFPM": "stfpm"}

# (method, backbone, metric) -> values over DADNET_CATEGORIES
# (carpet, leather, tile, wood, bottle, toothbrush, cable, screw).
ANOMALIB_README: dict[tuple[str, str, str], tuple[float, ...]] = {
    ("FastFlow", "ResNet-18", "image_auroc"): (97.9, 100.0, 96.7, 97.8, 100.0, 84.4, 89.1, 52.1),
    ("FastFlow", "ResNet-18", "pixel_auroc"): (98.3, 99.6, 94.4, 95.6, 98.3, 97.9, 95.4, 92.6),
    ("FastFlow", "ResNet-18", "pixel_f1"): (57.3, 56.0, 56.9, 55.7, 67.0, 47.9, 54.7, 6.1),
    ("FastFlow", "Wide ResNet-50", "image_auroc"): (99.4, 99.9, 100.0, 99.2, 100.0, 83.6, 96.2, 83.9),
    ("FastFlow", "Wide ResNet-50", "pixel_auroc"): (99.1, 99.6, 96.6, 94.1, 98.6, 98.0, 97.2, 96.6),
    ("FastFlow", "Wide ResNet-50", "pixel_f1"): (59.8, 57.6, 66.0, 48.8, 73.3, 48.1, 56.4, 66.0),
    ("PaDiM", "ResNet-18", "image_auroc"): (94.5, 98.2, 95.0, 97.6, 99.4, 88.9, 84.4, 75.9),
    ("PaDiM", "ResNet-18", "pixel_auroc"): (98.4, 99.4, 93.4, 94.7, 98.3, 98.8, 96.5, 97.8),
    ("PaDiM", "Wide ResNet-50", "image_auroc"): (99.5, 100.0, 97.4, 99.3, 99.9, 94.2, 87.8, 84.5),
    ("PaDiM", "Wide ResNet-50", "pixel_auroc"): (99.1, 99.3, 95.5, 95.7, 98.5, 99.1, 97.0, 98.8),
    ("RD", "Wide ResNet-50", "image_auroc"): (98.4, 100.0, 100.0, 99.7, 100.0, 95.3, 96.6, 98.5),
    ("RD", "Wide ResNet-50", "pixel_auroc"): (98.8, 99.1, 95.4, 94.7, 98.4, 99.1, 96.4, 99.6),
    ("STFPM", "ResNet-18", "image_auroc"): (95.4, 98.9, 94.9, 96.1, 97.9, 99.7, 83.8, 83.5),
    ("STFPM", "ResNet-18", "pixel_auroc"): (98.6, 99.1, 94.6, 94.9, 97.1, 98.3, 89.8, 98.3),
    ("STFPM", "Wide ResNet-50", "image_auroc"): (95.7, 98.1, 97.6, 93.9, 98.7, 50.0, 87.8, 82.5),
    ("STFPM", "Wide ResNet-50", "pixel_auroc"): (98.7, 98.0, 96.6, 95.6, 96.6, 17.8, 91.3, 98.8),
}

# The README metric table each key comes from (for the check against the installed README).
README_SECTIONS = {"image_auroc": "Image-Level AUC", "pixel_auroc": "Pixel-Level AUC", "pixel_f1": "Pixel F1 Score"}


def published_table(metric: str) -> pd.DataFrame:
    """Long form ``category, method, backbone, <metric>, source`` for one metric (percent)."""
    rows = []
    for (method, backbone, key), values in ANOMALIB_README.items():
        if key != metric:
            continue
        source = ANOMALIB_SOURCE.format(model=_README_DIR[method], backbone=backbone)
        rows += [{"category": c, "method": method, "backbone": backbone, metric: v, "source": source}
                 for c, v in zip(DADNET_CATEGORIES, values)]
    return pd.DataFrame(rows, columns=["category", "method", "backbone", metric, "source"])


def matches_paper(paper: pd.DataFrame, metric: str) -> pd.DataFrame:
    """For each baseline column of a DADNet table, the README rows equal to it in every category.

    ``paper`` is ``paper_table("dadnet.table1")`` etc. (long form). Returns ``method, backbone,
    equal_categories`` (how many of the eight agree to 0.05)."""
    published = published_table(metric)
    rows = []
    for (method, backbone), group in published.groupby(["method", "backbone"], sort=False):
        theirs = paper[paper["method"] == method].set_index("category")[metric]
        ours = group.set_index("category")[metric]
        equal = int(sum(abs(theirs.get(c, float("nan")) - ours[c]) < 0.05 for c in ours.index))
        rows.append({"method": method, "backbone": backbone, "equal_categories": equal})
    return pd.DataFrame(rows)
