"""The sharing features: what a compiled graph merges when a cell repeats an op on one input."""

import collections

import onnx
import pytest
import torch

from lanas.encoding import encode_alpha, encode_genotype, sharing_features, sharing_matrices
from lanas.genotype import Genotype
from lanas.network import MacroSettings, Network
from lanas.predictor import LatencyPredictor
from lanas.runtimes import export_onnx
from lanas.space import SearchSpace

SPACE = SearchSpace()
FEATURES = sharing_features(SPACE)  # (edge group, class): groups normal, reduce stride 2, reduce stride 1

# the same ops, node by node: repeated on inputs 0 and 1, or spread over distinct inputs
REPEATED = [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["max_pool_3x3", 1],
            ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1]]  # fmt: skip
SPREAD = [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["max_pool_3x3", 2], ["max_pool_3x3", 1],
          ["sep_conv_3x3", 3], ["sep_conv_3x3", 2], ["sep_conv_3x3", 4], ["sep_conv_3x3", 3]]  # fmt: skip


def genotype(normal, reduce=SPREAD) -> Genotype:
    return Genotype.from_dict({"normal": normal, "normal_concat": [2, 3, 4, 5],
                               "reduce": reduce, "reduce_concat": [2, 3, 4, 5]})  # fmt: skip


def sharing(g: Genotype) -> list[list[float]]:
    """Per edge group, the merged counts of its classes (sorted)."""
    gather, scatter = sharing_matrices(SPACE)
    f = (torch.relu(encode_genotype(g, SPACE) @ gather - 1) @ scatter).tolist()
    return [[v for (group, _), v in zip(FEATURES, f) if group == k] for k in range(3)]


def nodes(g: Genotype) -> collections.Counter:
    """Node types of the exported ONNX graph (3 layers: one normal cell, then two reduction cells)."""
    onnx_bytes = export_onnx(Network(g, MacroSettings(layers=3, channels=8)), torch.randn(1, 1, 8, 8))
    return collections.Counter(n.op_type for n in onnx.load_from_string(onnx_bytes).graph.node)


def test_the_features_are_the_classes_each_edge_group_can_share():
    pools = [(g, c) for g in range(3) for c in ("avg_pool_3x3", "max_pool_3x3", "relu")]
    assert FEATURES == sorted(pools + [(1, "shift")])  # FactorizedReduce only on the stride-2 inputs


def test_the_onnx_export_merges_repeated_ops_on_one_input_as_the_features_count():
    """Exported (what ONNX Runtime and OpenVINO run; 3 layers: one normal cell, then the
    two reduction cells, the same in both), the repeated normal cell runs 2 max-pools
    where the spread one runs 3, and 1 ReLU fewer: as the features count, 2 merged pools
    and 2 merged ReLUs against the spread cell's 1 of each (node 1's pools, node 3's
    convolutions)."""

    repeated, spread = nodes(genotype(REPEATED)), nodes(genotype(SPREAD))
    assert repeated["MaxPool"] == spread["MaxPool"] - 1
    assert repeated["Relu"] == spread["Relu"] - 1
    f_rep, f_spread = sharing(genotype(REPEATED)), sharing(genotype(SPREAD))
    assert f_rep[0] == [0, 2, 2] and f_spread[0] == [0, 1, 1]
    assert f_rep[1:] == f_spread[1:]  # same reduction cell


def test_reduction_cell_groups_and_factorized_reduce_of_one_input_share_relu_and_shifted_branch():
    skips = [["skip_connect", 0], ["skip_connect", 1], ["skip_connect", 0], ["skip_connect", 2],
             ["skip_connect", 0], ["skip_connect", 3], ["skip_connect", 1], ["skip_connect", 2]]  # fmt: skip
    one_each = [["skip_connect", 0], ["skip_connect", 1], ["avg_pool_3x3", 0], ["avg_pool_3x3", 2],
                ["max_pool_3x3", 1], ["avg_pool_3x3", 3], ["max_pool_3x3", 0], ["avg_pool_3x3", 4]]  # fmt: skip
    f = sharing(genotype(SPREAD, reduce=skips))
    # reduction cell: three FactorizedReduce of input 0 share a ReLU and the shifted branch
    # (2 merged), two of input 1 (1 merged); the stride-1 identities of node 2 (twice) and
    # node 3 share nothing. Columns: avg_pool, max_pool, relu, shift
    assert f[0] == [0, 1, 1] and f[1] == [0, 0, 3, 3] and f[2] == [0, 0, 0]
    assert sharing(genotype(SPREAD, reduce=one_each))[1] == [0, 0, 0, 0]
    # exported: five FactorizedReduce run the shifted branch (Slice, Pad) as often as two of distinct inputs
    many, two = nodes(genotype(SPREAD, reduce=skips)), nodes(genotype(SPREAD, reduce=one_each))
    assert many["Conv"] == two["Conv"] + 2 * 2 * 3  # 3 more FactorizedReduce (2 convs) in each of 2 cells
    assert many["Slice"] == two["Slice"] > 0 and many["Pad"] == two["Pad"]


def test_on_relaxed_encodings_the_features_bound_the_expected_merges_from_below_and_have_gradients():
    """Uniform alpha is the expected encoding of uniform random genotypes; the relaxed
    features ``relu(E[count] - 1)`` are at most the mean of their features (Jensen), and
    the latency term has gradients in alpha."""
    gather, scatter = sharing_matrices(SPACE)
    alpha = torch.zeros(2, 14, len(SPACE.ops), requires_grad=True)
    relaxed = (torch.relu(encode_alpha(alpha) @ gather - 1) @ scatter).detach()
    features = lambda g: torch.relu(encode_genotype(g, SPACE) @ gather - 1) @ scatter  # noqa: E731
    sampled = torch.stack([features(g) for g in SPACE.sample_unique(400, 1)]).mean(0)
    assert torch.all(relaxed <= sampled + 1e-6) and float(relaxed.sum()) > 0
    model = LatencyPredictor.for_space(SPACE, ())
    with torch.no_grad():
        model.additive.weight.fill_(0.1)
    model(encode_alpha(alpha)).backward()
    assert alpha.grad.abs().sum() > 0


def test_predictors_with_and_without_sharing_rebuild_from_their_state():
    for sharing_on in (True, False):
        model = LatencyPredictor.for_space(SPACE, (8,), sharing=sharing_on, repeats=False)
        assert model.has_sharing == sharing_on
        rebuilt = LatencyPredictor.from_state(model.state_dict(), (8,))
        x = encode_genotype(genotype(REPEATED), SPACE).unsqueeze(0)
        assert rebuilt.has_sharing == sharing_on and torch.allclose(rebuilt(x), model(x))
    width = LatencyPredictor.for_space(SPACE, (), repeats=False).additive.in_features
    assert width == 3 * len(SPACE.ops) + len(FEATURES)


@pytest.mark.parametrize("sharing_on", [True, False])
def test_the_additive_fit_recovers_a_table_with_a_merge_discount(sharing_on):
    """Latency = op table - 0.2 per merged op: the fit with sharing features is exact,
    the plain table is not."""
    rng = torch.Generator().manual_seed(0)
    gs = SPACE.sample_unique(150, 0, concentration=0.3)
    x = torch.stack([encode_genotype(g, SPACE) for g in gs])
    plain = LatencyPredictor.for_space(SPACE, (), sharing=False).table_features(x, repeats=False)
    merged = LatencyPredictor.for_space(SPACE, ()).table_features(x, repeats=False)[:, plain.shape[1] :].sum(1)
    y = 2.0 + plain @ torch.rand(plain.shape[1], generator=rng) - 0.2 * merged
    from lanas.predictor import additive_predictor

    model = additive_predictor(SPACE, x, y, sharing=sharing_on, repeats=False)
    err = float(((model(x) - y).abs() / y).mean().detach())
    assert (err < 2e-3) if sharing_on else (err > 5e-3)
