"""``python -m paper_repro dadnet train|eval|sdgm-pretrain``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from paper_repro.cli import check_run_folder, device_name, output_folder, path_name, positive_int, seed_value
from paper_repro.config import SCALES
from paper_repro.runs.precision import PRECISIONS


def register(subparsers) -> None:
    parser = subparsers.add_parser("dadnet", help="DADNet: train and evaluate the two-stage detector")
    sub = parser.add_subparsers(dest="dadnet_command", required=True, metavar="ACTION")

    tr = sub.add_parser("train", help="train DADNet on one category's normal images")
    tr.add_argument("--data", default=None, help="MVTec AD root (default: the bundled synthetic set)")
    tr.add_argument("--category", required=True, type=path_name)
    tr.add_argument("--scale", choices=SCALES, default="demo")
    tr.add_argument("--out", required=True, type=output_folder, help="run folder (checkpoints, log.csv, run.json)")
    tr.add_argument("--pseudo", choices=("dgm", "sdgm"), default="dgm",
                    help="pseudo-anomalies: DGM noise/texture or SDGM diffusion (default dgm)")
    tr.add_argument("--no-dram", action="store_true", help="leave DRAM out (the ablation's baseline)")
    tr.add_argument("--sd-model", default=None,
                    help="SDGM checkpoint: a diffusers folder or a model id (default: $PAPER_REPRO_SD_MODEL, "
                    "else the scale's: Stable Diffusion inpainting at full; 'tiny' is the offline random one)")
    tr.add_argument("--precision", choices=PRECISIONS, default=None,
                    help="mixed precision: auto (bf16 on GPUs that have it, else fp16; fp32 on the CPU), fp32, "
                    "bf16, fp16 (default: the scale's, auto)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument("--epochs", type=positive_int, default=None, help="override the scale's epoch count (lr milestones scale with it)")
    tr.add_argument("--device", type=device_name, default="cpu")
    tr.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="evaluate a run: writes RUN/metrics.json")
    ev.add_argument("--run", required=True)
    ev.add_argument("--data", default=None, help="MVTec AD root (default: the data the run used)")
    ev.add_argument("--category", default=None, type=path_name, help="default: the run's category")
    ev.add_argument("--device", type=device_name, default="cpu")
    ev.set_defaults(func=_eval)

    sp = sub.add_parser("sdgm-pretrain", help="pretrain SDGM's small stand-in diffusion model (the one "
                        "shipped in paper_repro/standin/sdgm_standin/; ~35 min on one CPU thread)")
    sp.add_argument("--out", required=True, type=output_folder, help="folder for the diffusers checkpoint")
    sp.add_argument("--steps", type=positive_int, default=2800, help="UNet training steps (default 2800)")
    sp.add_argument("--seed", type=seed_value, default=0)
    sp.add_argument("--image-size", type=positive_int, default=64, help="training size in px (and half of it)")
    sp.add_argument("--batch-size", type=positive_int, default=64)
    sp.add_argument("--threads", type=positive_int, default=1, help="CPU threads (1: byte-identical reruns)")
    sp.set_defaults(func=_sdgm_pretrain)


def _train(args: argparse.Namespace) -> int:
    from paper_repro.config import sd_model_for
    from paper_repro.context import RunContext
    from paper_repro.dadnet.trainer import pseudo_anomalies, train
    from paper_repro.runs.devices import launch_environment
    from paper_repro.runs.folders import run_lock

    out = Path(args.out)
    if (out / "run.json").exists():  # a run already: it must be DADNet's and read back
        check_run_folder(out, "dadnet", "--out")
    launch_environment()  # malformed torchrun variables stop here, in one line, before anything is loaded
    ctx = RunContext.create(scale=args.scale, data_root=args.data, sd_model=args.sd_model, precision=args.precision)
    cfg = ctx.config("dadnet")
    if args.epochs is not None:  # keep the learning-rate milestones at the same fractions of the run
        cfg = ctx.config("dadnet", epochs=args.epochs, lr_milestones=tuple(
            max(1, round(m * args.epochs / cfg.epochs)) for m in cfg.lr_milestones))
    with run_lock(out):  # before anything is loaded: a second trainer on this folder stops here
        source = ctx.data("mvtec")
        dataset = pseudo_anomalies(cfg, source.root, args.category, args.pseudo, args.sd_model, args.device)
        sd_model = sd_model_for(cfg, args.sd_model) if args.pseudo == "sdgm" else None
        train(cfg, out, dataset, dram=not args.no_dram, device=args.device, resume=args.resume,
              run_info={"category": args.category, "data": source.key, "data_root": str(source.root),
                        "sd_model": sd_model, "scale": args.scale})
    print(f"trained {args.category} ({args.pseudo}, DRAM {'off' if args.no_dram else 'on'}) -> {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from paper_repro.dadnet.evaluate import evaluate

    check_run_folder(args.run, "dadnet")
    values, _ = evaluate(args.run, args.data, args.category, device=args.device)
    print(json.dumps({k: round(v, 4) for k, v in values.items()}, indent=2))
    return 0


def _sdgm_pretrain(args: argparse.Namespace) -> int:
    from paper_repro.standin.pretrain import pretrain

    out = pretrain(args.out, steps=args.steps, seed=args.seed, image_size=args.image_size,
                   batch_size=args.batch_size, threads=args.threads)
    print(f"SDGM stand-in -> {out} (MODEL_CARD.md inside); use it with --sd-model {out}")
    return 0
