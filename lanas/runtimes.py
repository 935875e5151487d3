"""Runtimes a network is deployed with: PyTorch eager, ONNX Runtime, OpenVINO.

:func:`compile_for` turns a ``torch.nn.Module`` and an example input into a
:class:`Compiled` -- a zero-argument ``run()`` doing one inference on that input -- plus
the seconds its export and compilation took (which users want to know, and which are
not latency); :func:`compile_builds` makes several independent builds from one export
(the measurement protocol's ``builds``). ONNX Runtime and OpenVINO both start from the
same in-memory ONNX graph: for a DARTS network written node by node from its modules
(:mod:`lanas.onnx_graph`, ~30x faster than tracing), else traced by the TorchScript
exporter (:func:`export_onnx`, also what ``lanas export`` writes); ``Compiled.build_path``
says which (``eager`` for PyTorch).

ONNX Runtime: CPU provider (CUDA's on a cuda target, where installed), all graph
optimisations, ``threads`` intra-op threads, sequential execution. OpenVINO: CPU,
``LATENCY`` hint, one stream, ``threads`` inference threads, f32 inference precision
(OpenVINO would silently run bf16 on CPUs that have it: not the target's dtype), no CPU
pinning (each measuring process would pin its stream to the same first core).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import importlib
import io
import os
import platform
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from lanas.onnx_graph import OPSET as ONNX_OPSET
from lanas.onnx_graph import Unsupported, network_onnx
from lanas.target import BUILTIN_RUNTIMES, Target, add_runtime, runtime_devices

ONNX_BUILDS = ("direct", "traced")  # how a network's ONNX graph is made (lanas.measure.MeasureSettings.onnx_build)
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class RuntimeMissing(RuntimeError):
    """A runtime a target needs is not installed (or cannot run here)."""


def runtime_version(runtime: str) -> str:
    """The installed version of ``runtime``; :class:`RuntimeMissing` if it is not installed."""
    rt = lookup(runtime)
    try:
        module = importlib.import_module(rt.module)
    except ImportError as exc:
        raise RuntimeMissing(f"runtime {runtime!r} is not installed ({exc}); {rt.install}") from None
    return str(getattr(module, "__version__", "unknown"))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(target: Target) -> str:
    """The model of the device this process would time ``target`` on."""
    if target.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeMissing(f"target {target.spec} needs a CUDA device, and none is visible here")
        return torch.cuda.get_device_name()
    return cpu_model()


@dataclass(frozen=True)
class Compiled:
    run: Callable[[], Any]  # one inference on the prepared input
    export_s: float  # seconds spent exporting (ONNX), 0 for eager
    compile_s: float  # seconds spent building the runtime's session / compiled model
    cuda_events: bool  # time ``run`` with CUDA events (torch on cuda) rather than the host clock
    build_path: str = "eager"  # eager (torch), direct (lanas.onnx_graph) or traced (the TorchScript exporter)


def export_onnx(model: nn.Module, x: torch.Tensor, dynamic_batch: bool = False) -> bytes:
    """ONNX bytes of ``model`` (in eval mode) on input ``x``; input ``x``, output ``logits``."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter warns that it is legacy, and about constant folding of strided
        # slices; the dynamo exporter needs onnxscript and takes seconds per network
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (x,),
            buf,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None,
        )
    return buf.getvalue()


def onnx_for_runtime(model: nn.Module, x: torch.Tensor, build: str = "direct") -> tuple[bytes, str]:
    """ONNX bytes of ``model`` for a compiled runtime, and how they were made: written
    directly (:func:`lanas.onnx_graph.network_onnx`) when ``build`` is ``direct`` and the
    model is a DARTS network it has rules for, else traced (:func:`export_onnx`)."""
    if build not in ONNX_BUILDS:
        raise ValueError(f"build must be one of {', '.join(ONNX_BUILDS)}, got {build!r}")
    if build == "direct":
        try:
            return network_onnx(model, x), "direct"
        except Unsupported:
            pass
    return export_onnx(model, x), "traced"


def example_input(in_channels: int, resolution: int, target: Target, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(target.batch_size, in_channels, resolution, resolution, generator=gen)


def _torch_export(model: nn.Module, x: torch.Tensor, target: Target) -> nn.Module:
    return model.to(device=target.device, dtype=TORCH_DTYPES[target.dtype]).eval()


def _torch(model: nn.Module, x: torch.Tensor, target: Target, first: bool) -> Compiled:
    t0 = time.perf_counter()
    model = model if first else copy.deepcopy(model)  # a build of its own: its own weight memory
    xd = x.to(device=target.device, dtype=TORCH_DTYPES[target.dtype])
    return Compiled(lambda: model(xd), 0.0, time.perf_counter() - t0, target.device == "cuda")


def onnxruntime_options(threads: int):
    """The ``onnxruntime.SessionOptions`` a target is measured with: every graph
    optimisation, sequential execution on ``threads`` intra-op threads, errors only."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return options


def _ort_session(onnx: bytes, target: Target, options=None):
    import onnxruntime as ort

    provider = "CUDAExecutionProvider" if target.device == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise RuntimeMissing(f"ONNX Runtime here has no {provider} (it has {', '.join(ort.get_available_providers())})")
    return ort.InferenceSession(onnx, options or onnxruntime_options(target.threads), providers=[provider])


def _onnxruntime(onnx: tuple[bytes, str], x: torch.Tensor, target: Target, first: bool) -> Compiled:
    t0 = time.perf_counter()
    session = _ort_session(onnx[0], target)
    feed = {"x": x.numpy()}
    return Compiled(lambda: session.run(None, feed), 0.0, time.perf_counter() - t0, False, onnx[1])


def _ov_compile(onnx: bytes, target: Target):
    import openvino as ov

    core = ov.Core()
    return core.compile_model(
        core.read_model(onnx),
        "CPU",
        {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": target.threads,
            "INFERENCE_PRECISION_HINT": "f32",  # the target's dtype; OpenVINO would pick bf16 on CPUs that have it
            "ENABLE_CPU_PINNING": False,
        },
    )  # measuring processes side by side would all pin to the same first core


def _openvino(onnx: tuple[bytes, str], x: torch.Tensor, target: Target, first: bool) -> Compiled:
    import openvino as ov

    t0 = time.perf_counter()
    request = _ov_compile(onnx[0], target).create_infer_request()
    request.set_input_tensor(ov.Tensor(x.numpy()))
    return Compiled(request.infer, 0.0, time.perf_counter() - t0, False, onnx[1])


@dataclass(frozen=True)
class Runtime:
    """How networks run on a runtime: what :func:`register` adds (docs/runtimes.md)."""

    name: str  # what a target's ``runtime`` says
    module: str  # the Python module it needs: its ``__version__`` is recorded with every row
    export: Callable[[nn.Module, torch.Tensor, Target, str], Any]  # (model, x, target, onnx_build) -> artifact
    build: Callable[[Any, torch.Tensor, Target, bool], Compiled]  # (artifact, x, target, first) -> one build
    devices: tuple[str, ...] = ("cpu",)
    install: str = ""  # how to install ``module``, said when it is missing
    graph: Callable[[bytes, Target], collections.Counter] | None = None  # the compiled graph's node kinds (costs)


def _ort_graph(onnx_bytes: bytes, target: Target) -> collections.Counter:
    import onnx

    options = onnxruntime_options(target.threads)
    with tempfile.TemporaryDirectory() as folder:
        options.optimized_model_filepath = os.path.join(folder, "optimised.onnx")
        _ort_session(onnx_bytes, target, options)
        return collections.Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)


_OV_NOT_RUN = frozenset({"Const", "Input", "Output", "Parameter", "Result"})  # runtime-model nodes that are not kernels


def _ov_graph(onnx_bytes: bytes, target: Target) -> collections.Counter:
    ops = _ov_compile(onnx_bytes, target).get_runtime_model().get_ordered_ops()
    info = [op.get_rt_info() for op in ops]
    kinds = (i["layerType"].astype(str) if "layerType" in i else op.get_type_name() for op, i in zip(ops, info))
    return collections.Counter(k for k in kinds if k not in _OV_NOT_RUN)


def _onnx_export(model: nn.Module, x: torch.Tensor, target: Target, build: str) -> tuple[bytes, str]:
    return onnx_for_runtime(model, x, build)


_BUILTIN = {
    "torch": Runtime("torch", "torch", lambda model, x, target, build: _torch_export(model, x, target), _torch,
                     BUILTIN_RUNTIMES["torch"]),
    "onnxruntime": Runtime("onnxruntime", "onnxruntime", _onnx_export, _onnxruntime, BUILTIN_RUNTIMES["onnxruntime"],
                           "pip install onnxruntime (a default dependency of lanas)", _ort_graph),
    "openvino": Runtime("openvino", "openvino", _onnx_export, _openvino, BUILTIN_RUNTIMES["openvino"],
                        "pip install openvino, or pip install 'lanas[openvino]'", _ov_graph),
}  # fmt: skip
_REGISTERED: dict[str, Runtime] = {}  # what register() added in this process


def register(runtime: Runtime) -> Runtime:
    """Add ``runtime``: targets may then name it (:func:`lanas.target.add_runtime`) and
    :func:`compile_builds` builds with it. A package makes it known to every process (Ray
    workers too) through an entry point in the ``lanas.runtimes`` group whose module calls
    this when imported (docs/runtimes.md)."""
    add_runtime(runtime.name, runtime.devices)
    _REGISTERED[runtime.name] = runtime
    return runtime


def lookup(name: str) -> Runtime:
    """The runtime called ``name`` (built in, or registered by a plugin)."""
    if name not in runtime_devices():  # loads the installed plugins first
        raise RuntimeMissing(f"no runtime {name!r}: known are {', '.join(runtime_devices())}")
    return _BUILTIN.get(name) or _REGISTERED[name]


def compile_builds(
    model: nn.Module, x: torch.Tensor, target: Target, builds: int, onnx_build: str = "direct"
) -> list[Compiled]:
    """``builds`` independent builds of ``model`` for ``target`` from one export: separate
    sessions / compiled models (for eager torch, copies of the module), each with its own
    memory, as separate deployments of the network would be. The export's seconds are
    on the first build; ``onnx_build`` is how a compiled runtime's graph is made
    (:func:`onnx_for_runtime`)."""
    if builds < 1:
        raise ValueError(f"builds must be >= 1, got {builds}")
    runtime_version(target.runtime)
    with torch.no_grad():
        t0 = time.perf_counter()
        rt = lookup(target.runtime)
        artifact = rt.export(model.eval(), x, target, onnx_build)
        spent = time.perf_counter() - t0
        out = [rt.build(artifact, x, target, b == 0) for b in range(builds)]
    if target.runtime == "torch":  # moving the module to its device and dtype is its build, not an export
        return [dataclasses.replace(out[0], compile_s=out[0].compile_s + spent), *out[1:]]
    return [dataclasses.replace(out[0], export_s=spent), *out[1:]]


def compile_for(model: nn.Module, x: torch.Tensor, target: Target, onnx_build: str = "direct") -> Compiled:
    """``model`` ready to time on ``target`` with input ``x`` (a CPU float32 tensor)."""
    return compile_builds(model, x, target, 1, onnx_build)[0]


def graph_nodes(model: nn.Module, x: torch.Tensor, target: Target) -> collections.Counter | None:
    """The node types of the graph ``target``'s runtime runs for ``model`` on ``x``, after
    its own fusions and layout changes (nothing is timed): ONNX Runtime's optimised model,
    OpenVINO's compiled runtime model (constants and inputs left out). None for eager
    torch, which compiles no graph (what it dispatches: :func:`lanas.costs.network_costs`),
    and for a registered runtime without a ``graph`` function."""
    runtime_version(target.runtime)
    graph = lookup(target.runtime).graph
    if graph is None:
        return None
    with torch.no_grad():
        onnx_bytes, _ = onnx_for_runtime(model.eval(), x)
    return graph(onnx_bytes, target)
