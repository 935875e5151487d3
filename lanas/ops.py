"""Typed registry of the candidate operations of the DARTS cell space.

Every op is a factory ``(channels, stride, affine) -> nn.Module`` mapping a tensor of
``channels`` channels to one of the same channels, spatially downsampled by ``stride``.
The eight DARTS primitives are registered here; a search space may use any subset.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from lanas.topology import NONE

OpFactory = Callable[[int, int, bool], nn.Module]

_REGISTRY: dict[str, OpFactory] = {}


def register(name: str) -> Callable[[OpFactory], OpFactory]:
    """Register ``factory`` under ``name``; names are unique."""

    def deco(factory: OpFactory) -> OpFactory:
        if name in _REGISTRY:
            raise ValueError(f"op {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def op_names() -> tuple[str, ...]:
    """All registered op names, in registration (DARTS) order."""
    return tuple(_REGISTRY)


def build_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(_REGISTRY)}") from None
    return factory(channels, stride, affine)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True
    ):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convolutions, as in DARTS."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine), DilConv(c_in, c_out, kernel, 1, padding, 1, affine)
        )


class Zero(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset strided 1x1 convolutions (DARTS)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # pad so odd resolutions keep the shapes of both branches equal
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


register(NONE)(lambda c, stride, affine: Zero(stride))
register("max_pool_3x3")(lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1))
register("avg_pool_3x3")(lambda c, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
register("skip_connect")(lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine))
register("sep_conv_3x3")(lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine))
register("sep_conv_5x5")(lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine))
register("dil_conv_3x3")(lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine))
register("dil_conv_5x5")(lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine))

DARTS_OPS: tuple[str, ...] = op_names()

# What two copies of an op on the same input have in common, which a compiled graph
# computes once (the ONNX export's common-subexpression elimination merges them, so ONNX
# Runtime and OpenVINO run them once; tests/test_sharing.py counts the nodes): a
# parameter-free op is merged whole; an op that starts with a ReLU of its input shares
# that ReLU. ``skip_connect`` is an identity (nothing to share) except on stride-2 edges,
# where it is a FactorizedReduce: ReLU first, then its shifted branch (Slice and Pad,
# around which ONNX Runtime's NCHWc layout adds a pair of reorders), which only another
# FactorizedReduce shares. Ops not listed share nothing.
_SHARED = {
    "max_pool_3x3": lambda stride: ("max_pool_3x3",),
    "avg_pool_3x3": lambda stride: ("avg_pool_3x3",),
    "skip_connect": lambda stride: ("relu", "shift") if stride == 2 else (),
    "sep_conv_3x3": lambda stride: ("relu",),
    "sep_conv_5x5": lambda stride: ("relu",),
    "dil_conv_3x3": lambda stride: ("relu",),
    "dil_conv_5x5": lambda stride: ("relu",),
}


def shared_prefixes(name: str, stride: int) -> tuple[str, ...]:
    """The parts (classes) of op ``name`` at ``stride`` that another edge applying an op
    of the same class to the same input shares with it once compiled; () for none."""
    share = _SHARED.get(name)
    return share(stride) if share else ()
