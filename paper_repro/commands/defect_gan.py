"""``python -m paper_repro defect-gan train|synth|restore``.

    defect-gan train --data ROOT --scale S --out RUN [--ablation ani,sc] [--resume]
    defect-gan synth --run RUN --normals DIR --classes Crack,Spallation [--region x0,y0,x1,y1] --n N --out DIR
    defect-gan synth --run RUN --normals DIR --classes Crack,Spallation,Crack+Spallation --layout codebrim|folders
                     [--n N] --out DIR     (a ready training set: paper_repro/defect_gan/training_set.py)
    defect-gan restore --run RUN --images DIR --out DIR

``train`` runs unchanged under ``torchrun --nproc_per_node K -m paper_repro defect-gan train ...``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from paper_repro.cli import (check_run_folder, class_list, device_name, output_folder, positive_int, region_box,
                             seed_value)
from paper_repro.errors import UserError

DEFAULT_N = 8   # images ``synth`` writes without --layout and --n
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
    if "lwc" in removed and "sc" not in removed:
        removed.add("sc")
        print("--ablation: removing lwc removes sc too (the spatial constraints act on LWC's map m)")
    return {flag: False for flag in removed}


def cmd_train(args) -> int:
    import torch

    from paper_repro.context import RunContext
    from paper_repro.defect_gan.data import load_training_data
    from paper_repro.defect_gan.trainer import train
    from paper_repro.runs.devices import Distributed, launch_environment
    from paper_repro.runs.folders import run_lock

    overrides = parse_ablation(args.ablation)
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    if args.precision or args.no_amp:
        overrides["precision"] = args.precision or "fp32"
    if args.normals_source:
        overrides["extra_normals_source"] = args.normals_source
    ctx = RunContext.create(scale=args.scale, data_root=args.data, seed=args.seed)
    cfg = ctx.config("defect_gan", **overrides)
    out = Path(args.out)
    if (out / "run.json").exists():  # a run already: it must be Defect-GAN's and read back
        check_run_folder(out, "defect_gan", "--out")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    launch_environment()  # malformed torchrun variables stop here, in one line, before anything is loaded
    with run_lock(out):  # before anything is loaded: a second trainer on this folder stops here
        source = ctx.data("codebrim")
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
    """The folder's normal images, read once: image ``k`` of ``--n`` is ``k mod len`` of them (never copied
    N times in memory, so ``--n`` is bounded by the disk, not by RAM)."""
    from paper_repro.defect_gan.control import read_images

    return read_images(args.normals, size)


def _check_output_space(out: Path, n: int, size: int, with_maps: bool) -> None:
    """Refuse, in one line, ``n`` images that cannot fit on the output's disk (raw RGB bytes per image, an
    upper bound of a PNG's, twice with the maps), before anything is written."""
    import shutil

    from paper_repro.runs.checkpoints import human_bytes

    needed = n * size * size * 3 * (2 if with_maps else 1)
    existing = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise UserError(f"--n {n}: {n:,} images of {size}x{size} px need up to {human_bytes(needed)}, but "
                        f"{existing} has {human_bytes(free)} free; ask for fewer or write elsewhere")


def _read_mask(path: str):
    import numpy as np

    from paper_repro.data.io import read_image

    if not Path(path).is_file():
        raise UserError(f"--mask {path}: no such file; expected an image (white = defect here)")
    return np.asarray(read_image(Path(path), "L"), dtype=np.float32) > 127


def cmd_synth(args) -> int:
    from paper_repro.defect_gan.control import class_names, control_map, synthesize, synthesized_name, write_image
    from paper_repro.defect_gan.trainer import load_generator
    from paper_repro.runs.devices import resolve_device, seed_everything

    if args.layout is not None:
        return _synth_training_set(args)
    args.n = DEFAULT_N if args.n is None else args.n
    size = _image_size(args.run)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    G, classes = load_generator(args.run, device)
    try:
        names = class_names(args.classes, classes)
    except UserError as err:
        raise UserError(f"--classes {','.join(args.classes)}: {err}") from None
    mask = _read_mask(args.mask) if args.mask else None
    control = control_map(names, classes, size, box=args.region, mask=mask).to(device)
    out = Path(args.out)
    _check_output_space(out, args.n, size, with_maps=True)
    normals, stems = _read_normals(args, size)
    for start in range(0, args.n, 16):
        which = [k % len(normals) for k in range(start, min(start + 16, args.n))]
        result = synthesize(G, normals[which].to(device), control, restrict=args.restrict)
        for k, image in enumerate(result.image):
            name = synthesized_name(start + k, stems[which[k]], names)
            write_image(image, out / name)
            if result.mask is not None:
                write_image(result.mask[k].expand(3, -1, -1) * 2 - 1, out / "maps" / name)
    print(f"wrote {args.n} images with {'+'.join(names)} to {out}")
    return 0


def _synth_training_set(args) -> int:
    """``synth --layout codebrim|folders``: a training set (:mod:`paper_repro.defect_gan.training_set`).
    Every input is checked before anything is written; the set appears in ``--out`` whole or not at all."""
    from paper_repro.defect_gan.control import control_map
    from paper_repro.defect_gan.trainer import load_generator
    from paper_repro.defect_gan.training_set import (LAYOUTS, PER_LABEL_SET, check_out, defect_counts, label_sets,
                                                     read_normals, skipped_line, split_normals, write_training_set)
    from paper_repro.runs.devices import resolve_device, seed_everything

    if args.layout not in LAYOUTS:
        raise UserError(f"--layout {args.layout!r}: unknown layout; expected one of {', '.join(LAYOUTS)}")
    size = _image_size(args.run)
    out = Path(args.out).expanduser()
    check_out(out)
    device = resolve_device(args.device)
    G, classes = load_generator(args.run, device)
    try:
        sets = label_sets(args.classes, classes, args.layout)
    except UserError as err:
        raise UserError(f"--classes {','.join(args.classes)}: {err}") from None
    n = PER_LABEL_SET * len(sets) if args.n is None else args.n
    defect_counts(n, len(sets))   # too few images for every label set in every split stops here
    mask = _read_mask(args.mask) if args.mask else None
    control_map(sets[0], classes, size, box=args.region, mask=mask)   # an empty region stops here
    try:
        normals = read_normals(args.normals, size)
    except UserError as err:
        raise UserError(f"--normals {err}") from None
    try:
        split_normals(len(normals), args.seed)
    except UserError as err:
        raise UserError(f"--normals {args.normals}: {err}") from None
    _check_output_space(out, n + len(normals), size, with_maps=True)
    if normals.skipped:
        print(f"warning: {skipped_line(normals)} (all listed in {out / 'SYNTHETIC.json'})", file=sys.stderr)
    seed_everything(args.seed)
    info = {"run": str(Path(args.run).resolve()), "normals": str(Path(args.normals).expanduser().resolve()),
            "mask": str(Path(args.mask).resolve()) if args.mask else None}
    counts = write_training_set(G, classes, normals, out, args.layout, sets, n, args.seed, info, region=args.region,
                                mask=mask, restrict=args.restrict, device=device)
    per_split = "/".join(str(sum(c.values())) for c in counts.values())
    print(f"wrote {n} images with {', '.join('+'.join(s) for s in sets)} and {len(normals)} normals as Background "
          f"to {out} ({args.layout} layout, {size} px, train/val/test {per_split} images; masks/ and maps/ "
          f"beside them; SYNTHETIC.json names the run)")
    return 0


def cmd_restore(args) -> int:
    from paper_repro.defect_gan.control import read_images, restore, restored_name, write_image
    from paper_repro.defect_gan.trainer import load_generator
    from paper_repro.runs.devices import resolve_device, seed_everything

    size = _image_size(args.run)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    G, _ = load_generator(args.run, device)
    images, stems = read_images(args.images, size)
    out = Path(args.out)
    for start in range(0, len(images), 16):
        result = restore(G, images[start:start + 16].to(device))
        for k, image in enumerate(result.image):
            write_image(image, out / restored_name(stems[start + k]))
    print(f"restored {len(images)} images into {out}")
    return 0


def _image_size(run) -> int:
    """The image size of the Defect-GAN run in ``run`` (checked to be one first)."""
    from paper_repro.defect_gan.trainer import config_from_run

    check_run_folder(run, "defect_gan")
    return config_from_run(run)[0].image_size


def register(subparsers) -> None:
    from paper_repro.config import SCALES
    from paper_repro.defect_gan.data import EXTRA_NORMALS_SOURCES
    from paper_repro.runs.precision import PRECISIONS

    parser = subparsers.add_parser("defect-gan", help="Defect-GAN: train, synthesize defects, restore",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="defect_gan_command", required=True, metavar="ACTION")

    p = sub.add_parser("train", help="train Defect-GAN (resumable; runs under torchrun)")
    p.add_argument("--data", default=None, help="CODEBRIM root (default: the bundled synthetic set)")
    p.add_argument("--scale", choices=SCALES, default="demo")
    p.add_argument("--out", required=True, type=output_folder, help="run folder (checkpoints, log.csv, samples/)")
    p.add_argument("--ablation", default=None,
                   help="components to remove, comma-separated: scc, ani, lwc, sc, or stargan, stargan+spade "
                   "(removing lwc removes sc too: the constraints act on LWC's map)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--iterations", type=positive_int, default=None, help="override the scale's iteration count")
    p.add_argument("--normals-source", choices=EXTRA_NORMALS_SOURCES, default=None,
                   help="where the extra normal images come from: auto (default at smoke/demo: procedural for data "
                   "this project generated, original for a real CODEBRIM with its photographs, background-recrop "
                   "otherwise), original (crops of CODEBRIM's original photographs avoiding the defect boxes, §4.1; "
                   "default at full), background-recrop (re-crops of train/background, the named fallback), "
                   "procedural (generated data only)")
    p.add_argument("--normals-dir", default=None,
                   help="with 'original': where to look for original_dataset/; otherwise a folder of normal images "
                   "to re-crop")
    p.add_argument("--device", type=device_name, default="cpu")
    p.add_argument("--seed", type=seed_value, default=42)
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads, at least 1 (default: torch's choice)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="mixed precision: auto (bf16 on GPUs that have it, else fp16; fp32 on the CPU), fp32, "
                   "bf16, fp16 (default: the scale's, auto)")
    p.add_argument("--no-amp", action="store_true", help="the same as --precision fp32")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("synth", help="add defects of chosen classes at a chosen place to normal images, or write "
                       "a training set of them (--layout)")
    p.add_argument("--run", required=True, help="a Defect-GAN run folder")
    p.add_argument("--normals", required=True, help="folder of normal images (any, also unseen ones; with --layout "
                   "searched recursively, unreadable images skipped)")
    p.add_argument("--classes", required=True, type=class_list,
                   help="comma-separated defect classes, e.g. Crack,CorrosionStain, all on every image; with "
                   "--layout each entry is one label set, images take them in turn, + joins classes on one image "
                   "(Crack,Spallation,Crack+Spallation)")
    p.add_argument("--layout", default=None, metavar="{codebrim,folders}",
                   help="write a training set: codebrim (train|val|test/defects|background + metadata/*.xml, read "
                   "by paper_repro.data.CODEBRIM) or folders (train|val|test/<label set>/, for ImageFolder); masks/ "
                   "and maps/ beside, the normals as Background, SYNTHETIC.json; --out must be new or empty")
    p.add_argument("--region", default=None, type=region_box, help="x0,y0,x1,y1 in pixels of the model's image "
                   "size, or fractions in [0, 1] (default: the whole image); a negative first value as --region=-1,...")
    p.add_argument("--mask", default=None, help="a painted region as an image (white = defect here)")
    p.add_argument("--restrict", action="store_true",
                   help="keep pixels outside the region bit for bit (m multiplied by the region; not in the paper)")
    p.add_argument("--n", type=positive_int, default=None,
                   help=f"how many images with defects to write (default {DEFAULT_N}; with --layout 10 per label "
                   "set by default, and at least 3 per label set: one in each of train, val and test)")
    p.add_argument("--out", required=True, type=output_folder)
    p.add_argument("--device", type=device_name, default="cpu")
    p.add_argument("--seed", type=seed_value, default=42)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("restore", help="remove defects from images (restoration, A = 0)")
    p.add_argument("--run", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True, type=output_folder)
    p.add_argument("--device", type=device_name, default="cpu")
    p.add_argument("--seed", type=seed_value, default=42)
    p.set_defaults(func=cmd_restore)
