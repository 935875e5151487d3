"""The NAS-Bench-201 supernet and the exact latency term of a finite space.

:class:`Nb201SuperNet` is the benchmark's skeleton (:mod:`lanas.nb201_network`) with every
edge a mixture of the five ops, weighted by one ``alpha`` (``[6, 5]`` logits) shared by all
cells, as in the benchmark's own DARTS and GDAS baselines: ``darts`` sums every op
weighted by ``softmax(alpha)``; ``gdas`` runs one op per edge drawn by Gumbel-softmax
(straight-through). The derived cell takes the strongest op per edge, ``none`` included.

:class:`SpaceLatency` is the latency model of a space small enough to list: every
architecture's latency (a published table, or a cross-device prediction for all of them),
and for a relaxed encoding (per edge, the probability of each op) the *exact* expected
latency of the cells drawn op by op from it, ``sum_cells prod_edges p(op) * ms(cell)``. It
is differentiable in the probabilities and equals the table on a discrete encoding, so the
search's latency term is what sampling from ``alpha`` would cost, not an estimate of it.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from lanas import nb201
from lanas.nb201 import EDGES, NUM_NODES, OPS, Cell
from lanas.nb201_network import Nb201Macro, Skeleton, build_op

MODES = ("darts", "gdas")


class MixedNb201Cell(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(build_op(op, channels) for op in OPS) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NUM_NODES):
            terms = []
            for e, (to, i) in enumerate(EDGES):
                if to != j:
                    continue
                if index is None:  # darts: every op, weighted
                    terms.append(sum(w * op(nodes[i]) for w, op in zip(weights[e], self.edges[e])))
                else:  # gdas: the drawn op only, times its straight-through weight
                    k = int(index[e])
                    terms.append(weights[e, k] * self.edges[e][k](nodes[i]))
            nodes.append(sum(terms))
        return nodes[-1]


class Nb201SuperNet(Skeleton):
    def __init__(self, macro: Nb201Macro, mode: str = "gdas"):
        if mode not in MODES:
            raise ValueError(f"NAS-Bench-201 search mode must be one of {MODES}, got {mode!r}")
        super().__init__(macro, MixedNb201Cell)
        self.mode = mode
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))
        self.tau = 1.0  # Gumbel temperature, set by the search loop in gdas mode

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p is not self.alpha]

    def genotype(self) -> Cell:
        return nb201.decode(self.alpha.detach())

    def relaxed_encoding(self) -> torch.Tensor:
        return nb201.encode_alpha(self.alpha)

    def encode(self, cell: Cell) -> torch.Tensor:
        return nb201.encode(cell).to(self.alpha.device)

    def arch_text(self, cell: Cell) -> str:
        return json.dumps(cell.arch_str())

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.mode == "darts":
            return torch.softmax(self.alpha, -1), None
        gumbels = -torch.empty_like(self.alpha).exponential_().log()
        soft = ((self.alpha.log_softmax(-1) + gumbels) / self.tau).softmax(-1)
        index = soft.argmax(-1)
        hard = torch.zeros_like(soft).scatter_(-1, index.unsqueeze(-1), 1.0)
        return hard - soft.detach() + soft, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, index = self._weights()
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, weights, index) if isinstance(layer, MixedNb201Cell) else layer(x)
        return self.classifier(self.pool(self.last(x)).flatten(1))


class SpaceLatency(nn.Module):
    """``forward(encodings)``: the expected latency (ms) of each row's cells; ``latency_term``
    divides it by the space's median latency (~1, as the predictors' term)."""

    def __init__(self, encodings: torch.Tensor, latency_ms: torch.Tensor):
        super().__init__()
        if encodings.ndim != 2 or len(encodings) != len(latency_ms) or not len(latency_ms):
            raise ValueError("one encoding per latency, at least one")
        if not torch.all(torch.isfinite(latency_ms)) or not torch.all(latency_ms > 0):
            raise ValueError("latencies must be finite and > 0 ms")
        self.register_buffer("onehot", encodings.float())
        self.register_buffer("latency", latency_ms.double())
        self.register_buffer("typical", latency_ms.double().median())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.log(x.double().clamp_min(1e-30)) @ self.onehot.double().T  # [batch, cells]: log prod_e p(op_e)
        return (torch.exp(logp) @ self.latency).to(x.dtype)

    def latency_term(self, x: torch.Tensor) -> torch.Tensor:
        return (self.forward(x.unsqueeze(0) if x.ndim == 1 else x) / self.typical.to(x.dtype)).squeeze()


def space_latency(cells: list[Cell], latency_ms: list[float]) -> SpaceLatency:
    return SpaceLatency(nb201.encode_many(cells), torch.tensor(latency_ms, dtype=torch.float64))
