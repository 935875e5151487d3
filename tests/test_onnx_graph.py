"""The ONNX graph written from the modules (lanas.onnx_graph) is the network the torch
module is: the same outputs in ONNX Runtime and OpenVINO on every op and on 50 random
architectures, and after each runtime's own optimisation the same kernels as the traced
export's."""

import collections
import os
import tempfile

import numpy as np
import pytest
import torch

from lanas.genotype import Genotype
from lanas.network import MacroSettings, Network
from lanas.onnx_graph import Unsupported, network_onnx
from lanas.ops import DARTS_OPS
from lanas.runtimes import compile_for, export_onnx, onnx_for_runtime, onnxruntime_options
from lanas.search import SearchSettings, build_supernet
from lanas.space import SearchSpace
from lanas.target import Target
from lanas.topology import CONCAT, NODES

MACRO = MacroSettings(layers=5, channels=8)
SPACE = SearchSpace()


def _randomised(net: Network) -> Network:
    """Batch norms with statistics and affine parameters far from their initial values,
    so that folding them into the convolutions is exercised."""
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return net.eval()


def _one_op(op: str) -> Genotype:
    pairs = tuple((op, i) for _ in NODES for i in (0, 1))
    return Genotype(pairs, CONCAT, pairs, CONCAT)


def _max_difference(genotype: Genotype, runtime: str) -> float:
    torch.manual_seed(0)
    net = _randomised(Network(genotype, MACRO))
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        expected = net(x).numpy()
    compiled = compile_for(net, x, Target(runtime=runtime))
    assert compiled.build_path == "direct"
    out = compiled.run()
    got = out[0] if runtime == "onnxruntime" else next(iter(out.values()))
    return float(np.abs(np.asarray(got) - expected).max())


@pytest.mark.parametrize("op", [o for o in DARTS_OPS if o != "none"])
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_every_op_computes_what_the_module_computes(op, runtime):
    """Every edge of both cell types carries ``op``: each op at stride 1 and stride 2."""
    assert _max_difference(_one_op(op), runtime) <= 1e-4


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_fifty_random_architectures_compute_what_the_module_computes(runtime):
    genotypes = SPACE.sample_unique(25, 11) + SPACE.sample_unique(25, 12, concentration=0.3)
    assert max(_max_difference(g, runtime) for g in genotypes) <= 1e-4


def test_zero_op_is_a_multiplication_by_zero_at_both_strides():
    """'none' is never chosen by the samplers, but a network may hold it."""
    import onnxruntime as ort

    pairs = tuple(("none" if i == 0 else "max_pool_3x3", i) for _ in NODES for i in (0, 1))
    net = _randomised(Network(Genotype(pairs, CONCAT, pairs, CONCAT), MACRO))
    x = torch.randn(1, 1, 8, 8)
    session = ort.InferenceSession(network_onnx(net, x), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert np.abs(session.run(None, {"x": x.numpy()})[0] - net(x).numpy()).max() <= 1e-4


def _ort_kernels(onnx_bytes: bytes) -> collections.Counter:
    import onnx
    import onnxruntime as ort

    options = onnxruntime_options(1)
    with tempfile.TemporaryDirectory() as folder:
        options.optimized_model_filepath = os.path.join(folder, "optimised.onnx")
        ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        return collections.Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)


def test_after_optimisation_onnx_runtime_runs_the_traced_exports_kernels():
    for g in SPACE.sample_unique(3, 21) + SPACE.sample_unique(3, 22, concentration=0.3):
        net = Network(g, MACRO).eval()
        x = torch.randn(1, 1, 8, 8)
        assert _ort_kernels(network_onnx(net, x)) == _ort_kernels(export_onnx(net, x)), g


def test_models_without_rules_are_traced_and_the_path_is_recorded():
    x = torch.randn(1, 1, 8, 8)
    supernet = build_supernet(SPACE, MACRO, SearchSettings()).eval()
    with pytest.raises(Unsupported):
        network_onnx(supernet, x)
    net = Network(SPACE.sample_unique(1, 0)[0], MACRO).eval()
    assert onnx_for_runtime(net, x)[1] == "direct"
    assert onnx_for_runtime(net, x, "traced")[1] == "traced"
    assert compile_for(net, x, Target(runtime="onnxruntime"), "traced").build_path == "traced"
    assert compile_for(net, x, Target(runtime="torch")).build_path == "eager"
    with pytest.raises(ValueError, match="build must be one of direct, traced"):
        onnx_for_runtime(net, x, "magic")
