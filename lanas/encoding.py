"""The one converter from architectures to predictor features (layout version 1).

Layout: a flat float vector of ``2 x 14 x K`` entries, index
``(cell * 14 + edge) * K + op`` where ``cell`` is 0 = normal, 1 = reduce; ``edge`` numbers
the 14 possible edges of a cell node by node (node 2: inputs 0,1 -> edges 0,1; node 3:
inputs 0..2 -> edges 2..4; node 4 -> 5..8; node 5 -> 9..13); and ``op`` follows the order
of ``space.ops`` (K ops, ``none`` included when the space has it).

Each entry is ``edge_weight[cell, edge] * op_weight[cell, edge, op]``:

* a **discrete genotype** has op_weight one-hot on its 8 chosen edges per cell (zero rows
  elsewhere) and edge weight 1, so every node carries a mass of exactly 2;
* **relaxed** weights are the *expected* discrete encoding of the genotypes the search
  state describes: ops drawn per edge from ``softmax(alpha)``, and per node two distinct
  incoming edges drawn without replacement with probabilities ``softmax(beta)`` (PC-DARTS
  edge normalisation) or, without ``beta``, uniformly. ``op_weight = softmax(alpha)`` and
  ``edge_weight`` = the probability that the edge is among the two drawn
  (:func:`inclusion_probabilities`): at most 1 per edge, 2 per node, exactly the mass
  of every genotype. As ``alpha`` and ``beta`` become one-hot on a genotype's edges the
  relaxed encoding tends to the discrete one; for a linear (lookup-table) predictor the
  latency term is then exactly the expected latency of the sampled genotypes, for the MLP
  a first-order estimate of it (``benchmarks/encoding_relaxed.py`` measures the gap).
  Without ``beta`` (plain DARTS, GDAS) the edge weights are the constant ``2 / inputs``:
  the latency term then sees the op choice only, not which two inputs a node keeps
  (the derived topology follows DARTS' rule). (``2 * softmax(beta)``, used before, could
  put a mass of 2 on one edge, a point no genotype reaches.)

``decode`` is the inverse on discrete encodings and the DARTS derivation rule on relaxed
ones (per node: the two edges with the strongest non-``none`` op, each with that op).
"""

from __future__ import annotations

import torch

from lanas.genotype import Genotype
from lanas.ops import shared_prefixes
from lanas.space import SearchSpace
from lanas.topology import CELL_TYPES, CONCAT, NODES, NONE, NUM_EDGES, edge_index, edge_stride, node_edges

LAYOUT_VERSION = 1


def encoding_size(space: SearchSpace) -> int:
    return len(CELL_TYPES) * NUM_EDGES * len(space.ops)


def genotype_weights(genotype: Genotype, space: SearchSpace) -> torch.Tensor:
    """Op weights ``[2, 14, K]`` that are one-hot on the genotype's chosen edges."""
    w = torch.zeros(len(CELL_TYPES), NUM_EDGES, len(space.ops))
    for c, cell in enumerate(CELL_TYPES):
        for node, inp, op in genotype.edges(cell):
            if op not in space.ops:
                raise ValueError(f"op {op!r} of the genotype is not in the space {space.ops}")
            w[c, edge_index(node, inp), space.ops.index(op)] = 1.0
    return w


def encode_genotype(genotype: Genotype, space: SearchSpace) -> torch.Tensor:
    return genotype_weights(genotype, space).flatten()


def _per_node(fn, beta: torch.Tensor) -> torch.Tensor:
    """Apply ``fn`` to the incoming-edge slice of every node of ``beta [..., 14]``."""
    parts = [fn(beta[..., node_edges(node)]) for node in NODES]
    return torch.cat(parts, dim=-1)


def uniform_edge_weights() -> torch.Tensor:
    """Inclusion probabilities of two edges drawn uniformly per node: ``2 / inputs``."""
    return _per_node(lambda b: torch.full_like(b, 2.0 / b.shape[-1]), torch.zeros(len(CELL_TYPES), NUM_EDGES))


def edge_softmax(beta: torch.Tensor) -> torch.Tensor:
    """``softmax(beta)`` over the incoming edges of each node (sums to 1 per node): the
    PC-DARTS edge normalisation of the supernet's forward pass; ``beta`` is ``[..., 14]``."""
    return _per_node(lambda b: torch.softmax(b, dim=-1), beta)


def inclusion_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """P(edge j is among two edges drawn without replacement with probabilities
    ``p = softmax(logits)`` over the last dim) = p_j + sum_{i != j} p_i q_ij, where
    ``q_i = softmax`` of the logits without edge i (the second draw); each <= 1, sum 2.
    Computed from logits, so it stays exact when one edge takes all of ``p``."""
    n = logits.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    second = torch.softmax(logits.unsqueeze(-2).masked_fill(eye, float("-inf")), dim=-1)  # [..., i, j]
    p = torch.softmax(logits, dim=-1)
    return p + (p.unsqueeze(-1) * second).sum(-2)


def normalised_edge_weights(beta: torch.Tensor) -> torch.Tensor:
    """Relaxed edge weights of the encoding: the inclusion probabilities of two edges
    drawn per node with probabilities ``softmax(beta)``; ``beta`` is ``[..., 14]``."""
    return _per_node(inclusion_probabilities, beta)


def encode_relaxed(op_weights: torch.Tensor, edge_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Encode op weights ``[..., 2, 14, K]`` (and edge weights ``[..., 2, 14]``)."""
    if edge_weights is None:
        edge_weights = uniform_edge_weights().to(op_weights)
    return (op_weights * edge_weights.unsqueeze(-1)).flatten(-3)


def encode_alpha(alpha: torch.Tensor, beta: torch.Tensor | None = None) -> torch.Tensor:
    """Encode architecture logits ``alpha [2, 14, K]`` (and ``beta [2, 14]``); differentiable."""
    edge_weights = None if beta is None else normalised_edge_weights(beta)
    return encode_relaxed(torch.softmax(alpha, dim=-1), edge_weights)


def decode(features: torch.Tensor, space: SearchSpace) -> Genotype:
    """Genotype of an encoding: exact for discrete ones, DARTS derivation for relaxed ones."""
    w = features.detach().reshape(len(CELL_TYPES), NUM_EDGES, len(space.ops)).cpu()
    choosable = torch.tensor([op != NONE for op in space.ops])
    masked = w.masked_fill(~choosable, float("-inf"))
    strength, best_op = masked.max(dim=-1)  # [2, 14]
    cells = []
    for c in range(len(CELL_TYPES)):
        pairs = []
        for node in NODES:
            s = strength[c, node_edges(node)]
            # stable ordering: strongest first, ties to the lower input index
            top2 = sorted(sorted(range(node), key=lambda j: (-float(s[j]), j))[:2])
            pairs.extend((space.ops[int(best_op[c, edge_index(node, j)])], j) for j in top2)
        cells.append(tuple(pairs))
    return Genotype(cells[0], CONCAT, cells[1], CONCAT)


EDGE_GROUPS = ("normal", "reduce_stride2", "reduce_stride1")


def group_matrix(space: SearchSpace) -> torch.Tensor:
    """``[2*14*K, 3*K]`` 0/1 matrix summing the encoding per (edge group, op).

    Within a cell an op's cost depends on the cell's channels, resolution and stride,
    not on which edge it sits on: the normal cell's 14 edges form one group; in the
    reduction cell, edges from the two cell inputs (stride 2) and edges from
    intermediate nodes (stride 1) form the other two. ``x @ group_matrix`` are op counts
    (or relaxed op masses) per group: the features of an additive per-op lookup table."""
    k = len(space.ops)
    m = torch.zeros(len(CELL_TYPES), NUM_EDGES, k, len(EDGE_GROUPS), k)
    for node in NODES:
        for inp in range(node):
            e = edge_index(node, inp)
            for o in range(k):
                m[0, e, o, 0, o] = 1.0
                m[1, e, o, 1 if edge_stride(True, inp) == 2 else 2, o] = 1.0
    return m.reshape(encoding_size(space), len(EDGE_GROUPS) * k)


def sharing_features(space: SearchSpace) -> list[tuple[int, str]]:
    """The (edge group, class) of each sharing feature, in order: every class an op of
    ``space`` can share on that group's inputs (:func:`lanas.ops.shared_prefixes`).
    Groups: 0 the normal cell, 1 the reduction cell's stride-2 inputs, 2 its stride-1 inputs."""
    found = {
        (_group(cell, inp), cls)
        for cell in range(len(CELL_TYPES))
        for inp in range(NODES[-1])
        for op in space.ops
        for cls in shared_prefixes(op, edge_stride(cell == 1, inp))
    }
    return sorted(found)


def _group(cell: int, inp: int) -> int:
    return 0 if cell == 0 else (1 if edge_stride(True, inp) == 2 else 2)


def sharing_matrices(space: SearchSpace) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(gather [2*14*K, S], scatter [S, F])`` of the ``F`` sharing features
    (:func:`sharing_features`), or None when no op of ``space`` shares anything.

    A compiled graph merges what several edges apply to the same input: two max-pools of
    node 0 are one node, four convolutions of node 1 share one ReLU, and two
    FactorizedReduce of one input share their ReLU and shifted branch (the ONNX export
    already does; eager PyTorch runs each, but its timings show a smaller discount too).
    The latency of such a cell is less than the sum of its ops, the more so the more a
    cell repeats one op on one input -- exactly the cells a latency-aware search
    produces and uniform sampling rarely does. ``x @ gather`` counts per (cell, input node, class) the edges
    whose op starts with that class's shared part; ``relu(x @ gather - 1) @ scatter``
    is then, per (edge group, class), how many of them a compiler can merge away: the
    table's extra features. (On relaxed encodings it is ``relu(E[count] - 1)``, a
    lower bound of the expected merged count that tightens as the op mass concentrates.)"""
    k = len(space.ops)
    features = sharing_features(space)
    if not features:
        return None
    inputs = range(NODES[-1])  # every id that feeds a later node
    slots = [(cell, inp, f) for cell in range(len(CELL_TYPES)) for inp in inputs
             for f, (group, _) in enumerate(features) if group == _group(cell, inp)]  # fmt: skip
    gather = torch.zeros(len(CELL_TYPES), NUM_EDGES, k, len(slots))
    scatter = torch.zeros(len(slots), len(features))
    for s, (cell, inp, f) in enumerate(slots):
        stride = edge_stride(cell == 1, inp)
        for node in (n for n in NODES if n > inp):
            for o, op in enumerate(space.ops):
                if features[f][1] in shared_prefixes(op, stride):
                    gather[cell, edge_index(node, inp), o, s] = 1.0
        scatter[s, f] = 1.0
    return gather.reshape(encoding_size(space), len(slots)), scatter


def repeat_matrices(space: SearchSpace) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gather [2*14*K, S], scatter [S, 3])`` of the repeat features, one per edge group
    (:data:`EDGE_GROUPS`), in the form of :func:`sharing_matrices`: ``x @ gather`` counts
    each op but ``none`` per edge group, and ``relu(x @ gather - 1) @ scatter`` sums, per
    group, how many of its edges carry an op the group already has (``count - 1`` for
    every op that is there).

    A runtime that compiles a kernel per distinct op and shape runs a cell of four
    ``sep_conv_3x3`` through one kernel and a cell of four different ops through four:
    OpenVINO's JIT-generated kernels then (our reading, not measured) compete for the
    instruction cache, and cells that repeat ops run faster than the sum of their ops says
    (measured: ``docs/research.md``, "Predictor transfer across runtimes";
    ``predictor_sharing.py --compare repeats``). On relaxed encodings it is
    ``relu(E[count] - 1)``, like the sharing features."""
    ops = [o for o, op in enumerate(space.ops) if op != NONE]
    columns = [group * len(space.ops) + o for group in range(len(EDGE_GROUPS)) for o in ops]
    scatter = torch.eye(len(EDGE_GROUPS)).repeat_interleave(len(ops), dim=0)  # each slot to its group
    return group_matrix(space)[:, columns], scatter


def derive_genotype(alpha: torch.Tensor, beta: torch.Tensor | None, space: SearchSpace) -> Genotype:
    """The discrete genotype of a search state (pure function of ``alpha``, ``beta``):
    DARTS' rule, edges ranked by ``softmax(beta)`` x strongest non-``none`` op weight
    (PC-DARTS), or by the op weight alone without ``beta``."""
    edge_weights = None if beta is None else edge_softmax(beta)
    return decode(encode_relaxed(torch.softmax(alpha, dim=-1), edge_weights), space)
