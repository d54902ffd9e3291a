"""Defect-GAN's step as a unit: update_critic, update_generator, the n_critic schedule (issue 28)."""
import dataclasses

import torch

from paper_repro.config import get_config
from paper_repro.defect_gan.trainer import (build_networks, generator_turn, learning_rate, train_step,
                                            update_critic, update_generator)
from paper_repro.runs.precision import resolve_precision


def _setup(n_critic: int = 5):
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_config("defect_gan", "smoke"), n_critic=n_critic, iterations=20)
    G, D = build_networks(cfg, 5)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr, betas=cfg.betas)
    size = cfg.image_size
    n, d = torch.rand(2, 3, size, size) * 2 - 1, torch.rand(2, 3, size, size) * 2 - 1
    c = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 1.0, 0, 1.0]])
    return cfg, G, D, opt_g, opt_d, n, d, c, resolve_precision("fp32", "cpu")


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_the_generator_moves_on_every_n_critic_th_iteration_only():
    assert [generator_turn(s, 5) for s in range(10)] == [False] * 4 + [True] + [False] * 4 + [True]
    assert all(generator_turn(s, 1) for s in range(3))
    cfg, G, D, opt_g, opt_d, n, d, c, precision = _setup(n_critic=3)
    g_turns = []
    for step in range(6):
        g_before, d_before = _flat(G), _flat(D)
        logs = train_step(step, n, d, c, G, D, opt_g, opt_d, cfg, precision)
        assert not torch.equal(_flat(D), d_before)  # the critic moves every iteration
        g_turns.append(not torch.equal(_flat(G), g_before))
        assert ("G/total" in logs) == g_turns[-1] and "D/total" in logs
        assert logs["lr"] == learning_rate(step, cfg) == opt_d.param_groups[0]["lr"] == opt_g.param_groups[0]["lr"]
    assert g_turns == [False, False, True, False, False, True]


def test_a_critic_update_moves_only_the_critic_and_a_generator_update_only_the_generator():
    cfg, G, D, opt_g, opt_d, n, d, c, precision = _setup()
    target = c.flip(0)
    g0, d0 = _flat(G), _flat(D)
    logs = update_critic(G, D, opt_d, n, d, c, target, cfg, precision)
    assert torch.equal(_flat(G), g0) and not torch.equal(_flat(D), d0)
    assert {"D/adv", "D/gp", "D/cls_real", "D/total"} <= set(logs)
    d1 = _flat(D)
    logs = update_generator(G, D, opt_g, n, d, c, target, cfg, precision)
    assert torch.equal(_flat(D), d1) and not torch.equal(_flat(G), g0)
    assert {"G/adv", "G/cls_fake", "G/rec", "G/sd_cyc", "G/sd_con", "G/total"} <= set(logs)
