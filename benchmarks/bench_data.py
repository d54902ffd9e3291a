"""Data benchmark: how fast the bundled set is generated and how fast the loaders read it.

    python benchmarks/bench_data.py [--n 600] [--sizes 128,256] [--workers 1,2]

Prints, per image size:
- ``render``: drawing images in memory (surface + defects + light), one process; images/s of wall
  time and of this process's CPU time (the CPU figure is what an idle machine would reach).
- ``write``: ``write_mvtec`` / ``write_codebrim`` end to end (render + PNG files), with 1 and 2
  worker processes; images/s of wall time.
- ``load``: ``MVTecAD`` and ``CODEBRIM`` through a ``DataLoader`` (batch 16, no workers), items/s.
The 1-minute load average is printed too: on a shared machine, wall-clock figures fall with it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from paper_repro.data import CODEBRIM, MVTecAD, synthetic


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_render(size: int, n: int) -> dict:
    cats = list(synthetic.BUNDLED_CATEGORIES)

    def run():
        for i in range(n):
            cat = cats[i % len(cats)]
            rng = synthetic._rng(0, "bench", i)
            defects = synthetic.BUNDLED_CATEGORIES[cat]
            kind = defects[i % len(defects)] if i % 2 else None  # half normal, half defective
            types = [] if kind is None else (synthetic._combined(cat, rng) if kind == "combined" else [kind])
            synthetic.render(cat, types, size, rng)

    wall, cpu = timed(run)
    return {"render img/s (wall)": n / wall, "render img/s (cpu)": n / cpu}


def bench_write(size: int, n: int, workers: int, tmp: Path) -> dict:
    per_cat = max(1, n // (6 * 2))
    out_m, out_c = tmp / f"m{size}-{workers}", tmp / f"c{size}-{workers}"
    wall_m, _ = timed(lambda: synthetic.write_mvtec(out_m, size=size, n_train=per_cat, n_test=max(1, per_cat // 6),
                                                    progress=False, workers=workers))
    n_m = sum(1 for p in out_m.rglob("*.png") if not p.name.endswith("_mask.png"))
    wall_c, _ = timed(lambda: synthetic.write_codebrim(out_c, size=size, n_train=n // 2, n_test=n // 10,
                                                       progress=False, workers=workers))
    n_c = sum(1 for _ in out_c.rglob("*.png"))
    return {f"write mvtec img/s ({workers} proc)": n_m / wall_m, f"write codebrim img/s ({workers} proc)": n_c / wall_c,
            "_roots": (out_m, out_c)}


def bench_load(mvtec_root: Path, codebrim_root: Path, size: int) -> dict:
    out = {}
    sets = {"MVTecAD": [MVTecAD(mvtec_root, c, s, image_size=size) for c in synthetic.BUNDLED_CATEGORIES
                        for s in ("train", "test")],
            "CODEBRIM": [CODEBRIM(codebrim_root, s, image_size=size) for s in ("train", "val", "test")]}
    for name, datasets in sets.items():
        data = torch.utils.data.ConcatDataset(datasets)
        wall, _ = timed(lambda: [None for _ in DataLoader(data, batch_size=16, num_workers=0)])
        out[f"load {name} items/s"] = len(data) / wall
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="images per measurement")
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average before: "
          f"{os.getloadavg()[0]:.1f}; {args.n} images per measurement")
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            row = {"size": size, **bench_render(size, args.n)}
            roots = None
            for workers in (int(w) for w in args.workers.split(",")):
                result = bench_write(size, args.n, workers, tmp)
                roots = result.pop("_roots")
                row.update(result)
            row.update(bench_load(*roots, size))
            row["load average"] = os.getloadavg()[0]
            rows.append(row)
            shutil.rmtree(tmp)
            tmp.mkdir()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keys = [k for k in rows[0] if k != "size"]
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  " + "  ".join(f"{r['size']:>7d} px" for r in rows))
    for k in keys:
        print(f"{k:{width}}  " + "  ".join(f"{r[k]:10.1f}" for r in rows))


if __name__ == "__main__":
    main()
