"""lanas.budget: the budget's window and multiplier, reachability, and a budget search
landing inside its window (and resuming) on a predictor with known per-op costs."""

import itertools

import pytest
import torch

from lanas.budget import MIN_DUAL_SCALE, Budget, BudgetSettings, reachable
from lanas.data import DataSettings, load_splits, loader
from lanas.encoding import encode_genotype, encoding_size
from lanas.network import MacroSettings
from lanas.predictor import LatencyPredictor
from lanas.search import SearchSettings, build_supernet, search
from lanas.space import SearchSpace
from lanas.topology import NODES

SPACE = SearchSpace()


def linear_predictor(seed: int) -> LatencyPredictor:
    """A predictor linear in the encoding, with a random positive cost per (cell, edge, op)."""
    g = torch.Generator().manual_seed(seed)
    return LatencyPredictor.table(torch.rand(encoding_size(SPACE), generator=g) + 0.1, 1.0)


def exact_extremes(p: LatencyPredictor) -> tuple[float, float]:
    """Min and max of a linear predictor over every genotype, node by node: each node
    takes two distinct inputs, each edge its cheapest (dearest) choosable op."""
    w = p.additive.weight.detach().reshape(2, 14, len(SPACE.ops))
    choosable = torch.tensor([o != "none" for o in SPACE.ops])
    lo = hi = float(p.additive.bias.detach())
    for c in range(2):
        start = 0
        for node in NODES:
            edges = w[c, start : start + node][:, choosable]
            cheap, dear = edges.min(-1).values, edges.max(-1).values
            lo += min(float(cheap[i] + cheap[j]) for i, j in itertools.combinations(range(node), 2))
            hi += max(float(dear[i] + dear[j]) for i, j in itertools.combinations(range(node), 2))
            start += node
    return lo, hi


def test_window_and_multiplier():
    b = Budget(10.0, BudgetSettings(window=(0.8, 0.9), dual_lr=1.0, max_lambda=0.5))
    assert b.aim == pytest.approx(8.5)
    assert b.inside(8.0) and b.inside(9.0) and not b.inside(7.9) and not b.inside(9.1)
    assert b.update(0.0, 8.5 * 1.2, steps_per_epoch=10) == pytest.approx(0.02)  # too slow: lambda rises
    assert b.update(0.0, 8.5 * 0.8, steps_per_epoch=10) == pytest.approx(-0.02)  # too fast: it falls
    assert b.update(0.49, 100.0, steps_per_epoch=1) == 0.5  # bounded
    bads = (dict(window=(0.9, 0.8)), dict(window=(0.5, 1.2)), dict(dual_lr=0.0), dict(extra_epochs=-1), dict(damping=0))
    for bad in bads:
        with pytest.raises(ValueError):
            BudgetSettings(**bad)
    for limit in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="latency budget"):
            Budget(limit)


def test_the_dual_step_is_damped_each_time_the_derived_architecture_jumps_over_the_window():
    b = Budget(10.0, BudgetSettings(window=(0.8, 0.9), dual_lr=1.0, damping=0.5))
    assert [b.side(v) for v in (7.9, 8.0, 9.0, 9.1)] == [-1, 0, 0, 1]
    scale, side = 1.0, 0
    for predicted, expected in ((12.0, 1.0), (8.5, 1.0), (11.0, 1.0), (7.0, 0.5), (6.0, 0.5), (9.5, 0.25)):
        scale, side = b.damp(scale, side, predicted)  # inside, or on the same side again: no jump
        assert scale == expected
    assert b.update(0.0, 8.5 * 1.2, steps_per_epoch=10, scale=scale) == pytest.approx(0.02 * 0.25)
    for _ in range(10):
        scale, side = b.damp(scale, side, 12.0 if side < 0 else 7.0)
    assert scale == MIN_DUAL_SCALE  # never below
    plain = Budget(10.0, BudgetSettings(window=(0.8, 0.9), damping=1.0))
    assert plain.damp(1.0, 1, 7.0) == (1.0, -1)


def op_cost_predictor(costs: list[float]) -> LatencyPredictor:
    """A predictor linear in the op counts: the same cost for an op on every edge."""
    return LatencyPredictor.table(torch.tensor(costs).repeat(28), 1.0)


def test_reachable_is_bounded_by_the_corner_architectures_and_what_was_measured():
    costs = [0.0, 0.3, 0.2, 0.1, 1.0, 2.0, 0.6, 1.2]  # 'none' is never chosen
    p = op_cost_predictor(costs)
    predict = lambda x: p(x).detach()  # noqa: E731
    assert reachable(predict, SPACE) == pytest.approx((1.0 + 16 * 0.1, 1.0 + 16 * 2.0))  # all skip, all sep 5x5
    assert reachable(predict, SPACE, [0.5, 50.0]) == (0.5, 50.0)
    pool = torch.stack([encode_genotype(g, SPACE) for g in SPACE.sample_unique(256, 0)])
    lo, hi = reachable(predict, SPACE)
    assert bool((predict(pool) >= lo).all() and (predict(pool) <= hi).all())  # no sampled architecture beyond


def test_a_corner_predicted_at_or_below_zero_is_no_latency_and_is_left_out():
    costs = [0.0, 0.3, -0.2, 0.1, 1.0, 2.0, 0.6, 1.2]  # all avg_pool extrapolates to 1 - 16 * 0.2 < 0
    p = op_cost_predictor(costs)
    predict = lambda x: p(x).detach()  # noqa: E731
    assert reachable(predict, SPACE) == pytest.approx((1.0 + 16 * 0.1, 1.0 + 16 * 2.0))
    assert reachable(predict, SPACE, [0.5]) == pytest.approx((0.5, 1.0 + 16 * 2.0))
    below = op_cost_predictor([-1.0] * 8)  # every corner below zero: only what was measured bounds it
    assert reachable(lambda x: below(x).detach(), SPACE, [0.5, 4.0]) == (0.5, 4.0)
    with pytest.raises(ValueError, match="no corner architecture is predicted at a latency > 0"):
        reachable(lambda x: below(x).detach(), SPACE)


@pytest.fixture(scope="module")
def loaders():
    splits = load_splits(DataSettings(limit=128))
    return loader(splits.train, 32, True, 1), loader(splits.val, 32, True, 2)


SETTINGS = SearchSettings(mode="gdas", layers=2, channels=8, epochs=2, batch_size=32, a_lr=0.05)


def _budget_search(predictor, loaders, limit, state=None, on_epoch=None):
    torch.manual_seed(0)
    net = build_supernet(SPACE, MacroSettings(in_channels=1), SETTINGS)
    budget = Budget(limit, BudgetSettings(extra_epochs=20))
    return search(net, predictor, *loaders, SETTINGS, 0.0, budget=budget, state=state, on_epoch=on_epoch)


@pytest.mark.parametrize("share", [0.25, 0.6])
def test_a_budget_search_lands_inside_its_window(loaders, share):
    """Budgets a quarter and 60 % of the way from the fastest to the slowest architecture:
    the derived architecture's predicted latency ends inside [0.87, 0.95] x budget, and the
    history says how (the multiplier, its updates, whether it is done)."""
    p = linear_predictor(0)
    lo, hi = exact_extremes(p)
    limit = (lo + share * (hi - lo)) / 0.91
    result = _budget_search(p, loaders, limit)
    predicted = float(p(encode_genotype(result.genotype, SPACE)[None]))
    assert 0.87 * limit <= predicted <= 0.95 * limit, (predicted / limit, result.history[-1])
    last = result.history[-1]
    assert last["done"] and last["predicted_latency_ratio"] == pytest.approx(predicted, rel=1e-5)
    assert (
        last["lam_updates"]
        == sum(h["lam_updates"] - g.get("lam_updates", 0) for g, h in zip([{}] + result.history[:-1], result.history))
        > 0
    )
    assert all(not h["done"] for h in result.history[:-1])


def test_a_resumed_budget_search_is_the_uninterrupted_one(loaders):
    p = linear_predictor(0)
    lo, hi = exact_extremes(p)
    limit = (lo + 0.25 * (hi - lo)) / 0.91
    snaps = []
    through = _budget_search(p, loaders, limit, on_epoch=lambda m, s: snaps.append(s))
    assert len(snaps) >= 2
    resumed = _budget_search(p, loaders, limit, state=snaps[0])
    assert resumed.genotype == through.genotype and resumed.history == through.history
    assert snaps[0]["lam"] == through.history[0]["lam"]
