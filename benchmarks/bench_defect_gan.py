"""Defect-GAN training-step time against plain StarGAN, same sizes (128 px, batch 4, conv_dim 64).

One step = one critic update + one generator update. Defect-GAN's step runs both cycles on B normal
+ B defect images (2B images through G, twice); the plain StarGAN step (``stargan_plain.py``, the
authors' solver) is timed on 2B images too (same image count) and on B. Prints seconds per step
(median of --steps after one warm-up) and the ratios.

    python benchmarks/bench_defect_gan.py [--size 128] [--batch 4] [--conv-dim 64] [--steps 3] [--threads 2]
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import stargan_plain  # noqa: E402
from timing import timed  # noqa: E402

from paper_repro.config import get_config  # noqa: E402
from paper_repro.defect_gan.losses import discriminator_loss, generator_loss  # noqa: E402
from paper_repro.defect_gan.trainer import build_networks  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--conv-dim", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    C, B, S = 5, args.batch, args.size
    cfg = get_config("defect_gan", "full")
    repeat = cfg.d_repeat if S == 128 else max(1, (S // 2).bit_length() - 1)
    cfg = dataclasses.replace(cfg, image_size=S, conv_dim=args.conv_dim, d_conv_dim=args.conv_dim,
                              d_repeat=repeat)
    G, D = build_networks(cfg, C)
    og = torch.optim.Adam(G.parameters(), cfg.lr, betas=cfg.betas)
    od = torch.optim.Adam(D.parameters(), cfg.lr, betas=cfg.betas)
    n, d = torch.rand(B, 3, S, S) * 2 - 1, torch.rand(B, 3, S, S) * 2 - 1
    c = (torch.rand(B, C) > 0.5).float()

    def defect_gan_step():
        od.zero_grad()
        discriminator_loss(G, D, n, d, c, c.flip(0), cfg)[0].backward()
        od.step()
        og.zero_grad()
        generator_loss(G, D, n, d, c, c.flip(0), cfg)[0].backward()
        og.step()

    def stargan_step(batch):
        sg, sd = stargan_plain.Generator(args.conv_dim, C, cfg.n_res_blocks), stargan_plain.Discriminator(
            S, args.conv_dim, C, repeat)
        sog = torch.optim.Adam(sg.parameters(), cfg.lr, betas=cfg.betas)
        sod = torch.optim.Adam(sd.parameters(), cfg.lr, betas=cfg.betas)
        x, org = torch.rand(batch, 3, S, S) * 2 - 1, (torch.rand(batch, C) > 0.5).float()
        return lambda: stargan_plain.train_step(sg, sd, sog, sod, x, org, org.flip(0))

    params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    print(f"size {S}, batch {B} normal + {B} defect, conv_dim {args.conv_dim}, threads {args.threads}, "
          f"torch {torch.__version__}")
    print(f"Defect-GAN params: G {params(G):.2f}M, D {params(D):.2f}M; plain StarGAN G "
          f"{params(stargan_plain.Generator(args.conv_dim, C, cfg.n_res_blocks)):.2f}M")
    t_dg = timed(defect_gan_step, args.steps)
    t_sg2 = timed(stargan_step(2 * B), args.steps)
    t_sg1 = timed(stargan_step(B), args.steps)
    print(f"Defect-GAN step (both cycles, {2 * B} images): {t_dg:.2f} s")
    print(f"plain StarGAN step ({2 * B} images):            {t_sg2:.2f} s   ratio Defect-GAN / StarGAN = {t_dg / t_sg2:.2f}")
    print(f"plain StarGAN step ({B} images):            {t_sg1:.2f} s   ratio = {t_dg / t_sg1:.2f}")


if __name__ == "__main__":
    main()
