"""The repeat features: per edge group, how many of its ops repeat one the group already
has (a runtime that compiles a kernel per distinct op runs such a cell through fewer
kernels)."""

import collections

import pytest
import torch

from lanas.encoding import EDGE_GROUPS, encode_alpha, encode_genotype, repeat_matrices
from lanas.genotype import Genotype
from lanas.predictor import LatencyPredictor, additive_predictor
from lanas.space import SearchSpace
from lanas.topology import NONE, edge_stride

SPACE = SearchSpace()


def repeats_by_hand(g: Genotype) -> list[float]:
    """Per edge group (normal, reduce stride 2, reduce stride 1): the sum over its ops but
    ``none`` of the op's count less one, 0 where it is absent."""
    counts = collections.Counter()
    for cell in ("normal", "reduce"):
        for _, inp, op in g.edges(cell):
            group = 0 if cell == "normal" else (1 if edge_stride(True, inp) == 2 else 2)
            counts[group, op] += 1
    return [float(sum(max(n - 1, 0) for (gr, op), n in counts.items() if gr == group and op != NONE))
            for group in range(len(EDGE_GROUPS))]  # fmt: skip


def test_the_features_count_the_ops_that_repeat_one_in_their_edge_group():
    gather, scatter = repeat_matrices(SPACE)
    assert scatter.shape == (3 * (len(SPACE.ops) - 1), len(EDGE_GROUPS))
    model = LatencyPredictor.for_space(SPACE, ())
    assert model.repeat_width == len(EDGE_GROUPS)
    for g in SPACE.sample_unique(100, 0) + SPACE.sample_unique(100, 0, concentration=0.3):
        x = encode_genotype(g, SPACE)
        expected = torch.tensor(repeats_by_hand(g))
        assert torch.equal(torch.relu(x @ gather - 1) @ scatter, expected)
        assert torch.equal(model.table_features(x)[-len(EDGE_GROUPS) :], expected)
        assert torch.equal(model.table_features(x, repeats=False), model.table_features(x)[: -len(EDGE_GROUPS)])
    # a normal cell of four sep_conv_3x3 and four max-pools repeats 3 + 3 ops
    normal = [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["max_pool_3x3", 0], ["max_pool_3x3", 2],
              ["sep_conv_3x3", 1], ["max_pool_3x3", 3], ["sep_conv_3x3", 0], ["max_pool_3x3", 4]]  # fmt: skip
    reduce = [["skip_connect", 0], ["skip_connect", 1], ["max_pool_3x3", 0], ["avg_pool_3x3", 2],
              ["sep_conv_3x3", 1], ["sep_conv_5x5", 3], ["dil_conv_3x3", 2], ["dil_conv_5x5", 4]]  # fmt: skip
    concat = [2, 3, 4, 5]
    g = Genotype.from_dict({"normal": normal, "normal_concat": concat, "reduce": reduce, "reduce_concat": concat})
    # reduce: skip_connect twice on stride-2 inputs (one repeat); its stride-1 edges all differ
    assert repeats_by_hand(g) == [6.0, 1.0, 0.0]
    assert model.table_features(encode_genotype(g, SPACE))[-3:].tolist() == [6.0, 1.0, 0.0]


def test_on_relaxed_encodings_they_bound_the_expected_repeats_from_below_and_have_gradients():
    """Uniform alpha is the expected encoding of uniform random genotypes; ``relu(E[count]
    - 1)`` is at most the mean of the features (Jensen), and the latency term has
    gradients in alpha once an op's expected count passes 1."""
    gather, scatter = repeat_matrices(SPACE)
    uniform = torch.relu(encode_alpha(torch.zeros(2, 14, len(SPACE.ops))) @ gather - 1) @ scatter
    sampled = torch.stack([torch.tensor(repeats_by_hand(g)) for g in SPACE.sample_unique(400, 1)]).mean(0)
    assert torch.all(uniform <= sampled + 1e-6)
    alpha = torch.zeros(2, 14, len(SPACE.ops))
    alpha[0, :, SPACE.ops.index("sep_conv_3x3")] = 2.0  # the normal cell leans to one op
    alpha.requires_grad_(True)
    relaxed = torch.relu(encode_alpha(alpha.detach()) @ gather - 1) @ scatter
    assert float(relaxed[0]) > 1
    model = LatencyPredictor.for_space(SPACE, ())
    with torch.no_grad():
        model.additive.weight.zero_()
        model.additive.weight[0, -len(EDGE_GROUPS) :] = -0.1  # a repeated op is cheaper
    model(encode_alpha(alpha)).backward()
    assert alpha.grad[0, :, SPACE.ops.index("sep_conv_3x3")].sum() < 0  # leaning further lowers latency


def test_predictors_with_and_without_repeats_rebuild_from_their_state():
    """A predictor saved before the repeat features existed has no repeat buffers: it is
    rebuilt with its own table and predicts as it did."""
    x = torch.stack([encode_genotype(g, SPACE) for g in SPACE.sample_unique(20, 4, concentration=0.3)])
    for repeats_on in (True, False):
        torch.manual_seed(0)
        model = LatencyPredictor.for_space(SPACE, (8,), repeats=repeats_on)
        with torch.no_grad():
            model.additive.weight.uniform_(-0.2, 0.2)
        state = model.state_dict()
        assert ("repeat_gather" in state) == repeats_on
        rebuilt = LatencyPredictor.from_state(state, (8,))
        assert rebuilt.repeat_width == (len(EDGE_GROUPS) if repeats_on else 0)
        assert torch.allclose(rebuilt(x), model(x))


@pytest.mark.parametrize("repeats_on", [True, False])
def test_the_additive_fit_recovers_a_table_with_a_repeat_discount(repeats_on):
    """Latency = op table - 0.15 per repeated op: the fit with the repeat features is
    exact, the table without them is not."""
    rng = torch.Generator().manual_seed(0)
    gs = SPACE.sample_unique(150, 0, concentration=0.3)
    x = torch.stack([encode_genotype(g, SPACE) for g in gs])
    table = LatencyPredictor.for_space(SPACE, (), repeats=False).table_features(x)
    repeated = torch.tensor([repeats_by_hand(g) for g in gs]).sum(1)
    y = 3.0 + table @ torch.rand(table.shape[1], generator=rng) - 0.15 * repeated
    model = additive_predictor(SPACE, x, y, repeats=repeats_on)
    err = float(((model(x) - y).abs() / y).mean().detach())
    assert (err < 2e-3) if repeats_on else (err > 5e-3)
