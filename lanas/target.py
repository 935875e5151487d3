"""A deployment target: the device, runtime, dtype, batch size and threads a network is
timed with. Latency is a property of an architecture *on a target*, never on its own.

A target has two names:

* ``spec`` -- what the config says, machine-independent: ``cpu-t1-onnxruntime-b1``,
  ``cuda-torch-float16-b32``;
* ``hardware_id(device_name)`` -- the spec with the measuring machine's device model
  in it: ``cpu-AMD-EPYC-7B13-t1-onnxruntime-b1``, ``cuda-NVIDIA-H100-torch-float16-b32``.
  It is the partition key of the latency dataset.

``float32`` is left out of both names (it is the default); any other dtype is in them.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from dataclasses import dataclass

DEVICES = ("cpu", "cuda")
BUILTIN_RUNTIMES = {"torch": ("cpu", "cuda"), "onnxruntime": ("cpu", "cuda"), "openvino": ("cpu",)}  # -> devices
RUNTIMES = tuple(BUILTIN_RUNTIMES)
DTYPES = ("float32", "float16", "bfloat16")
PLUGIN_GROUP = "lanas.runtimes"  # entry-point group of installed packages that add runtimes (docs/runtimes.md)

# runtimes added by lanas.runtimes.register, by name -> devices: the one registry of target names beyond the built-in
_ADDED: dict[str, tuple[str, ...]] = {}


def add_runtime(name: str, devices: tuple[str, ...]) -> None:
    """Let targets name ``name`` (on ``devices``): what :func:`lanas.runtimes.register` calls."""
    if name in BUILTIN_RUNTIMES or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"a new runtime needs a new lower-case name, got {name!r}")
    unknown = [d for d in devices if d not in DEVICES]
    if not devices or unknown:
        raise ValueError(f"runtime {name}: devices must be some of {DEVICES}, got {devices}")
    _ADDED[name] = tuple(devices)


@functools.cache
def _load_plugins() -> None:
    """Import every installed package's ``lanas.runtimes`` entry point once per process
    (each registers its runtime when imported), so Ray workers know them too."""
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        ep.load()


def runtime_devices() -> dict[str, tuple[str, ...]]:
    """Every runtime a target may name, with the devices it runs on."""
    _load_plugins()
    return {**BUILTIN_RUNTIMES, **_ADDED}


def slug(text: str) -> str:
    """``text`` with every run of characters other than letters and digits made one ``-``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


@dataclass(frozen=True)
class Target:
    device: str = "cpu"  # cpu | cuda
    runtime: str = "torch"  # torch (eager) | onnxruntime | openvino (CPU only) | a registered one (docs/runtimes.md)
    dtype: str = "float32"  # float32 | float16 | bfloat16; half types with runtime torch on cuda only
    batch_size: int = 1  # images per timed inference
    threads: int = 1  # cpu: intra-op threads, and the cores each measuring task reserves

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        runtimes = runtime_devices()
        if self.runtime not in runtimes:
            raise ValueError(f"runtime must be one of {tuple(runtimes)}, got {self.runtime!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.dtype != "float32" and (self.device != "cuda" or self.runtime != "torch"):
            raise ValueError(f"dtype {self.dtype} is supported with runtime torch on cuda only")
        if self.device not in runtimes[self.runtime]:
            raise ValueError(f"runtime {self.runtime} runs on device {' or '.join(runtimes[self.runtime])} only")
        for name in ("batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def _tail(self) -> str:
        dtype = "" if self.dtype == "float32" else f"-{self.dtype}"
        return f"{self.runtime}{dtype}-b{self.batch_size}"

    @property
    def spec(self) -> str:
        """Machine-independent name, as a config would write it."""
        threads = f"-t{self.threads}" if self.device == "cpu" else ""
        return f"{self.device}{threads}-{self._tail()}"

    def hardware_id(self, device_name: str) -> str:
        """Partition key: the spec with the device model (``device_name``) in it."""
        threads = f"-t{self.threads}" if self.device == "cpu" else ""
        return f"{self.device}-{slug(device_name)}{threads}-{self._tail()}"

    def resource_options(self, num_cpus: float, num_gpus: float) -> tuple[float, float]:
        """(CPUs, GPUs) a measuring task reserves: a CPU target never shares a core
        (``threads`` cores at least), a CUDA target a whole GPU at least."""
        if self.device == "cuda":
            return num_cpus, max(num_gpus, 1.0)
        return max(num_cpus, float(self.threads)), num_gpus


def pick(targets: tuple[Target, ...], name: str, hardware_ids: dict[str, str] | None = None) -> Target:
    """The target called ``name``: its spec or its hardware id (``hardware_ids`` maps
    spec -> id where the ids are known). Raises ValueError listing the choices."""
    ids = hardware_ids or {}
    for t in targets:
        if name in (t.spec, ids.get(t.spec)):
            return t
    known = ", ".join(f"{t.spec}" + (f" ({ids[t.spec]})" if t.spec in ids else "") for t in targets)
    raise ValueError(f"unknown target {name!r}; this run's targets: {known}")
