"""Latency measurement of one network on one device (the protocol of DESIGN.md).

Fixed batch size and input size; eval mode under ``torch.inference_mode()``; warm-up
runs; many timed repeats; median as the statistic with p10/p90 kept; CPU: a fixed thread
count; CUDA: CUDA events around each timed call.

Shared CPUs drift by several percent within minutes, so every architecture is timed
*interleaved* with a fixed reference network (ref, arch, ref, arch, ...) and the ratio
``median(arch) / median(ref)`` is kept beside the raw milliseconds. (``torch.utils.
benchmark`` times one statement at a time, so it cannot interleave two; hence this
small timer.)
"""
from __future__ import annotations

import platform
import re
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from lanas.genotype import Genotype, published
from lanas.network import MacroConfig, Network

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
REFERENCE_GENOTYPE = "darts_v2"  # the fixed reference network, built with the run's macro


@dataclass(frozen=True)
class MeasureSettings:
    device: str = "cpu"  # "cpu" or "cuda"
    batch_size: int = 1  # images per timed inference
    resolution: int = 8  # input height = width
    dtype: str = "float32"  # float32 | float16 | bfloat16 (half types on CUDA)
    threads: int = 1  # CPU threads per measuring worker (intra-op)
    warmup: int = 5  # untimed runs of each network before timing
    repeats: int = 25  # timed runs of each network (interleaved with the reference)

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        for name in ("batch_size", "resolution", "threads", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware_id(settings: MeasureSettings) -> str:
    """``cpu-<model>-t<threads>`` or ``cuda-<device name>`` (partition key of the dataset)."""
    if settings.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("measure.device is 'cuda' but no CUDA device is visible")
        return "cuda-" + _slug(torch.cuda.get_device_name())
    return f"cpu-{_slug(cpu_model())}-t{settings.threads}"


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int

    @classmethod
    def of(cls, samples_ms: list[float]) -> "Timing":
        q = statistics.quantiles(samples_ms, n=10, method="inclusive") if len(samples_ms) > 1 else samples_ms * 9
        return cls(statistics.median(samples_ms), q[0], q[-1], len(samples_ms))


@dataclass(frozen=True)
class PairedTiming:
    arch: Timing
    reference: Timing
    ratio: float  # median(arch) / median(reference)
    ratio_p10: float  # spread of the per-repeat ratios arch_i / ref_i
    ratio_p90: float
    timed_s: float  # wall seconds spent inside timed calls (for overhead accounting)


class _Clock:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def time_ms(self, model: nn.Module, x: torch.Tensor) -> float:
        if self.cuda:
            self.start.record()
            model(x)
            self.end.record()
            self.end.synchronize()
            return self.start.elapsed_time(self.end)
        t0 = time.perf_counter_ns()
        model(x)
        return (time.perf_counter_ns() - t0) / 1e6


def prepare(model: nn.Module, settings: MeasureSettings) -> nn.Module:
    return model.to(device=settings.device, dtype=DTYPES[settings.dtype]).eval()


def example_input(in_channels: int, settings: MeasureSettings) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(settings.batch_size, in_channels, settings.resolution, settings.resolution, generator=gen)
    return x.to(device=settings.device, dtype=DTYPES[settings.dtype])


def warm_up(model: nn.Module, x: torch.Tensor, settings: MeasureSettings) -> None:
    with cpu_threads(settings.threads), torch.inference_mode():
        for _ in range(settings.warmup):
            model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()


def time_interleaved(model: nn.Module, reference: nn.Module, x: torch.Tensor, settings: MeasureSettings,
                     warm_reference: bool = True) -> PairedTiming:
    """Time ``model`` and ``reference`` alternately on input ``x`` (both prepared).
    ``warm_reference=False`` skips the reference's warm-up when it is known to be warm."""
    clock = _Clock(x.device)
    arch_ms, ref_ms = [], []
    if warm_reference:
        warm_up(reference, x, settings)
    warm_up(model, x, settings)
    with cpu_threads(settings.threads), torch.inference_mode():
        for _ in range(settings.repeats):
            ref_ms.append(clock.time_ms(reference, x))
            arch_ms.append(clock.time_ms(model, x))
    ratios = [a / r for a, r in zip(arch_ms, ref_ms)]
    arch, ref = Timing.of(arch_ms), Timing.of(ref_ms)
    spread = Timing.of(ratios)
    if not (arch.median_ms > 0 and ref.median_ms > 0):
        raise RuntimeError(f"non-positive timing (arch {arch.median_ms} ms, ref {ref.median_ms} ms)")
    return PairedTiming(arch, ref, arch.median_ms / ref.median_ms, spread.p10_ms, spread.p90_ms,
                        (sum(arch_ms) + sum(ref_ms)) / 1e3)


class LatencyMeter:
    """Measures genotypes at one macro and setting against a fixed reference network.

    The reference is warmed up once here; afterwards it stays warm, being timed every
    other call, so each architecture only needs its own warm-up."""

    def __init__(self, macro: MacroConfig, settings: MeasureSettings, seed: int = 0):
        self.macro, self.settings = macro, settings
        torch.manual_seed(seed)
        self.reference = prepare(Network(published(REFERENCE_GENOTYPE), macro), settings)
        self.x = example_input(macro.in_channels, settings)
        warm_up(self.reference, self.x, settings)

    def measure(self, genotype: Genotype) -> PairedTiming:
        model = prepare(Network(genotype, self.macro), self.settings)
        return time_interleaved(model, self.reference, self.x, self.settings, warm_reference=False)
