"""lanas.costs: what an architecture costs before it is timed (FLOPs, ATen operators,
modules; a compiled runtime's graph nodes), and lanas.runtimes.graph_nodes."""

import numpy as np
import pytest
import torch

from lanas.costs import GRAPH_COSTS, KIND_PREFIX, graph_costs, network_costs, op_costs
from lanas.encoding import encode_genotype, group_matrix
from lanas.genotype import Genotype
from lanas.network import MacroSettings, Network
from lanas.predictor import LatencyPredictor
from lanas.quality import network_flops
from lanas.runtimes import example_input, graph_nodes
from lanas.space import SearchSpace
from lanas.target import Target
from lanas.transfer import table_np

SPACE = SearchSpace()
MACRO = MacroSettings(layers=3, channels=4, in_channels=1)
RESOLUTION = 8


def uniform(op: str) -> Genotype:
    """Every edge of both cells runs ``op`` (inputs 0 and 1 of every node)."""
    edges = tuple((op, j) for _ in range(4) for j in (0, 1))
    return Genotype(edges, (2, 3, 4, 5), edges, (2, 3, 4, 5))


def test_network_costs_count_what_each_op_dispatches():
    heavy, light = (
        network_costs(uniform("sep_conv_5x5"), MACRO, RESOLUTION),
        network_costs(uniform("max_pool_3x3"), MACRO, RESOLUTION),
    )
    assert heavy.flops == network_flops(uniform("sep_conv_5x5"), MACRO, RESOLUTION)
    assert heavy.flops > light.flops and heavy.aten_ops > light.aten_ops and heavy.modules > light.modules


def test_op_costs_add_up_to_the_network_costs_of_unseen_architectures():
    per_op = op_costs(SPACE, MACRO, RESOLUTION)
    assert per_op.shape == (3 * len(SPACE.ops), 3)
    unseen = SPACE.sample_unique(3, 12345)
    rows = np.array([network_costs(g, MACRO, RESOLUTION).as_row() for g in unseen])
    groups = (torch.stack([encode_genotype(g, SPACE) for g in unseen]) @ group_matrix(SPACE)).double().numpy()
    # the constant per edge group is not identified: differences between architectures are exact
    assert np.allclose(rows[1:] - rows[0], (groups[1:] - groups[0]) @ per_op, rtol=1e-6, atol=1e-6)


def test_graph_costs_follow_the_runtime_graph_and_eager_has_none():
    predictor = LatencyPredictor.for_space(SPACE, ())
    features = lambda e: table_np(predictor, e, repeats=False)  # noqa: E731  (as the transfer fits them)
    assert graph_costs(SPACE, MACRO, RESOLUTION, Target(runtime="torch"), features) is None
    target = Target(runtime="onnxruntime")
    seen = []
    graph = graph_costs(SPACE, MACRO, RESOLUTION, target, features, archs=40, progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (40, 40) and graph.names[:2] == GRAPH_COSTS
    kinds = [n.removeprefix(KIND_PREFIX) for n in graph.names[2:]]
    assert {"Conv", "MaxPool", "AveragePool"} <= set(kinds), kinds  # the kinds an op choice changes
    assert graph.per_feature.shape == (predictor.additive.in_features - predictor.repeat_width, len(graph.names))
    unseen = SPACE.sample_unique(8, 999)
    x = example_input(MACRO.in_channels, RESOLUTION, target)
    counted = []
    for g in unseen:
        nodes = graph_nodes(Network(g, MACRO), x, target)
        counted.append([sum(nodes.values()), sum(n for k, n in nodes.items() if "Reorder" in k)])
        counted[-1] += [nodes[k] for k in kinds]
    counted = np.array(counted, dtype=float)
    fitted = features(torch.stack([encode_genotype(g, SPACE) for g in unseen])) @ graph.per_feature
    # up to the constant (not identified), the fit ranks unseen graphs by their node counts, and
    # counts the pools a choice of op adds exactly (each pooling op is one node)
    from scipy.stats import spearmanr

    assert spearmanr(fitted[:, 0], counted[:, 0]).statistic > 0.8, (fitted, counted)
    for kind in ("MaxPool", "AveragePool"):
        j = 2 + kinds.index(kind)
        assert np.allclose(fitted[1:, j] - fitted[0, j], counted[1:, j] - counted[0, j], atol=1e-6), kind


def test_openvino_graph_leaves_out_constants():
    pytest.importorskip("openvino")
    target = Target(runtime="openvino")
    nodes = graph_nodes(Network(uniform("sep_conv_3x3"), MACRO), example_input(1, RESOLUTION, target), target)
    assert nodes["Convolution"] > 0 and "Const" not in nodes and "Parameter" not in nodes
