"""lanas.transfer: a target's predictor from a few samples, another's predictor and the
network's costs."""

import numpy as np
import pytest
import torch

from lanas import quality
from lanas.costs import GRAPH_COSTS, KIND_PREFIX, GraphCosts, op_costs
from lanas.encoding import EDGE_GROUPS, encode_genotype, sharing_features
from lanas.network import MacroSettings
from lanas.predictor import LatencyPredictor
from lanas.space import SearchSpace
from lanas.transfer import (
    KIND_LIFT,
    PRIOR_LIFT,
    REPEAT_LIFT,
    REPEATS,
    Prior,
    fit,
    fit_transfer,
    in_current_layout,
    loo_mape,
    predict_np,
    select_diverse,
    table_np,
    transferred,
)

SPACE = SearchSpace()
MACRO = MacroSettings(layers=3, channels=4, in_channels=1)
RESOLUTION = 8


def random_predictor(seed: int, sharing: bool = True, repeats: bool = True) -> LatencyPredictor:
    torch.manual_seed(seed)
    p = LatencyPredictor.for_space(SPACE, (16,), sharing=sharing, repeats=repeats)
    with torch.no_grad():
        p.additive.weight.uniform_(0.05, 0.5)
        p.mlp[-1].weight.normal_(0, 0.05)
        p.mean.fill_(1.0)
        p.std.fill_(0.2)
    return p.eval()


@pytest.fixture(scope="module")
def archs():
    x = torch.stack([encode_genotype(g, SPACE) for g in SPACE.sample_unique(200, 0)])
    return x, table_np(LatencyPredictor.for_space(SPACE, ()), x)  # op counts per group, merged ops, repeated ops


@pytest.fixture(scope="module")
def costs():
    return op_costs(SPACE, MACRO, RESOLUTION)


@pytest.fixture(scope="module")
def prior(costs):
    return Prior.for_predictor(random_predictor(0), SPACE, costs)


def test_an_affine_target_with_a_per_op_shift_is_recovered_from_few_samples(archs, prior):
    """NEW = 0.1 + 2 * SRC + 0.3 per skip connection in the normal cell: the transfer
    finds it from 30 samples, where the rescaled source alone cannot."""
    x, groups = archs
    src = random_predictor(0)
    s = predict_np(src)(x)
    skip = SPACE.ops.index("skip_connect")
    y = 0.1 + 2.0 * s + 0.3 * groups[:, skip]
    f, loo = fit_transfer(s[:30], groups[:30], y[:30], prior)
    assert f.model == "source+costs" and f.b > 0 and loo < 0.02
    assert np.abs(f.predict(s[30:], groups[30:]) / y[30:] - 1).mean() < 0.01
    scale = np.sum(s[:30] / y[:30]) / np.sum((s[:30] / y[:30]) ** 2)
    assert np.abs(scale * s[30:] / y[30:] - 1).mean() > 0.03
    # the fit is a LatencyPredictor of the source's shape, predicting the same
    new = transferred(src, f, x)
    assert np.allclose(predict_np(new)(x[30:]), f.predict(s[30:], groups[30:]), rtol=1e-4)
    assert float(new.typical) == pytest.approx(float(np.median(predict_np(new)(x))), rel=1e-3)  # torch: lower middle


def test_a_target_that_follows_the_network_costs_needs_few_samples(archs, prior):
    """NEW is dispatch-bound (latency = 0.5 + 0.02 per ATen operator, what eager PyTorch
    pays): 8 samples and the costs find it, while the lookup table from the same 8
    samples cannot, and the unrelated source is not needed."""
    x, groups = archs
    s = predict_np(random_predictor(5))(x)
    aten = groups @ prior.costs[:, 1]
    y = 0.5 + 0.02 * (aten - aten.min() + 10)
    f = fit(s[:8], groups[:8], y[:8], prior, source=False)
    err = np.abs(f.predict(s[8:], groups[8:]) / y[8:] - 1).mean()
    lut = quality.fit_lut(groups[:8], y[:8])
    assert err < 0.01 and err < np.abs(lut.predict(groups[8:]) / y[8:] - 1).mean() / 3


def test_too_few_samples_and_a_negative_scale_are_refused(archs, prior):
    x, groups = archs
    src = random_predictor(2)
    s = predict_np(src)(x)
    with pytest.raises(ValueError, match="at least 3 measured architectures"):
        fit_transfer(s[:2], groups[:2], s[:2], prior)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        from lanas.transfer import Fit

        transferred(src, Fit(5.0, -1.0, np.zeros(groups.shape[1])), x)


def test_a_node_kind_none_of_the_samples_has_is_left_out_not_blown_up(archs, costs):
    """A kind of node only one op makes (OpenVINO's Pad): its least-squares graph costs are
    ~1e-15 on every other feature, so on samples without that op its column is rounding
    noise, which the cost columns' lift would scale into a huge coefficient."""
    x, groups = archs
    src = random_predictor(0)
    s = predict_np(src)(x)
    pad = SPACE.ops.index("max_pool_3x3")  # in the normal cell's first edge group
    width = groups.shape[1] - src.repeat_width  # graph costs are fitted on the table without its repeat features
    per_feature = np.zeros((width, 3))
    per_feature[:, 0] = 1.0
    per_feature[:, 2] = np.random.default_rng(0).normal(0, 1e-15, width)
    per_feature[pad, 2] = 1.0
    names = GRAPH_COSTS + (KIND_PREFIX + "Pad",)
    prior = Prior.for_predictor(src, SPACE, costs, GraphCosts(names, per_feature))
    y = 0.2 + 1.5 * s + 0.05 * groups[:, pad]
    without = np.flatnonzero(groups[:, pad] == 0)[:8]
    pad_column = prior.costs[:, prior.names.index(KIND_PREFIX + "Pad")]
    assert len(without) == 8 and np.ptp(groups[without] @ pad_column) < 1e-12
    f = fit(s[without], groups[without], y[without], prior)
    assert np.abs(f.predict(s, groups) / y - 1).max() < 0.5


def test_a_source_that_ranks_the_target_backwards_is_dropped(archs, prior):
    """NEW falls as SRC rises (NEW = a table of its own, less SRC and what SRC explains of
    that table): the fitted scale comes out negative, so the source is dropped and the
    costs and corrections on NEW's own samples are the predictor (b = 0: the source's
    table and MLP switched off)."""
    x, groups = archs
    src = random_predictor(4)
    s = predict_np(src)(x)
    own = groups @ np.random.default_rng(0).uniform(0.05, 0.3, groups.shape[1])
    explained = max(np.polyfit(s, own, 1)[0], 0.0)  # both tables weigh every op positively
    y = 4.0 + own - (1.0 + explained) * s
    f = fit(s[:40], groups[:40], y[:40], prior)
    assert f.model == "costs" and f.b == 0
    assert loo_mape(s[:40], groups[:40], y[:40], prior) == loo_mape(s[:40], groups[:40], y[:40], prior, source=False)
    new = transferred(src, f, x)
    assert np.allclose(predict_np(new)(x[40:]), f.predict(s[40:], groups[40:]), rtol=1e-4)
    scale = np.sum(s[:40] / y[:40]) / np.sum((s[:40] / y[:40]) ** 2)
    err = np.abs(predict_np(new)(x[40:]) / y[40:] - 1).mean()
    assert err < 0.03 and err < np.abs(scale * s[40:] / y[40:] - 1).mean() / 2


def older_layout(p: LatencyPredictor) -> LatencyPredictor:
    """``p`` (without repeat features) as fitted before the FactorizedReduce "shift"
    sharing feature existed."""
    assert p.repeat_width == 0
    drop = 3 * len(SPACE.ops) + sharing_features(SPACE).index((1, "shift"))
    state = p.state_dict()
    keep = [i for i in range(state["additive.weight"].shape[1]) if i != drop]
    state["additive.weight"] = state["additive.weight"][:, keep]
    state["share_scatter"] = state["share_scatter"][:, [i - 3 * len(SPACE.ops) for i in keep[3 * len(SPACE.ops) :]]]
    return LatencyPredictor.from_state(state, p.hidden).eval()


def test_an_older_table_layout_is_brought_to_the_current_one_so_the_transfer_can_correct_it(archs, prior, costs):
    """A source fitted without a sharing feature or the repeat features (an older run's)
    predicts the same on the current layout, with those features at weight 0; a target
    that merges, or reuses kernels, where the old layout cannot see it is then fitted
    through it."""
    x, groups = archs
    older = (random_predictor(6, sharing=False, repeats=False), older_layout(random_predictor(6, repeats=False)))
    for old in (random_predictor(6, repeats=False), *older):  # the last: without the shift feature too
        assert old.additive.in_features < groups.shape[1]
        now = in_current_layout(old, SPACE)
        assert now.additive.in_features == groups.shape[1]
        assert np.allclose(predict_np(now)(x), predict_np(old)(x), atol=1e-5)
        assert in_current_layout(now, SPACE) is now
    shift = 3 * len(SPACE.ops) + sharing_features(SPACE).index((1, "shift"))
    repeated = slice(groups.shape[1] - len(EDGE_GROUPS), None)  # the repeat features, one per edge group
    assert now.additive.weight[0, shift] == 0 and torch.all(now.additive.weight[0, repeated] == 0)
    s = predict_np(now)(x)
    # NEW merges the shifted branch of FactorizedReduce, and runs a repeated op cheaper
    y = 0.2 + s - 0.05 * groups[:, shift] - 0.03 * groups[:, repeated].sum(1)
    f = fit(s[:60], groups[:60], y[:60], prior)
    assert np.abs(f.predict(s[60:], groups[60:]) / y[60:] - 1).mean() < 0.01


def test_the_prior_pools_each_op_over_edge_groups_and_refuses_what_does_not_fit(costs):
    k = len(SPACE.ops)
    p = Prior.for_predictor(random_predictor(0), SPACE, costs)
    repeats = len(EDGE_GROUPS)
    width = 3 * k + len(sharing_features(SPACE)) + repeats
    assert p.costs.shape == (width, 4) and np.all(p.costs[3 * k :, :3] == 0)
    # the repeat features: summed by one column of their own, in no pooled class
    assert np.all(p.costs[:, 3] == np.r_[np.zeros(width - repeats), np.ones(repeats)])
    assert np.all(p.classes[: width - repeats].sum(1) == 1) and np.all(p.classes[width - repeats :] == 0)
    skip = SPACE.ops.index("skip_connect")
    assert np.all(p.classes[[skip, k + skip, 2 * k + skip]].argmax(1) == p.classes[skip].argmax())
    assert p.classes.shape[1] == k + len({c for _, c in sharing_features(SPACE)})
    # a predictor without sharing features has no merge classes
    plain = Prior.for_predictor(random_predictor(0, sharing=False, repeats=False), SPACE, costs)
    assert plain.classes.shape == (3 * k, k) and plain.names == ("mflops", "aten_ops", "modules")
    assert p.names == ("mflops", "aten_ops", "modules", REPEATS) and list(p.lifts) == [PRIOR_LIFT] * 3 + [REPEAT_LIFT]
    # a compiled runtime's graph (fitted without the repeat features: a repeated op adds no
    # node): its nodes and reorders lifted as the costs, its node kinds less
    names = GRAPH_COSTS + (KIND_PREFIX + "Convolution", KIND_PREFIX + "Subgraph")
    graph = GraphCosts(names, np.ones((width - repeats, len(names))))
    compiled = Prior.for_predictor(random_predictor(0), SPACE, costs, graph)
    assert compiled.costs.shape == (width, 8) and compiled.names == p.names[:3] + names + (REPEATS,)
    assert np.all(compiled.costs[width - repeats :, 3:7] == 0)
    assert list(compiled.lifts) == [PRIOR_LIFT] * 5 + [KIND_LIFT] * 2 + [REPEAT_LIFT]
    with pytest.raises(ValueError, match="graph costs of 5 features do not fit the predictor's table of"):
        Prior.for_predictor(random_predictor(0), SPACE, costs, GraphCosts(GRAPH_COSTS, np.zeros((5, 2))))
    with pytest.raises(ValueError, match=r"graph costs of shape \(5, 3\) do not match their 2 names"):
        GraphCosts(GRAPH_COSTS, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="op costs of 10 .* do not fit"):
        Prior.for_predictor(random_predictor(0), SPACE, costs[:10])


def test_diverse_picks_cover_the_source_latency_the_costs_and_the_op_composition_and_are_deterministic(archs, prior):
    """k-means picks: nearer to every architecture, in the standardised features they are
    clustered on, than random picks are, and reaching both tails of SRC's latency."""
    x, groups = archs
    s = predict_np(random_predictor(3))(x)
    rng = np.random.default_rng(0)
    randoms = [rng.choice(len(s), 20, replace=False) for _ in range(50)]
    for p in (None, prior):
        feats = np.column_stack([s, groups] if p is None else [s, groups @ p.costs, groups])
        feats = (feats - feats.mean(0)) / np.where(feats.std(0) > 0, feats.std(0), 1.0)

        def gap(pick, feats=feats):  # mean distance of an architecture to its nearest pick
            return np.linalg.norm(feats[:, None] - feats[pick][None], axis=2).min(1).mean()

        pick = select_diverse(s, groups, 20, p)
        assert len(set(pick)) == 20 and pick == select_diverse(s, groups, 20, p)
        assert gap(pick) < min(gap(r) for r in randoms)
        assert s[pick].min() < np.quantile(s, 0.25) and s[pick].max() > np.quantile(s, 0.75)
    with pytest.raises(ValueError, match="cannot pick 300 of 200"):
        select_diverse(s, groups, 300)


def test_the_report_says_whether_the_source_was_kept():
    from lanas_pipeline.report.markdown import transfer_sentence

    t = {"source": "cpu-t1-torch-b1", "hardware": "hw", "samples": 20, "model": "costs",
         "loo_mape": {"costs": 0.05}, "costs": ["mflops", "aten_ops"]}  # fmt: skip
    text = transfer_sentence("cpu-t1-onnxruntime-b1", t)
    assert "fitted on its 20 measured architectures alone, with the network's mflops, aten_ops" in text
    assert "5.00%" in text and "dropped" in text and "transferred**" not in text
    kept = {**t, "model": "source+costs", "loo_mape": {"source+costs": 0.07}}
    text = transfer_sentence("cpu-t1-onnxruntime-b1", kept)
    assert "**transferred** from `cpu-t1-torch-b1`" in text and "7.00%" in text
    kinds = {**kept, "costs": ["mflops", "graph_nodes", "nodes:Conv", "nodes:Relu", "nodes:Concat"]}
    text = transfer_sentence("cpu-t1-onnxruntime-b1", kinds)
    assert "with the network's mflops, graph_nodes, nodes of each of 3 kinds (model" in text
    repeats = {**kept, "costs": ["mflops", "nodes:Conv", REPEATS]}
    assert "with the network's mflops, repeated ops, nodes of each of 1 kinds" in transfer_sentence("x", repeats)
    old = {"source": "s", "hardware": "h", "samples": 9, "model": "affine", "loo_mape": {"affine": 0.03}}
    assert "**transferred**" in transfer_sentence("x", old)  # a run transferred before the costs still reports
