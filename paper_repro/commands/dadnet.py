"""``python -m paper_repro dadnet train|eval|predict|calibrate|export|sdgm-pretrain``.

``train`` and ``eval`` read MVTec AD (or the bundled set in its layout) or a team's plain folders
(:mod:`paper_repro.data.image_folder`); ``calibrate`` stores a run's image and pixel thresholds
(:mod:`paper_repro.dadnet.calibrate`) and ``predict`` applies a run to a folder of images
(:mod:`paper_repro.dadnet.predict`); ``export`` writes its detector as one ONNX or TorchScript graph
(:mod:`paper_repro.commands.dadnet_export`).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from paper_repro.commands import dadnet_export
from paper_repro.cli import check_run_folder, device_name, output_folder, path_name, positive_int, seed_value
from paper_repro.config import SCALES
from paper_repro.errors import UserError
from paper_repro.runs.precision import PRECISIONS


def register(subparsers) -> None:
    parser = subparsers.add_parser("dadnet", help="DADNet: train and evaluate the two-stage detector")
    sub = parser.add_subparsers(dest="dadnet_command", required=True, metavar="ACTION")

    tr = sub.add_parser("train", help="train DADNet on one category's normal images, or a folder of them")
    tr.add_argument("--data", default=None,
                    help="MVTec AD root (with --category), or a plain folder of normal images, searched "
                    "recursively (default: the bundled synthetic set)")
    tr.add_argument("--category", default=None, type=path_name,
                    help="the MVTec AD category to train on (required for MVTec AD and the bundled set); with "
                    "a plain folder, the run's name for it (default: the folder's name)")
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

    ev = sub.add_parser("eval", help="evaluate a run: writes RUN/metrics.json",
                        description="Evaluate a run on an MVTec AD test split (--data, --category; default: "
                        "the run's own), or on plain folders: --images (defective images, searched "
                        "recursively), --masks (their masks at the same relative paths, named <stem>_mask.png "
                        "or <stem>.png) and --good (normal images). Writes RUN/metrics.json.")
    ev.add_argument("--run", required=True)
    ev.add_argument("--data", default=None, help="MVTec AD root (default: the data the run used)")
    ev.add_argument("--category", default=None, type=path_name, help="default: the run's category")
    ev.add_argument("--images", default=None, help="a folder of defective test images (with --masks and --good)")
    ev.add_argument("--masks", default=None, help="the masks of --images, mirroring its folders")
    ev.add_argument("--good", default=None, help="a folder of normal test images")
    ev.add_argument("--device", type=device_name, default="cpu")
    ev.set_defaults(func=_eval)

    pr = sub.add_parser("predict", help="apply a run to your own images: scores.csv, anomaly maps, masks, overlays",
                        description="Score every image of --images (a folder, searched recursively, or one file) "
                        "with the run's latest checkpoint, as dadnet eval scores its test set. Writes "
                        "OUT/scores.csv (path, status, reason, width, height, image_score, decision, "
                        "image_threshold, pixel_threshold, map, mask, overlay) and per image, at its own size, "
                        "OUT/maps/<path>.png (M_p, 16-bit), OUT/masks/<path>.png and OUT/overlays/<path>.png. "
                        "An image that cannot be read is a row with its reason; the exit status is then 1.")
    pr.add_argument("--run", required=True, help="a DADNet run folder")
    pr.add_argument("--images", required=True, help="a folder of images (searched recursively) or one image")
    pr.add_argument("--out", required=True, type=output_folder, help="folder for scores.csv and the images")
    pr.add_argument("--threshold", type=threshold_value, default="auto",
                    help="auto: the run's calibration (dadnet calibrate), else the paper's 0.5; or a number "
                    "in [0, 1] for image scores and pixels alike (default auto)")
    pr.add_argument("--device", type=device_name, default="cpu")
    pr.add_argument("--batch-size", type=positive_int, default=None, help="images per batch (default: the run's)")
    pr.set_defaults(func=_predict)

    ca = sub.add_parser("calibrate", help="choose and store a run's image and pixel thresholds",
                        description="Choose the image and pixel thresholds of a run on your images and store "
                        "them in RUN/thresholds.json, with the numbers that chose them: F1-optimal when "
                        "defective images are given (--bad for the image threshold, with --masks for the pixel "
                        "threshold too), otherwise the --false-alarm-rate quantile of the --good images' scores "
                        "(pixels: of their pixels' M_p). dadnet predict --threshold auto uses them.")
    ca.add_argument("--run", required=True, help="a DADNet run folder")
    ca.add_argument("--good", required=True, help="a folder of normal images (searched recursively)")
    ca.add_argument("--bad", default=None, help="a folder of defective images")
    ca.add_argument("--masks", default=None, help="the masks of --bad, mirroring its folders "
                    "(<stem>_mask.png or <stem>.png)")
    ca.add_argument("--false-alarm-rate", type=rate_value, default=0.01,
                    help="the share of normal images (pixels) a threshold chosen without defective examples "
                    "may flag (default 0.01)")
    ca.add_argument("--device", type=device_name, default="cpu")
    ca.add_argument("--batch-size", type=positive_int, default=None, help="images per batch (default: the run's)")
    ca.set_defaults(func=_calibrate)

    sp = sub.add_parser("sdgm-pretrain", help="pretrain SDGM's small stand-in diffusion model (the one "
                        "shipped in paper_repro/standin/sdgm_standin/; ~35 min on one CPU thread)")
    sp.add_argument("--out", required=True, type=output_folder, help="folder for the diffusers checkpoint")
    sp.add_argument("--steps", type=positive_int, default=2800, help="UNet training steps (default 2800)")
    sp.add_argument("--seed", type=seed_value, default=0)
    sp.add_argument("--image-size", type=positive_int, default=64, help="training size in px (and half of it)")
    sp.add_argument("--batch-size", type=positive_int, default=64)
    sp.add_argument("--threads", type=positive_int, default=1, help="CPU threads (1: byte-identical reruns)")
    sp.set_defaults(func=_sdgm_pretrain)

    dadnet_export.register(sub)  # `dadnet export`: its own module (paper_repro/commands/dadnet_export.py)


def threshold_value(text: str) -> str | float:
    """``auto``, or a threshold: a number from 0 to 1 (NaN and infinities refused)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:  # False for NaN too
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number from 0 to 1, got {text!r}")
    return value


def rate_value(text: str) -> float:
    """A rate strictly between 0 and 1 (0.01 is 1 %)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (0.01 is 1 %), got {text!r}")
    return value


def _train(args: argparse.Namespace) -> int:
    from paper_repro.config import sd_model_for
    from paper_repro.context import RunContext
    from paper_repro.dadnet.trainer import pseudo_anomalies, pseudo_anomalies_of, train
    from paper_repro.data.image_folder import FOLDER_LAYOUT, normal_images, plain_folder
    from paper_repro.data.mvtec import MIN_TRAIN_IMAGES
    from paper_repro.runs.devices import launch_environment
    from paper_repro.runs.folders import run_lock

    out = Path(args.out)
    if (out / "run.json").exists():  # a run already: it must be DADNet's and read back
        check_run_folder(out, "dadnet", "--out")
    if args.data is not None and not Path(args.data).expanduser().is_dir():
        raise UserError(f"--data {args.data}: no such folder; expected an MVTec AD root or a folder of normal images")
    folder = plain_folder(args.data)
    if folder is None and args.category is None:
        raise UserError("--category: required with an MVTec AD data set or the bundled one (e.g. --category tile)")
    launch_environment()  # malformed torchrun variables stop here, in one line, before anything is loaded
    ctx = RunContext.create(scale=args.scale, data_root=args.data, sd_model=args.sd_model, precision=args.precision)
    cfg = ctx.config("dadnet")
    if args.epochs is not None:  # keep the learning-rate milestones at the same fractions of the run
        cfg = ctx.config("dadnet", epochs=args.epochs, lr_milestones=tuple(
            max(1, round(m * args.epochs / cfg.epochs)) for m in cfg.lr_milestones))
    sd_model = sd_model_for(cfg, args.sd_model) if args.pseudo == "sdgm" else None
    with run_lock(out):  # before anything is loaded: a second trainer on this folder stops here
        if folder is None:
            source = ctx.data("mvtec")
            category, data = args.category, {"data": source.key, "data_root": str(source.root)}
            dataset = pseudo_anomalies(cfg, source.root, category, args.pseudo, args.sd_model, args.device)
        else:
            root = folder.resolve()
            category = args.category or root.name
            data = {"data": f"{FOLDER_LAYOUT}:{root}", "data_root": str(root), "data_layout": FOLDER_LAYOUT}
            normals = normal_images(root, cfg.image_size, cfg.train_limit, min_images=MIN_TRAIN_IMAGES)
            dataset = pseudo_anomalies_of(cfg, normals, category, args.pseudo, args.sd_model, args.device)
        train(cfg, out, dataset, dram=not args.no_dram, device=args.device, resume=args.resume,
              run_info={"category": category, **data, "sd_model": sd_model, "scale": args.scale})
    print(f"trained {category} ({args.pseudo}, DRAM {'off' if args.no_dram else 'on'}) -> {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from paper_repro.dadnet.evaluate import evaluate, evaluate_folders

    folders = {"--images": args.images, "--masks": args.masks, "--good": args.good}
    given = [flag for flag, value in folders.items() if value is not None]
    if given and len(given) < len(folders):
        missing = [flag for flag in folders if flag not in given]
        raise UserError(f"{' and '.join(missing)}: required with {', '.join(given)} (a folder test set is "
                        "defective images, their masks and normal images)")
    if given and (args.data is not None or args.category is not None):
        raise UserError("--images/--masks/--good evaluate on folders; --data and --category pick an MVTec AD "
                        "test split instead: give one or the other")
    check_run_folder(args.run, "dadnet")
    if given:
        values, _ = evaluate_folders(args.run, args.images, args.masks, args.good, device=args.device)
    else:
        values, _ = evaluate(args.run, args.data, args.category, device=args.device)
    print(json.dumps({k: round(v, 4) for k, v in values.items()}, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from paper_repro.dadnet.predict import CSV_NAME, predict_images

    check_run_folder(args.run, "dadnet")
    rows = predict_images(args.run, args.images, args.out, args.threshold, args.device, args.batch_size)
    failed = [row for row in rows if row["status"] != "ok"]
    table = Path(args.out) / CSV_NAME
    if failed:
        print(f"error: {len(failed)} of {len(rows)} images could not be read (first: {failed[0]['reason']}); "
              f"the other {len(rows) - len(failed)} were predicted; {table} lists each", file=sys.stderr)
        return 1
    flagged = sum(row["decision"] == "anomalous" for row in rows)
    images = f"{len(rows)} image{'s' * (len(rows) != 1)}"
    print(f"predicted {images}, {flagged} anomalous at image threshold {rows[0]['image_threshold']:.4g} -> {table} "
          "(maps/, masks/, overlays/ beside it)")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from paper_repro.dadnet.calibrate import calibrate, describe

    check_run_folder(args.run, "dadnet")
    record = calibrate(args.run, args.good, args.bad, args.masks, args.false_alarm_rate, args.device,
                       args.batch_size)
    print(describe(record, args.run))
    return 0


def _sdgm_pretrain(args: argparse.Namespace) -> int:
    from paper_repro.standin.pretrain import pretrain

    out = pretrain(args.out, steps=args.steps, seed=args.seed, image_size=args.image_size,
                   batch_size=args.batch_size, threads=args.threads)
    print(f"SDGM stand-in -> {out} (MODEL_CARD.md inside); use it with --sd-model {out}")
    return 0
