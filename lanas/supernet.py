"""The one-shot supernet: every edge holds every op of the space, weighted by alpha.

Three ways to run an edge, chosen by ``mode``:

* ``darts``   -- the full weighted sum of all ops (DARTS); the most faithful, the slowest.
* ``pcdarts`` -- the weighted sum on ``1/partial_channels`` of the channels, the rest
  bypassing the edge, followed by a channel shuffle (PC-DARTS); edge normalisation on.
* ``gdas``    -- one op per edge sampled with hard Gumbel-softmax, only that op is run,
  and the straight-through gradient reaches alpha (GDAS). About 7x cheaper a step on CPU.

Edge normalisation (``beta``, PC-DARTS) weights the incoming edges of every node; see
:mod:`lanas.encoding` for how alpha and beta map to predictor features.
"""

from __future__ import annotations

import torch
from torch import nn

from lanas.encoding import derive_genotype, edge_softmax, encode_alpha, encode_genotype
from lanas.genotype import Genotype
from lanas.network import Backbone, MacroSettings, Preprocess
from lanas.ops import build_op
from lanas.space import SearchSpace
from lanas.topology import CONCAT, NODES, NONE, NUM_EDGES, NUM_NODES, edge_index, edge_stride

MODES = ("darts", "pcdarts", "gdas")


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MixedEdge(nn.Module):
    def __init__(self, space: SearchSpace, c: int, stride: int, partial: int):
        super().__init__()
        self.stride, self.partial = stride, partial
        width = c // partial
        ops = []
        for name in space.ops:
            op = build_op(name, width, stride, affine=False)
            if "pool" in name:  # as in DARTS: normalise pooled features in the supernet
                op = nn.Sequential(op, nn.BatchNorm2d(width, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward_weighted(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.partial == 1:
            return sum(w * op(x) for w, op in zip(weights, self.ops))
        width = x.size(1) // self.partial
        xa, xb = x[:, :width], x[:, width:]
        out = sum(w * op(xa) for w, op in zip(weights, self.ops))
        if self.stride == 2:
            xb = nn.functional.max_pool2d(xb, 2, 2)
        return channel_shuffle(torch.cat([out, xb], dim=1), self.partial)

    def forward_single(self, x: torch.Tensor, hard: torch.Tensor, index: int) -> torch.Tensor:
        return self.ops[index](x) * hard[index]


class MixedCell(nn.Module):
    def __init__(
        self, space: SearchSpace, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, partial: int
    ):
        super().__init__()
        self.reduction = reduction
        self.pre = Preprocess(c_pp, c_p, c, reduction_prev, affine=False)
        self.multiplier = NUM_NODES
        self.edges = nn.ModuleList()
        for node in NODES:
            for inp in range(node):
                self.edges.append(MixedEdge(space, c, edge_stride(reduction, inp), partial))

    def forward(self, s0, s1, op_weights, edge_weights, sample=None):
        """``op_weights [14, K]``; ``edge_weights [14]``; ``sample`` = (hard [14, K], index [14])."""
        states = list(self.pre(s0, s1))
        for node in NODES:
            out = 0
            for inp in range(node):
                e = edge_index(node, inp)
                if sample is None:
                    h = self.edges[e].forward_weighted(states[inp], op_weights[e])
                else:
                    h = self.edges[e].forward_single(states[inp], sample[0][e], int(sample[1][e]))
                out = out + edge_weights[e] * h
            states.append(out)
        return torch.cat([states[i] for i in CONCAT], dim=1)


class SuperNet(Backbone):
    def __init__(
        self,
        space: SearchSpace,
        macro: MacroSettings,
        mode: str = "gdas",
        partial_channels: int = 4,
        edge_norm: bool | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"search mode must be one of {MODES}, got {mode!r}")
        partial = partial_channels if mode == "pcdarts" else 1
        if macro.channels % partial:
            raise ValueError(f"channels ({macro.channels}) must be divisible by partial_channels ({partial})")
        super().__init__(
            macro, lambda c_pp, c_p, c, red, red_prev: MixedCell(space, c_pp, c_p, c, red, red_prev, partial)
        )
        self.space, self.mode = space, mode
        self.edge_norm = (mode == "pcdarts") if edge_norm is None else edge_norm
        k = len(space.ops)
        self.alpha = nn.Parameter(1e-3 * torch.randn(2, NUM_EDGES, k))
        self.beta = nn.Parameter(1e-3 * torch.randn(2, NUM_EDGES)) if self.edge_norm else None
        self.register_buffer("none_mask", torch.tensor([op == NONE for op in space.ops]), persistent=False)
        self.tau = 1.0  # Gumbel temperature, set by the search loop in gdas mode

    # --- parameter groups ----------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.alpha, self.beta) if p is not None]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def edge_weights(self) -> torch.Tensor:
        if self.beta is not None:
            return edge_softmax(self.beta)  # PC-DARTS: sums to 1 over a node's inputs
        # plain DARTS/GDAS sum the incoming edges of a node unweighted
        return torch.ones(2, NUM_EDGES, device=self.alpha.device)

    def genotype(self) -> Genotype:
        """The discrete architecture the search state derives (lanas.encoding.derive_genotype)."""
        return derive_genotype(self.alpha.detach(), None if self.beta is None else self.beta.detach(), self.space)

    def relaxed_encoding(self) -> torch.Tensor:
        """What the latency penalty sees of alpha and beta (lanas.encoding.encode_alpha)."""
        return encode_alpha(self.latency_logits(), self.beta)

    def encode(self, genotype: Genotype) -> torch.Tensor:
        return encode_genotype(genotype, self.space)

    def arch_text(self, genotype: Genotype) -> str:
        return genotype.to_json()

    def latency_logits(self) -> torch.Tensor:
        """alpha with 'none' masked out: derivation never picks 'none', so the latency
        term sees the distribution over the ops that can actually be chosen."""
        return self.alpha.masked_fill(self.none_mask, float("-inf"))

    # --- forward -------------------------------------------------------------------
    def _gumbel(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gumbels = -torch.empty_like(logits).exponential_().log()
        soft = ((logits.log_softmax(-1) + gumbels) / self.tau).softmax(-1)
        index = soft.argmax(-1)
        hard = torch.zeros_like(soft).scatter_(-1, index.unsqueeze(-1), 1.0)
        return hard - soft.detach() + soft, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op_weights = torch.softmax(self.alpha, dim=-1)
        edge_weights = self.edge_weights()
        samples = [self._gumbel(self.alpha[c]) if self.mode == "gdas" else None for c in range(2)]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            c = int(cell.reduction)
            s0, s1 = s1, cell(s0, s1, op_weights[c], edge_weights[c], samples[c])
        return self.classifier(self.pool(s1).flatten(1))
