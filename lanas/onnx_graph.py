"""ONNX graphs of DARTS networks written node by node from the modules, without tracing.

The TorchScript exporter traces the whole network, folds its constants and serialises it:
about a quarter of a second per architecture, three quarters of a compiled runtime's
measuring task. Every :class:`lanas.network.Network` is built from a handful of module
kinds, so its graph can be written directly: each module maps to the nodes the exporter
emits for it in eval mode -- a convolution followed by batch norm becomes one ``Conv``
with the norm folded into its weights and bias (the exporter's eval peephole), a
``Zero`` op a ``Mul`` by 0 (after strided ``Slice`` nodes at stride 2), ``FactorizedReduce``
``Relu``, two strided ``Conv`` on the input and on its shift (a ``Slice`` per axis, then a
``Pad`` whose pads are computed, not a constant, as the exporter leaves them: a constant
would let ONNX Runtime fold the ``Pad`` into the ``Conv``, a graph the exporter never
gives), ``Concat`` and ``BatchNormalization`` -- and a cell's nodes ``Add`` their two edges
and ``Concat`` the node outputs, as ``Cell.forward`` does. After each runtime's own
optimisation the graph has the same kernels as the traced one. ``tests/test_onnx_graph.py`` checks
the graph computes what the module computes on every op and on random architectures, in
ONNX Runtime and OpenVINO; ``benchmarks/measure_throughput.py`` times both paths side by side.

:func:`network_onnx` raises :class:`Unsupported` for a module it has no rule for (a
supernet, another space's network); :func:`lanas.runtimes.onnx_for_runtime` then traces.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from lanas.network import Cell, Network
from lanas.ops import FactorizedReduce, Zero

OPSET = 17  # the ONNX opset of every graph lanas makes, written or traced (lanas.runtimes.export_onnx)
_BIG = np.iinfo(np.int64).max
# onnx.TensorProto's data types (FLOAT, INT64, INT32). onnx itself is imported where a graph
# is written: importing it costs about a second and a half, and every Ray worker that
# imports lanas.runtimes (a search trial, a Train worker) would pay it for nothing
_FLOAT, _INT64, _INT32 = 1, 7, 6
_DTYPES = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64, np.dtype(np.int32): _INT32}


class Unsupported(TypeError):
    """A module the direct writer has no rule for."""


class _Graph:
    def __init__(self) -> None:
        import onnx

        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        # a node's attributes, made once per distinct set: helper.make_attribute is most of the writer's time otherwise
        self._attributes: dict[tuple, list[onnx.AttributeProto]] = {}

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array: np.ndarray, hint: str) -> str:
        name = self.name(hint)
        array = np.ascontiguousarray(array)
        import onnx

        tensor = onnx.TensorProto(name=name, data_type=_DTYPES[array.dtype], dims=array.shape, raw_data=array.tobytes())
        self.initializers.append(tensor)
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import NodeProto, helper

        out = self.name(op.lower())
        node = NodeProto(op_type=op, input=inputs, output=[out])
        key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(attrs.items()))
        if key not in self._attributes:
            self._attributes[key] = [helper.make_attribute(k, v) for k, v in sorted(attrs.items())]
        node.attribute.extend(self._attributes[key])
        self.nodes.append(node)
        return out


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32, copy=False)


def _conv(g: _Graph, x: str, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None) -> str:
    """``Conv``, with ``bn`` (eval) folded into its weights and bias when given."""
    w = conv.weight.detach().numpy()
    b = conv.bias.detach().numpy() if conv.bias is not None else None
    if bn is not None:
        var, mean = bn.running_var.numpy().astype(np.float64), bn.running_mean.numpy().astype(np.float64)
        gamma = bn.weight.detach().numpy() if bn.weight is not None else 1.0
        scale = gamma / np.sqrt(var + bn.eps)
        shift = bn.bias.detach().numpy() if bn.bias is not None else 0.0
        w = (w * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
        b = (shift + ((b if b is not None else 0.0) - mean) * scale).astype(np.float32)
    inputs = [x, g.const(w, "w")] + ([g.const(b, "b")] if b is not None else [])
    pad_h, pad_w = conv.padding if isinstance(conv.padding, tuple) else (conv.padding, conv.padding)
    return g.node(
        "Conv",
        inputs,
        kernel_shape=list(conv.kernel_size),
        strides=list(conv.stride),
        pads=[pad_h, pad_w, pad_h, pad_w],
        dilations=list(conv.dilation),
        group=conv.groups,
    )


def _batch_norm(g: _Graph, x: str, bn: nn.BatchNorm2d) -> str:
    c = bn.num_features
    weight = _f32(bn.weight) if bn.weight is not None else np.ones(c, np.float32)
    bias = _f32(bn.bias) if bn.bias is not None else np.zeros(c, np.float32)
    ins = [x, g.const(weight, "gamma"), g.const(bias, "beta")]
    ins += [g.const(_f32(bn.running_mean), "mean"), g.const(_f32(bn.running_var), "var")]
    return g.node("BatchNormalization", ins, epsilon=float(bn.eps))


def _pool(g: _Graph, x: str, pool: nn.MaxPool2d | nn.AvgPool2d) -> str:
    k, s, p = (v if isinstance(v, int) else v[0] for v in (pool.kernel_size, pool.stride, pool.padding))
    if getattr(pool, "ceil_mode", False):
        raise Unsupported("pooling with ceil_mode")
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p, p, p, p]}
    if isinstance(pool, nn.MaxPool2d):
        return g.node("MaxPool", [x], **attrs)
    return g.node("AveragePool", [x], count_include_pad=int(pool.count_include_pad), **attrs)


def _slice(g: _Graph, x: str, start: int, step: int) -> str:
    """``x[:, :, start::step, start::step]`` as the exporter writes it: one ``Slice`` per axis."""
    for axis in (2, 3):
        ins = [g.const(np.array([v], np.int64), n) for v, n in ((start, "start"), (_BIG, "end"), (axis, "axis"))]
        x = g.node("Slice", [x, *ins, g.const(np.array([step], np.int64), "step")])
    return x


def _zero(g: _Graph, x: str, op: Zero) -> str:
    if op.stride != 1:
        x = _slice(g, x, 0, op.stride)
    return g.node("Mul", [x, g.const(np.array(0.0, np.float32), "zero")])


def _factorized_reduce(g: _Graph, x: str, op: FactorizedReduce) -> str:
    r = g.node("Relu", [x])
    a = _conv(g, r, op.conv_1)
    # the exporter computes F.pad's pads in the graph (constant-folded only after ONNX Runtime's
    # Pad-into-Conv fusion has run, so the Pad stays): a Cast of a constant keeps that order
    pads = g.node("Cast", [g.const(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int32), "pads")], to=_INT64)
    shifted = g.node("Pad", [_slice(g, r, 1, 1), pads, ""])
    b = _conv(g, shifted, op.conv_2)
    return _batch_norm(g, g.node("Concat", [a, b], axis=1), op.bn)


def _sequence(g: _Graph, x: str, seq: nn.Sequential) -> str:
    mods = list(seq)
    i = 0
    while i < len(mods):
        m, nxt = mods[i], mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d):
            x, i = _conv(g, x, m, nxt), i + 2
        else:
            x, i = emit(g, x, m), i + 1
    return x


_RULES: dict[type, Callable[[_Graph, str, nn.Module], str]] = {
    nn.Sequential: _sequence,
    nn.ReLU: lambda g, x, m: g.node("Relu", [x]),
    nn.Identity: lambda g, x, m: x,
    nn.Conv2d: _conv,
    nn.BatchNorm2d: _batch_norm,
    nn.MaxPool2d: _pool,
    nn.AvgPool2d: _pool,
    Zero: _zero,
    FactorizedReduce: _factorized_reduce,
}


def emit(g: _Graph, x: str, module: nn.Module) -> str:
    """The nodes of ``module`` applied to the value ``x``; the name of its output."""
    for cls in type(module).__mro__:  # the ops' Sequential subclasses (ReLUConvBN, SepConv, ...) are sequences
        if cls in _RULES:
            return _RULES[cls](g, x, module)
    raise Unsupported(f"no ONNX rule for {type(module).__name__}")


def _cell(g: _Graph, s0: str, s1: str, cell: Cell) -> str:
    states = [emit(g, s0, cell.pre.pre0), emit(g, s1, cell.pre.pre1)]
    for k in range(len(cell.ops) // 2):
        a, b = (emit(g, states[cell.edges[e][1]], cell.ops[e]) for e in (2 * k, 2 * k + 1))
        states.append(g.node("Add", [a, b]))
    return g.node("Concat", [states[i] for i in cell.concat], axis=1)


def network_onnx(model: nn.Module, x: torch.Tensor) -> bytes:
    """ONNX bytes of ``model`` (a :class:`lanas.network.Network`, in eval mode) for inputs
    shaped like ``x``: input ``x``, output ``logits``, as :func:`lanas.runtimes.export_onnx`
    names them."""
    if type(model) is not Network or model.training:
        raise Unsupported(f"the direct writer takes a Network in eval mode, not {type(model).__name__}")
    g = _Graph()
    s0 = s1 = _sequence(g, "x", model.stem)
    for cell in model.cells:
        if type(cell) is not Cell:
            raise Unsupported(f"no ONNX rule for cell {type(cell).__name__}")
        s0, s1 = s1, _cell(g, s0, s1, cell)
    flat = g.node("Flatten", [g.node("GlobalAveragePool", [s1])], axis=1)
    fc = model.classifier
    logits = g.node("Gemm", [flat, g.const(_f32(fc.weight), "fc_w"), g.const(_f32(fc.bias), "fc_b")], transB=1)
    from onnx import helper

    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    graph = helper.make_graph(
        g.nodes,
        "lanas_network",
        [helper.make_tensor_value_info("x", _FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("logits", _FLOAT, [x.shape[0], fc.out_features])],
        g.initializers,
    )
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lanas")
    return model_proto.SerializeToString()
