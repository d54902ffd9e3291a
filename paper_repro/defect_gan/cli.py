"""``python -m paper_repro defect-gan train|synth|restore``.

    defect-gan train --data ROOT --scale S --out RUN [--ablation ani,sc] [--resume]
    defect-gan synth --run RUN --normals DIR --classes Crack,Spallation [--region x0,y0,x1,y1] --n N --out DIR
    defect-gan restore --run RUN --images DIR --out DIR

``train`` runs unchanged under ``torchrun --nproc_per_node K -m paper_repro defect-gan train ...``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from paper_repro.errors import UserError

ABLATION_PRESETS = {"stargan": ("scc", "ani", "lwc", "sc"), "stargan+spade": ("ani", "lwc", "sc")}


def parse_ablation(text: str | None) -> dict[str, bool]:
    """``"ani,sc"`` -> ``{"ani": False, "sc": False}`` (components removed); presets ``stargan``,
    ``stargan+spade``; ``lwc`` alone also removes ``sc`` (the constraints act on LWC's maps)."""
    from paper_repro.defect_gan.trainer import ABLATION_FLAGS

    removed: set[str] = set()
    for name in filter(None, (t.strip().lower() for t in (text or "").split(","))):
        if name in ABLATION_PRESETS:
            removed |= set(ABLATION_PRESETS[name])
        elif name in ABLATION_FLAGS:
            removed.add(name)
        else:
            raise UserError(f"--ablation {name!r}: expected components to remove among "
                            f"{', '.join(ABLATION_FLAGS)} or a preset ({', '.join(ABLATION_PRESETS)})")
    if "lwc" in removed:
        removed.add("sc")
    return {flag: False for flag in removed}


def cmd_train(args) -> int:
    import torch

    from paper_repro.data.roots import resolve_data
    from paper_repro.defect_gan.data import load_training_data
    from paper_repro.defect_gan.trainer import make_config, train
    from paper_repro.runs.devices import Distributed
    from paper_repro.runs.folders import run_lock

    overrides = parse_ablation(args.ablation)
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    if args.precision or args.no_amp:
        overrides["precision"] = args.precision or "fp32"
    cfg = make_config(args.scale, **overrides)
    out = Path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    with run_lock(out):  # before anything is loaded: a second trainer on this folder stops here
        source = resolve_data(args.data, "codebrim", args.scale, seed=args.seed)
        data = load_training_data(cfg, source, seed=args.seed, normals_dir=args.normals_dir)
        dist = Distributed.from_env(args.device)
        try:
            train(cfg, out, data, device=args.device, seed=args.seed, resume=args.resume,
                  run_info={"data": source.key})
        finally:
            dist.close()
    if dist.is_main:
        print(f"trained {cfg.iterations} iterations; run folder: {out}")
    return 0


def _read_normals(args, size):
    from paper_repro.defect_gan.control import read_images

    images, names = read_images(args.normals, size)
    if args.n > len(images):  # cycle through the folder to make N images
        reps = -(-args.n // len(images))
        images, names = images.repeat(reps, 1, 1, 1), names * reps
    return images[: args.n], names[: args.n]


def cmd_synth(args) -> int:
    import numpy as np
    from PIL import Image

    from paper_repro.defect_gan.control import control_map, synthesize, write_image
    from paper_repro.defect_gan.trainer import load_generator
    from paper_repro.runs.devices import resolve_device, seed_everything

    seed_everything(args.seed)
    device = resolve_device(args.device)
    G, classes = load_generator(args.run, device)
    size = _image_size(args.run)
    region = None
    if args.region:
        try:
            region = [float(v) for v in args.region.split(",")]
        except ValueError:
            region = []
        if len(region) != 4:
            raise UserError(f"--region {args.region!r}: expected x0,y0,x1,y1 (pixels, or fractions in [0, 1])")
    mask = None
    if args.mask:
        try:
            mask = np.asarray(Image.open(args.mask).convert("L"), dtype=np.float32) > 127
        except OSError as err:
            raise UserError(f"{args.mask}: not a readable mask image ({err})") from err
    names = [c for c in args.classes.split(",") if c.strip()]
    if not names:
        raise UserError(f"--classes {args.classes!r}: expected one or more of {', '.join(classes)}")
    control = control_map(names, classes, size, box=region, mask=mask).to(device)
    normals, stems = _read_normals(args, size)
    out = Path(args.out)
    tag = "+".join(n for n in names)
    for start in range(0, len(normals), 16):
        batch = normals[start:start + 16].to(device)
        result = synthesize(G, batch, control, restrict=args.restrict)
        for k, image in enumerate(result.image):
            i = start + k
            write_image(image, out / f"{i:05d}_{stems[i]}_{tag}.png")
            if result.mask is not None:
                write_image(result.mask[k].expand(3, -1, -1) * 2 - 1, out / "maps" / f"{i:05d}_{stems[i]}_{tag}.png")
    print(f"wrote {len(normals)} images with {tag} to {out}")
    return 0


def cmd_restore(args) -> int:
    from paper_repro.defect_gan.control import read_images, restore, write_image
    from paper_repro.defect_gan.trainer import load_generator
    from paper_repro.runs.devices import resolve_device, seed_everything

    seed_everything(args.seed)
    device = resolve_device(args.device)
    G, _ = load_generator(args.run, device)
    images, stems = read_images(args.images, _image_size(args.run))
    out = Path(args.out)
    for start in range(0, len(images), 16):
        result = restore(G, images[start:start + 16].to(device))
        for k, image in enumerate(result.image):
            write_image(image, out / f"{stems[start + k]}_restored.png")
    print(f"restored {len(images)} images into {out}")
    return 0


def _image_size(run) -> int:
    from paper_repro.defect_gan.trainer import config_from_run

    return config_from_run(run)[0].image_size


def register(subparsers) -> None:
    from paper_repro.config import SCALES
    from paper_repro.runs.precision import PRECISIONS

    parser = subparsers.add_parser("defect-gan", help="Defect-GAN: train, synthesize defects, restore",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="defect_gan_command", required=True, metavar="ACTION")

    p = sub.add_parser("train", help="train Defect-GAN (resumable; runs under torchrun)")
    p.add_argument("--data", default=None, help="CODEBRIM root (default: the bundled synthetic set)")
    p.add_argument("--scale", choices=SCALES, default="demo")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, samples/)")
    p.add_argument("--ablation", default=None,
                   help="components to remove, comma-separated: scc, ani, lwc, sc, or stargan, stargan+spade")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--iterations", type=int, default=None, help="override the scale's iteration count")
    p.add_argument("--normals-dir", default=None, help="folder of extra normal images (NormalPool)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="mixed precision: auto (bf16 on GPUs that have it, else fp16; fp32 on the CPU), fp32, "
                   "bf16, fp16 (default: the scale's, auto)")
    p.add_argument("--no-amp", action="store_true", help="the same as --precision fp32")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("synth", help="add defects of chosen classes at a chosen place to normal images")
    p.add_argument("--run", required=True, help="a Defect-GAN run folder")
    p.add_argument("--normals", required=True, help="folder of normal images (any, also unseen ones)")
    p.add_argument("--classes", required=True, help="comma-separated defect classes, e.g. Crack,CorrosionStain")
    p.add_argument("--region", default=None, help="x0,y0,x1,y1 in pixels of the model's image size, "
                   "or fractions in [0, 1] (default: the whole image)")
    p.add_argument("--mask", default=None, help="a painted region as an image (white = defect here)")
    p.add_argument("--restrict", action="store_true",
                   help="keep pixels outside the region bit for bit (m multiplied by the region; not in the paper)")
    p.add_argument("--n", type=int, default=8, help="how many images to write")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("restore", help="remove defects from images (restoration, A = 0)")
    p.add_argument("--run", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_restore)
