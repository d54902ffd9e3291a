"""``python -m paper_repro baselines tables|ablation|bridge``: DADNet's Tables 1-4 and the bridge
experiment from the command line, with ``--runs`` (the paper averages three).

    python -m paper_repro baselines tables --scale full --data /data/mvtec_anomaly_detection --runs 3 --out results/full/tables
"""
from __future__ import annotations

import argparse
from pathlib import Path

from paper_repro.cli import device_name, output_folder, path_name, positive_int, seed_value
from paper_repro.config import DEFAULT_SEED, SCALES
from paper_repro.errors import UserError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", choices=SCALES, default="demo")
    parser.add_argument("--runs", type=positive_int, default=None,
                        help="runs to average, seeds seed..seed+runs-1 (default: 3 at full, else 1)")
    parser.add_argument("--data", default=None, help="MVTec AD root (default: the bundled synthetic set)")
    parser.add_argument("--device", type=device_name, default="cpu")
    parser.add_argument("--seed", type=seed_value, default=DEFAULT_SEED)
    parser.add_argument("--out", default=None, type=output_folder, help="folder for the tables (.csv and .md); default: print only")


def register(subparsers) -> None:
    parser = subparsers.add_parser("baselines", help="DADNet Tables 1-4 with the anomalib baselines; the bridge experiment",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="baselines_command", required=True, metavar="ACTION")
    tables = sub.add_parser("tables", help="Tables 1-3: FastFlow, PaDiM, RD, STFPM (anomalib) and DADNet")
    _common(tables)
    tables.add_argument("--methods", default="FastFlow,PaDiM,RD,STFPM,DADNet", help="comma-separated columns")
    tables.add_argument("--pretrained", default=None,
                        help="baseline backbones: 'imagenet' (timm download/cache), 'none' (random init), or a "
                             "state-dict file (default: the scale's plan, imagenet at full)")
    tables.set_defaults(func=_tables)
    ablation = sub.add_parser("ablation", help="Table 4: Baseline+DGM, +SDGM, +DGM+DRAM, DADNet")
    _common(ablation)
    ablation.set_defaults(func=_ablation)
    bridge = sub.add_parser("bridge", help="DADNet's detector trained on DGM, SDGM and Defect-GAN pseudo-anomalies")
    _common(bridge)
    bridge.add_argument("--codebrim", default=None, help="CODEBRIM root for Defect-GAN (default: the bundled set)")
    bridge.add_argument("--category", default=None, type=path_name, help="default: concrete (bundled) or tile (real MVTec AD)")
    bridge.set_defaults(func=_bridge)


def _pretrained(value: str | None):
    """``--pretrained``: None (the scale's plan), True (imagenet), False (none) or a weights file that exists."""
    if value is None:
        return None
    choice = {"imagenet": True, "none": False}.get(value.strip().lower())
    if choice is None and not Path(value).expanduser().is_file():
        raise UserError(f"--pretrained {value}: no such file; expected imagenet, none or a state-dict file")
    return value if choice is None else choice


def _methods(text: str) -> list[str]:
    """``--methods``: comma-separated columns, each a known method (spelt as in the tables)."""
    from paper_repro.baselines.anomalib_models import METHODS

    known = {m.lower(): m for m in (*METHODS, "DADNet")}
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m.lower() not in known]
    if unknown or not names:
        problem = f"unknown {', '.join(unknown)}" if unknown else "names no method"
        raise UserError(f"--methods {text!r}: {problem}; expected some of {', '.join(known.values())}")
    return [known[m.lower()] for m in names]


def _context(args):
    """The run context of a command: its flags, and the environment for what they leave open."""
    from paper_repro.context import RunContext

    return RunContext.create(scale=args.scale, device=args.device, data_root=args.data, seed=args.seed)


def _info(ctx, data, **notes):
    from paper_repro.results.tables import RunInfo

    return RunInfo.of(ctx, dataset=data.label, **notes)


def _write(table, name: str, out: str | None) -> None:
    from paper_repro.results.tables import save_table, to_markdown

    print(to_markdown(table, floatfmt=".1f"))
    for path in save_table(table, name, out):
        print(f"wrote {Path(out).name}/{path.name}")


def _tables(args: argparse.Namespace) -> int:
    from paper_repro.experiments.dadnet_tables_1_3 import comparison, side_by_side_tables
    from paper_repro.experiments.detectors import default_runs

    methods = _methods(args.methods)
    pretrained = _pretrained(args.pretrained)
    ctx = _context(args)
    plan = ctx.config("baselines")
    runs = args.runs if args.runs is not None else default_runs(ctx)
    data = ctx.data("mvtec")
    frame = comparison(ctx, data, runs, methods, args.device, args.seed, pretrained)
    info = _info(ctx, data, runs=runs, categories="+".join(plan.categories),
                 pretrained=args.pretrained or plan.pretrained)
    for metric, table in side_by_side_tables(frame, info, plan).items():
        _write(table, {"image_auroc": "dadnet_table1_baselines", "pixel_auroc": "dadnet_table2_baselines",
                       "pixel_f1": "dadnet_table3_baselines"}[metric], args.out)
    return 0


def _ablation(args: argparse.Namespace) -> int:
    from paper_repro.experiments.dadnet_table4 import ablation, table4
    from paper_repro.experiments.detectors import default_runs

    ctx = _context(args)
    runs = args.runs if args.runs is not None else default_runs(ctx)
    data = ctx.data("mvtec")
    frame = ablation(ctx, data, runs, args.device, args.seed)
    info = _info(ctx, data, runs=runs, categories="+".join(ctx.config("baselines").ablation_categories))
    for metric, table in table4(frame, info).items():
        _write(table, f"dadnet_table4_{metric}", args.out)
    return 0


def _bridge(args: argparse.Namespace) -> int:
    from paper_repro.defect_gan.trainer import trained_run
    from paper_repro.experiments import bridge
    from paper_repro.experiments.detectors import default_runs

    ctx = _context(args)
    runs = args.runs if args.runs is not None else default_runs(ctx)
    data = ctx.data("mvtec")
    codebrim = ctx.replace(data_root=Path(args.codebrim).expanduser() if args.codebrim else None).data("codebrim")
    category = args.category or bridge.default_category(data)
    if not (data.root / category / "train" / "good").is_dir():  # before Defect-GAN trains
        raise UserError(f"--category {category}: {data.root} has no {category}/train/good folder")
    generator = trained_run(ctx.config("defect_gan"), codebrim, seed=args.seed, device=args.device)
    frame, _ = bridge.compare_sources(ctx, category, data, runs, args.device, args.seed, generator)
    table = frame.groupby("source", sort=False).mean(numeric_only=True).drop(columns="run").reset_index()
    table.attrs["run_info"] = _info(ctx, data, category=category, runs=runs, defect_gan=generator.name).describe()
    _write(table, "bridge_pseudo_sources", args.out)
    return 0
