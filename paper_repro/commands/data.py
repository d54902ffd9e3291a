"""``python -m paper_repro data ...``: write the bundled synthetic data set; check a data root.

    python -m paper_repro data synth --out DIR --layout {mvtec,codebrim} [--categories a,b]
        [--size PX] [--n-train N] [--n-test N] [--seed S] [--n-extra N] [--n-originals N] [--force]
    python -m paper_repro data check --root DIR --layout {mvtec,codebrim,codebrim-originals} [--categories a,b]
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
    synth.add_argument("--out", required=True,
                       help="folder to create (new or empty; --force replaces only a set written by this command)")
    synth.add_argument("--layout", required=True, metavar="{mvtec,codebrim}",
                       help="mvtec: <cat>/train/good, test/<defect>, ground_truth; codebrim: "
                       "train|val|test/defects|background + metadata/*.xml")
    synth.add_argument("--categories", default=None,
                       help="comma-separated surfaces for --layout mvtec (default: all of the procedural "
                       "carpet,leather,tile,wood,metal,concrete and the photographed brick,grass,gravel)")
    synth.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    synth.add_argument("--n-train", type=int, default=None,
                       help="mvtec: training images per category (160); codebrim: training crops (720)")
    synth.add_argument("--n-test", type=int, default=None,
                       help="mvtec: images per test folder (10); codebrim: val and test crops each (90)")
    synth.add_argument("--n-extra", type=int, default=0,
                       help="also write this many extra normal images (extra_normal/)")
    synth.add_argument("--n-originals", type=int, default=0,
                       help="codebrim: also write this many full-resolution photographs with annotated defect "
                       "boxes (original_dataset/, the layout of CODEBRIM_original_images.zip)")
    synth.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    synth.add_argument("--force", action="store_true",
                       help="replace --out if it holds a data set this command wrote (its SYNTHETIC.json)")
    synth.set_defaults(func=run_synth)

    check = sub.add_parser("check", help="load every item of a data root through the loaders")
    check.add_argument("--root", required=True,
                       help="data root: the data set's folder or a folder up to three levels above it")
    check.add_argument("--layout", required=True, metavar="{mvtec,codebrim,codebrim-originals}")
    check.add_argument("--categories", default=None, help="mvtec: comma-separated categories (default: all)")
    check.set_defaults(func=run_check)


def _categories(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _check_layout(layout: str, layouts) -> None:
    if layout not in layouts:
        raise UserError(f"--layout {layout!r}: unknown layout; expected one of {', '.join(layouts)}")


def run_synth(args: argparse.Namespace) -> int:
    from paper_repro.data.synthetic import LAYOUTS, synthesize

    _check_layout(args.layout, LAYOUTS)
    start = time.perf_counter()
    out = synthesize(args.out, args.layout, categories=_categories(args.categories), size=args.size,
                     n_train=args.n_train, n_test=args.n_test, seed=args.seed, n_extra=args.n_extra,
                     n_originals=args.n_originals, force=args.force)
    n = sum(1 for p in Path(out).rglob("*.png") if not p.name.endswith("_mask.png"))
    photographs = f" and {args.n_originals} photographs" if args.n_originals else ""
    print(f"wrote {n} images{photographs} ({args.layout} layout, {args.size} px, seed {args.seed}) to {out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from paper_repro.data.roots import LAYOUTS, find_dataset_root

    _check_layout(args.layout, LAYOUTS)
    root = find_dataset_root(args.root, args.layout)
    print(f"{args.layout} data set: {root}")
    checks = {"codebrim": _check_codebrim, "mvtec": _check_mvtec, "codebrim-originals": _check_originals}
    n_items, n_sets = checks[args.layout](root, args)
    print(f"ok: {n_items} items in {n_sets} splits")
    return 0


def _read_all(sets: list) -> tuple[int, int]:
    for ds in sets:
        for i in range(len(ds)):
            ds[i]
        print(repr(ds))
    return sum(len(ds) for ds in sets), len(sets)


def _check_codebrim(root: Path, args: argparse.Namespace) -> tuple[int, int]:
    from paper_repro.data.codebrim import CODEBRIM, SPLITS

    sets = [CODEBRIM(root, split, image_size=None) for split in SPLITS]
    print(sets[0].absent_summary() or "every metadata record names a file of the archive")
    return _read_all(sets)


def _check_mvtec(root: Path, args: argparse.Namespace) -> tuple[int, int]:
    from paper_repro.data.mvtec import MVTecAD, categories

    cats = _categories(args.categories) or categories(root)
    if not cats:
        raise UserError(f"{root}: no categories found; expected <category>/train/good folders")
    return _read_all([MVTecAD(root, c, split, image_size=None) for c in cats for split in ("train", "test")])


def _check_originals(root: Path, args: argparse.Namespace) -> tuple[int, int]:
    """Every photograph decoded once (at 1/8 scale: every byte is still read) and every annotation parsed."""
    from paper_repro.data.io import read_image
    from paper_repro.data.originals import CODEBRIMOriginals

    originals = CODEBRIMOriginals(root)
    for photo in originals.photographs:
        read_image(photo.path, "RGB", at_least=(1, 1))
    if originals.unannotated:
        print(f"{len(originals.unannotated)} photographs have no annotation file (e.g. "
              f"{originals.unannotated[0].name}); skipped: their defects are unknown")
    print(repr(originals))
    return len(originals), 1
