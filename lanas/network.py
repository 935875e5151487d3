"""Networks of stacked DARTS cells: the macro skeleton and the discrete network.

The macro (as in DARTS's CIFAR network): a 3x3 stem convolution to
``stem_multiplier * channels`` channels, ``layers`` cells with reduction cells (stride
2, doubled channels) at ``layers // 3`` and ``2 * layers // 3``, global average pooling
and a linear classifier. Works for 1- or 3-channel inputs from 8x8 up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lanas.genotype import Genotype
from lanas.ops import FactorizedReduce, ReLUConvBN, build_op
from lanas.topology import edge_stride


@dataclass(frozen=True)
class MacroSettings:
    layers: int = 5  # number of cells
    channels: int = 16  # initial cell channels C
    stem_multiplier: int = 3  # stem outputs stem_multiplier * C channels
    in_channels: int = 1  # image channels (1 for digits, 3 for CIFAR-10)
    num_classes: int = 10

    def __post_init__(self) -> None:
        for name in ("layers", "channels", "stem_multiplier", "in_channels", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.channels % 2:
            raise ValueError(f"channels must be even (reduction cells halve with 2 convs), got {self.channels}")

    def reduction_layers(self) -> frozenset[int]:
        return frozenset({self.layers // 3, 2 * self.layers // 3})


class Preprocess(nn.Module):
    """Bring the two cell inputs to ``c`` channels at this cell's input resolution."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pre0(s0), self.pre1(s1)


# make_cell(c_pp, c_p, c, reduction, reduction_prev) -> cell with attribute `multiplier`
CellFactory = Callable[[int, int, int, bool, bool], nn.Module]


class Backbone(nn.Module):
    """Stem, a stack of cells built by ``make_cell``, pooling and classifier."""

    def __init__(self, macro: MacroSettings, make_cell: CellFactory):
        super().__init__()
        self.macro = macro
        c = macro.channels
        c_stem = macro.stem_multiplier * c
        self.stem = nn.Sequential(
            nn.Conv2d(macro.in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
        )
        c_pp, c_p, c_cur = c_stem, c_stem, c
        self.cells = nn.ModuleList()
        self.out_channels: list[int] = []  # output channels of each cell
        reduction_prev = False
        for i in range(macro.layers):
            reduction = i in macro.reduction_layers()
            if reduction:
                c_cur *= 2
            cell = make_cell(c_pp, c_p, c_cur, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_cur
            self.out_channels.append(c_p)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, macro.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.pool(s1).flatten(1))


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """A discrete cell: the 8 chosen edges of ``genotype`` for this cell type."""

    def __init__(self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.pre = Preprocess(c_pp, c_p, c, reduction_prev, affine=True)
        cell = "reduce" if reduction else "normal"
        self.concat = getattr(genotype, f"{cell}_concat")
        self.multiplier = len(self.concat)
        self.edges = [(node, inp) for node, inp, _ in genotype.edges(cell)]
        self.op_names = [op for _, _, op in genotype.edges(cell)]
        self.ops = nn.ModuleList(build_op(op, c, edge_stride(reduction, inp)) for _, inp, op in genotype.edges(cell))
        self.drop_prob = 0.0

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = list(self.pre(s0, s1))
        for k in range(len(self.ops) // 2):
            out = 0
            for e in (2 * k, 2 * k + 1):
                h = self.ops[e](states[self.edges[e][1]])
                if self.training and self.drop_prob > 0 and self.op_names[e] != "skip_connect":
                    h = drop_path(h, self.drop_prob)
                out = out + h
            states.append(out)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier (after the cell at 2/3 depth), with adaptive pooling to
    2x2 in place of ``AvgPool2d(5, stride=3)`` on 8x8 maps, so it fits any input size."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class Network(Backbone):
    """The discrete network of a genotype. ``set_drop_path(p)`` enables drop-path;
    ``auxiliary`` adds DARTS' auxiliary head, used by ``forward_with_aux`` in training only
    (``forward``, what is measured and exported, never runs it)."""

    def __init__(self, genotype: Genotype, macro: MacroSettings, auxiliary: bool = False):
        super().__init__(macro, lambda c_pp, c_p, c, red, red_prev: Cell(genotype, c_pp, c_p, c, red, red_prev))
        self.genotype = genotype
        self.aux_after = 2 * macro.layers // 3  # DARTS: the head reads the output of this cell
        self.aux_head = AuxiliaryHead(self.out_channels[self.aux_after], macro.num_classes) if auxiliary else None

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits, and the auxiliary head's logits (None without the head)."""
        aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_after and self.aux_head is not None:
                aux = self.aux_head(s1)
        return self.classifier(self.pool(s1).flatten(1)), aux

    def set_drop_path(self, prob: float) -> None:
        for cell in self.cells:
            cell.drop_prob = prob
