"""The NAS-Bench-201 network: the macro skeleton the benchmark trained, from a :class:`Cell`.

Stem (3x3 convolution to C channels, BN), then 3 stages of ``cells_per_stage`` cells at
C, 2C and 4C channels joined by residual reduction blocks (two ReLU-Conv-BN 3x3, the first
strided, beside a 2x2 average pool and 1x1 convolution shortcut), BN-ReLU, global
average pooling and a linear classifier. In a cell node ``j`` sums ``op(i -> j)`` over
``i < j`` and the cell's output is node 3. Every op is built and run, ``none`` included
(zeros), as in the benchmark, whose latencies were measured on these networks. With
C = 16, N = 5 and 10 classes the parameter counts equal the table's ``params_mb``
(``tests/test_nb201.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lanas.nb201 import EDGES, NUM_NODES, Cell
from lanas.ops import ReLUConvBN, Zero


@dataclass(frozen=True)
class Nb201Macro:
    channels: int = 16  # C: the first stage's width (2C and 4C after each reduction)
    cells_per_stage: int = 5  # N cells per stage
    in_channels: int = 3
    num_classes: int = 10

    def __post_init__(self) -> None:
        for name in ("channels", "cells_per_stage", "in_channels", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def build_op(name: str, channels: int) -> nn.Module:
    """One NAS-Bench-201 op at stride 1 (reductions are the residual blocks)."""
    if name == "none":
        return Zero(1)
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise KeyError(f"unknown NAS-Bench-201 op {name!r}")


class Nb201Cell(nn.Module):
    def __init__(self, cell: Cell, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(build_op(op, channels) for op in cell.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NUM_NODES):
            nodes.append(sum(self.edges[e](nodes[i]) for e, (to, i) in enumerate(EDGES) if to == j))
        return nodes[-1]


class ResidualReduction(nn.Module):
    """The benchmark's ResNet basic block between stages: stride 2, channels doubled."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Skeleton(nn.Module):
    """Stem, 3 stages of ``make_cell(width)`` joined by residual reductions, and the head:
    the benchmark's macro structure, for its networks and for the search's supernet."""

    def __init__(self, macro: Nb201Macro, make_cell: Callable[[int], nn.Module]):
        super().__init__()
        c = macro.channels
        self.stem = nn.Sequential(nn.Conv2d(macro.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage in range(3):
            width = c * 2**stage
            if stage:
                layers.append(ResidualReduction(width // 2, width))
            layers += [make_cell(width) for _ in range(macro.cells_per_stage)]
        self.cells = nn.Sequential(*layers)
        self.last = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * c, macro.num_classes)


class Nb201Network(Skeleton):
    def __init__(self, cell: Cell, macro: Nb201Macro = Nb201Macro()):
        super().__init__(macro, lambda width: Nb201Cell(cell, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
