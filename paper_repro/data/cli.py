"""``python -m paper_repro data ...``: write the bundled synthetic data set; check a data root.

    python -m paper_repro data synth --out DIR --layout {mvtec,codebrim} [--categories a,b]
        [--size PX] [--n-train N] [--n-test N] [--seed S] [--n-extra N] [--force]
    python -m paper_repro data check --root DIR --layout {mvtec,codebrim} [--categories a,b]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from paper_repro.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="bundled synthetic data set; check real data roots",
                                   description="Write the bundled synthetic-surfaces data set in the MVTec AD "
                                   "or CODEBRIM layout, or check that a folder holds one.")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = sub.add_parser("synth", help="write a synthetic data set in a published layout")
    synth.add_argument("--out", required=True, help="folder to create (must be new or empty)")
    synth.add_argument("--layout", required=True, metavar="{mvtec,codebrim}",
                       help="mvtec: <cat>/train/good, test/<defect>, ground_truth; codebrim: "
                       "train|val|test/defects|background + metadata/*.xml")
    synth.add_argument("--categories", default=None,
                       help="comma-separated surfaces for --layout mvtec (default: all of "
                       "carpet,leather,tile,wood,metal,concrete)")
    synth.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    synth.add_argument("--n-train", type=int, default=None,
                       help="mvtec: training images per category (160); codebrim: training crops (720)")
    synth.add_argument("--n-test", type=int, default=None,
                       help="mvtec: images per test folder (10); codebrim: val and test crops each (90)")
    synth.add_argument("--n-extra", type=int, default=0,
                       help="also write this many extra normal images (extra_normal/)")
    synth.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    synth.add_argument("--force", action="store_true", help="replace --out if it is not empty")
    synth.set_defaults(func=run_synth)

    check = sub.add_parser("check", help="load every item of a data root through the loaders")
    check.add_argument("--root", required=True, help="data root (MVTec AD or CODEBRIM classification folder)")
    check.add_argument("--layout", required=True, metavar="{mvtec,codebrim}")
    check.add_argument("--categories", default=None, help="mvtec: comma-separated categories (default: all)")
    check.set_defaults(func=run_check)


def _categories(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _check_layout(layout: str) -> None:
    from paper_repro.data.synthetic import LAYOUTS

    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout!r}: unknown layout; expected one of {', '.join(LAYOUTS)}")


def run_synth(args: argparse.Namespace) -> int:
    from paper_repro.data.synthetic import synthesize

    _check_layout(args.layout)
    start = time.perf_counter()
    out = synthesize(args.out, args.layout, categories=_categories(args.categories), size=args.size,
                     n_train=args.n_train, n_test=args.n_test, seed=args.seed, n_extra=args.n_extra,
                     force=args.force)
    n = sum(1 for p in Path(out).rglob("*.png") if not p.name.endswith("_mask.png"))
    print(f"wrote {n} images ({args.layout} layout, {args.size} px, seed {args.seed}) to {out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from paper_repro.data import CODEBRIM, MVTecAD
    from paper_repro.data.mvtec import categories as present
    from paper_repro.data.roots import find_dataset_root

    _check_layout(args.layout)
    root = find_dataset_root(args.root, args.layout)
    print(f"{args.layout} data set: {root}")
    if args.layout == "codebrim":
        sets = [CODEBRIM(root, split, image_size=None) for split in ("train", "val", "test")]
    else:
        cats = _categories(args.categories) or present(root)
        if not cats:
            raise UserError(f"{root}: no categories found; expected <category>/train/good folders")
        sets = [MVTecAD(root, c, split, image_size=None) for c in cats for split in ("train", "test")]
    for ds in sets:
        for i in range(len(ds)):
            ds[i]
        print(repr(ds))
    print(f"ok: {sum(len(ds) for ds in sets)} items in {len(sets)} splits")
    return 0
