"""benchmarks/full_budget.py: the setup page's estimate of what ``full`` costs on a GPU, kept current."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import full_budget  # noqa: E402


@pytest.fixture(scope="module")
def costs() -> full_budget.StepCosts:
    return full_budget.StepCosts()   # each step counted once (fake tensors, full geometry), shared by the tests


def chapter_flops(configs, costs) -> dict[str, float]:
    return {b.chapter.name: b.flops for b in full_budget.budgets(configs, costs)}


def test_setup_page_shows_what_the_configs_cost_now(costs):
    page = full_budget.SETUP_PAGE.read_text(encoding="utf-8")
    expected = full_budget.render(full_budget.full_configs(), costs)
    assert full_budget.between_markers(page) == expected, (
        "book/reference/setup.md's table of what `full` costs is stale: run `python benchmarks/full_budget.py --write`")


def test_flops_follow_the_configured_step_counts(costs):
    base = chapter_flops(full_budget.full_configs(), costs)
    doubled = chapter_flops(full_budget.full_configs(
        defect_gan={"iterations": 1_000_000}, defect_gan_tables={"iterations": 1_000_000},
        dadnet={"epochs": 1_400}, dadnet_tables={"epochs": 1_400}), costs)
    for name, flops in base.items():
        factor = 1 if name == "Defect-GAN: Table 3" else 2   # its synthesizers are Table 1's; classifiers unchanged
        assert doubled[name] == pytest.approx(factor * flops), name


def test_runs_shared_between_chapters_are_counted_once(costs):
    one_seed = {b.chapter.name: b.new_runs for b in full_budget.budgets(
        full_budget.full_configs(gan_tables={"training_seeds": 1}), costs)}
    assert one_seed["Defect-GAN: training"] == 1
    assert one_seed["Defect-GAN: Table 1"] == 3    # CycleGAN-style, StarGAN, StarGAN + SPADE; Defect-GAN is shared
    assert one_seed["Defect-GAN: Table 2"] == 3    # the three rows Table 1 did not train
    assert one_seed["Defect-GAN: Table 3"] == 6    # the classifiers only


def test_a_linear_layer_counts_as_by_hand():
    batch, n_in, n_out = 5, 4, 3

    def build():
        layer = torch.nn.Linear(n_in, n_out, bias=False)
        x = torch.randn(batch, n_in, requires_grad=True)
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)

        def step():
            layer(x).sum().backward()
            optimizer.step()
        return step

    cost = full_budget.measure_step(build)
    product = 2 * batch * n_in * n_out
    assert cost.flops == 3 * product                # forward, gradient of the input, gradient of the weight
    assert cost.activation_bytes == batch * n_in * 2   # x, saved for the weight's gradient, at 2 bytes
    weights = n_in * n_out
    assert cost.state_bytes == weights * (4 + 4 + 2)   # fp32 weight and gradient, bf16 copy (plain SGD: no state)


def test_numbers_read_as_numbers():
    assert [full_budget.two_figures(x) for x in (24.0, 3456, 0.01234, 1.0e-7, 199.6)] == [
        "24", "3,500", "0.012", "0.00000010", "200"]
