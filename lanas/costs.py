"""What an architecture costs before it is timed anywhere: FLOPs, ATen operators, modules.

Latency on a new runtime is unknown until measured, but much of it follows from the
network's graph: a compiled CPU runtime pays for arithmetic (FLOPs), an eager framework
pays for every operator it dispatches (Python and ATen overhead per call), and both pay
something per module. :func:`network_costs` counts the three for one forward pass of the
deployed network at batch 1; :func:`op_costs` turns them into what each (edge group, op)
of the additive table adds (an exact fit: the counts add up over a cell's edges).

A compiled runtime also decides, without running anything, which kernels it will run:
ONNX Runtime and OpenVINO fuse a convolution with its BatchNorm and ReLU, merge ops that
repeat on one input and insert layout reorders around what their blocked (NCHWc) kernels
cannot take. :func:`graph_costs` counts the nodes and reorders of the graph a target's
runtime builds (:func:`lanas.runtimes.graph_nodes`), and its nodes of each kind (OpenVINO's
Convolution, Subgraph of fused element-wise ops, Reorder, ...; ONNX Runtime's Conv,
ReorderInput, ...), and fits what each table feature adds to every count.

Both are the prior knowledge :mod:`lanas.transfer` starts a new target's predictor from:
they cost seconds to compute and no measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from lanas.encoding import encode_genotype, group_matrix
from lanas.genotype import Genotype
from lanas.network import MacroSettings, Network
from lanas.runtimes import example_input, graph_nodes
from lanas.space import SearchSpace
from lanas.target import Target

COSTS = ("mflops", "aten_ops", "modules")  # the columns of op_costs
COST_ARCHS = 40  # random architectures op_costs is fitted on (3 x |ops| unknowns, an exact fit)
COST_SEED = 7
GRAPH_COSTS = ("graph_nodes", "graph_reorders")  # graph_costs' first columns; then one per node kind
KIND_PREFIX = "nodes:"  # graph_costs' column of a node kind: "nodes:Convolution"
GRAPH_ARCHS = 80  # random architectures graph_costs is fitted on (more than the table has features)
MAX_FIT_ERROR = 1e-6  # the counts add up over edges; a larger relative misfit is a bug


@dataclass(frozen=True)
class NetworkCosts:
    flops: int  # one forward pass at batch 1 (torch.utils.flop_counter)
    aten_ops: int  # ATen operators dispatched
    modules: int  # leaf modules run (nn.Identity excluded: it dispatches nothing)

    def as_row(self) -> list[float]:
        return [self.flops / 1e6, float(self.aten_ops), float(self.modules)]


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def network_costs(genotype: Genotype, macro: MacroSettings, resolution: int) -> NetworkCosts:
    """The costs of one forward pass of the deployed network on one image."""
    from torch.utils.flop_counter import FlopCounterMode

    net = Network(genotype, macro).eval()
    modules = [0]

    def hook(*_):
        modules[0] += 1

    leaves = [m for m in net.modules() if not any(m.children()) and not isinstance(m, nn.Identity)]
    handles = [m.register_forward_hook(hook) for m in leaves]
    flops, ops = FlopCounterMode(display=False), _CountOps()
    try:
        with torch.no_grad(), flops, ops:
            net(torch.zeros(1, macro.in_channels, resolution, resolution))
    finally:
        for h in handles:
            h.remove()
    return NetworkCosts(int(flops.get_total_flops()), ops.count, modules[0])


def op_costs(
    space: SearchSpace, macro: MacroSettings, resolution: int, archs: int = COST_ARCHS, seed: int = COST_SEED
) -> np.ndarray:
    """``[3 * |ops|, len(COSTS)]``: what one op of each (edge group, op) adds to the
    network's costs (:data:`COSTS`), in the order of the additive table's group features
    (:func:`lanas.encoding.group_matrix`), up to a constant per edge group (a cell's edge
    count is fixed, so only differences between ops are identified)."""
    genotypes = space.sample_unique(archs, seed)
    groups = torch.stack([encode_genotype(g, space) for g in genotypes]) @ group_matrix(space)
    design = np.column_stack([np.ones(len(genotypes)), groups.double().numpy()])
    costs = np.array([network_costs(g, macro, resolution).as_row() for g in genotypes])
    coef = np.linalg.lstsq(design, costs, rcond=None)[0]
    misfit = float(np.max(np.abs(design @ coef - costs) / np.maximum(np.abs(costs), 1e-12)))
    if misfit > MAX_FIT_ERROR:
        raise ValueError(f"network costs are not additive over (edge group, op): relative misfit {misfit:.2g}")
    return coef[1:]


@dataclass(frozen=True)
class GraphCosts:
    """What each table feature adds to the counts of a runtime's graph: ``per_feature``
    ``[F, len(names)]``, its columns :data:`GRAPH_COSTS` and then one per node kind whose
    count varies between architectures (``nodes:<kind>``)."""

    names: tuple[str, ...]
    per_feature: np.ndarray

    def __post_init__(self) -> None:
        if self.per_feature.ndim != 2 or self.per_feature.shape[1] != len(self.names):
            shape, n = self.per_feature.shape, len(self.names)
            raise ValueError(f"graph costs of shape {shape} do not match their {n} names")


def graph_costs(
    space: SearchSpace,
    macro: MacroSettings,
    resolution: int,
    target: Target,
    features: Callable[[torch.Tensor], np.ndarray],
    archs: int = GRAPH_ARCHS,
    seed: int = COST_SEED,
    progress: Callable[[int, int], None] | None = None,
) -> GraphCosts | None:
    """What each of the ``F`` table features (``features``: the encodings' table features,
    merges included -- a compiler merges what repeats on one input) adds to the node,
    layout-reorder and per-kind node counts of the graph ``target``'s runtime builds for
    the deployed network, by least squares over ``archs`` random architectures (kinds
    whose count is the same in all of them are left out); None for eager torch (no
    compiled graph). ``progress(done, total)`` is called after each architecture."""

    if target.runtime == "torch":
        return None
    genotypes = space.sample_unique(archs, seed)
    x = example_input(macro.in_channels, resolution, target)
    graphs = []
    for i, g in enumerate(genotypes):
        nodes = graph_nodes(Network(g, macro), x, target)
        if nodes is None:  # a runtime that says nothing of its graph
            return None
        graphs.append(nodes)
        if progress is not None:
            progress(i + 1, len(genotypes))
    kinds = sorted(k for k in set().union(*graphs) if len({nodes[k] for nodes in graphs}) > 1)
    counts = np.array(
        [[sum(nodes.values()), sum(n for k, n in nodes.items() if "Reorder" in k)] + [nodes[k] for k in kinds]
         for nodes in graphs],
        dtype=float,
    )  # fmt: skip
    table = features(torch.stack([encode_genotype(g, space) for g in genotypes]))
    design = np.column_stack([np.ones(len(genotypes)), table])
    per_feature = np.linalg.lstsq(design, counts, rcond=None)[0][1:]
    return GraphCosts(GRAPH_COSTS + tuple(KIND_PREFIX + k for k in kinds), per_feature)
