"""A target runtime added through the registry: TorchScript (``torch.jit.trace``) on CPU.

docs/runtimes.md walks through it; tests/test_runtime_plugin.py installs it as a plugin
(an entry point in the ``lanas.runtimes`` group) and measures a network with it.
"""

import time
import warnings

import torch

from lanas.runtimes import Compiled, Runtime, register


def export(model, x, target, onnx_build):
    """What every build starts from: here the traced, frozen module (``onnx_build`` is for
    the ONNX runtimes). PyTorch marks TorchScript deprecated; many mobile deployments still
    run it, and the mechanism is the same for any runtime."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.freeze(torch.jit.trace(model.eval(), x))


def build(traced, x, target, first):
    """One build, ready to time: a zero-argument call doing one inference on ``x``."""
    t0 = time.perf_counter()
    torch.set_num_threads(target.threads)
    module = traced if first else traced.copy()
    return Compiled(run=lambda: module(x), export_s=0.0, compile_s=time.perf_counter() - t0, cuda_events=False,
                    build_path="traced")  # fmt: skip


TORCHSCRIPT = register(Runtime(name="torchscript", module="torch", export=export, build=build, devices=("cpu",)))
