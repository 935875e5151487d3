"""Latency measurement of one network on one target (device x runtime x dtype x batch x threads).

The protocol (nn-Meter, HW-NAS-Bench, ProxylessNAS): fixed batch and input size; eval
mode under ``torch.inference_mode()``; warm-up runs; many timed repeats; the median
kept with p10/p90; a fixed thread count on CPU; CUDA events around each call for torch
on CUDA (ONNX Runtime's ``run`` returns its outputs on the host, so the host clock holds).

Shared CPUs drift by several percent within minutes, so every architecture is timed
*interleaved* with a fixed reference network compiled for the same target, and the
latency ratio is, by default (``statistic: pair_median``), the median of the per-pair
ratios ``arch_i / ref_i`` (the pairs are what the interleaving buys; the ratio of the two
medians throws the pairing away). ``statistic: p10s`` takes the ratio of the two
networks' 10th-percentile times instead, for runtimes whose calls are now and then
slowed outside their kernels (OpenVINO's timings repeat better with it, eager's worse:
``benchmarks/measure_noise.py`` tells which repeats better on a given machine).
``builds: B`` shares the pairs over B independent builds of the architecture and of the
reference (:class:`LatencyMeter`): a compiled runtime's builds of one network can differ
more than its timings do. Which of the two runs first alternates from pair to pair, and
the garbage collector is off while timing. (``torch.utils.benchmark`` times one
statement at a time, so it cannot interleave two networks, nor time an ONNX Runtime
session; hence this small timer.)
"""

from __future__ import annotations

import gc
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from lanas.genotype import Genotype, published
from lanas.network import MacroSettings, Network
from lanas.runtimes import ONNX_BUILDS, Compiled, compile_builds, device_name, example_input, runtime_version
from lanas.target import Target

REFERENCE_GENOTYPE = "darts_v2"  # the fixed reference network, built with the run's macro
STATISTICS = ("pair_median", "p10s")  # median of the per-pair ratios; ratio of the 10th percentiles


@dataclass(frozen=True)
class MeasureSettings:
    warmup: int = 5  # untimed runs of each network before timing
    repeats: int = 25  # timed runs of each network (interleaved with the reference), at least
    min_time_s: float = 0.0  # ... and more pairs until this many seconds were timed (sub-ms runtimes)
    max_repeats: int = 1000  # ... but never more than this many pairs
    statistic: str = "pair_median"  # the latency ratio: one of STATISTICS
    builds: int = 1  # independent builds of each network (and of the reference) the pairs are shared over
    onnx_build: str = "direct"  # compiled runtimes' graph: "direct" (lanas.onnx_graph) or "traced"

    def __post_init__(self) -> None:
        if self.onnx_build not in ONNX_BUILDS:
            raise ValueError(f"onnx_build must be one of {', '.join(ONNX_BUILDS)}, got {self.onnx_build!r}")
        if self.builds < 1:
            raise ValueError(f"builds must be >= 1, got {self.builds}")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.min_time_s < 0 or self.max_repeats < self.repeats:
            raise ValueError(
                f"min_time_s must be >= 0 and max_repeats >= repeats, got {self.min_time_s}, {self.max_repeats}"
            )


def hardware_id(target: Target) -> str:
    """The dataset partition key of ``target`` on this machine (see :mod:`lanas.target`)."""
    return target.hardware_id(device_name(target))


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def quiet_timing(threads: int) -> Iterator[None]:
    """Fixed torch threads, inference mode, garbage collector off (restored after)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with cpu_threads(threads), torch.inference_mode():
            yield
    finally:
        if enabled:
            gc.enable()


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
    ratio: float  # the latency ratio (MeasureSettings.statistic)
    ratio_p10: float  # the spread of the per-pair ratios arch_i / ref_i
    ratio_p90: float
    timed_s: float  # wall seconds spent inside timed calls (for overhead accounting)


def _clock(compiled: Compiled) -> Callable[[], float]:
    """A function running ``compiled`` once and returning its milliseconds."""
    if compiled.cuda_events:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def cuda_ms() -> float:
            start.record()
            compiled.run()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

        return cuda_ms

    def host_ms() -> float:
        t0 = time.perf_counter_ns()
        compiled.run()
        return (time.perf_counter_ns() - t0) / 1e6

    return host_ms


def warm_up(compiled: Compiled, runs: int, threads: int) -> None:
    with quiet_timing(threads):
        for _ in range(runs):
            compiled.run()
        if compiled.cuda_events:
            torch.cuda.synchronize()


def time_pairs(
    model: Compiled, reference: Compiled, repeats: int, min_time_s: float, max_repeats: int, threads: int
) -> tuple[list[float], list[float]]:
    """Time ``model`` and ``reference`` (both warm) in pairs, alternating which runs first:
    ``repeats`` pairs, more (up to ``max_repeats``) until ``min_time_s`` was spent timing.
    Returns the two lists of milliseconds, pair by pair."""
    arch_clock, ref_clock = _clock(model), _clock(reference)
    arch_ms: list[float] = []
    ref_ms: list[float] = []
    timed_ms = 0.0
    with quiet_timing(threads):
        while len(arch_ms) < repeats or (len(arch_ms) < max_repeats and timed_ms < 1e3 * min_time_s):
            if len(arch_ms) % 2:
                arch_ms.append(arch_clock())
                ref_ms.append(ref_clock())
            else:
                ref_ms.append(ref_clock())
                arch_ms.append(arch_clock())
            timed_ms += arch_ms[-1] + ref_ms[-1]
    return arch_ms, ref_ms


def time_block(
    model: Compiled, reference: Compiled, settings: MeasureSettings, threads: int, share: int = 1
) -> tuple[list[float], list[float]]:
    """Warm ``model`` and ``reference`` up, then time them in pairs (:func:`time_pairs`):
    ``1 / share`` of the pairs and seconds ``settings`` asks for (one of ``share`` builds)."""
    repeats = -(-settings.repeats // share)  # as evenly as they go, at least
    warm_up(reference, settings.warmup, threads)
    warm_up(model, settings.warmup, threads)
    most = max(repeats, settings.max_repeats // share)
    return time_pairs(model, reference, repeats, settings.min_time_s / share, most, threads)


def paired_timing(arch_ms: list[float], ref_ms: list[float], statistic: str = "pair_median") -> PairedTiming:
    """The :class:`PairedTiming` of interleaved times (``arch_ms[i]`` paired with
    ``ref_ms[i]``), its ratio by ``statistic`` (:data:`STATISTICS`)."""
    arch, ref = Timing.of(arch_ms), Timing.of(ref_ms)
    if not (arch.p10_ms > 0 and ref.p10_ms > 0):
        raise RuntimeError(f"non-positive timing (arch {arch.p10_ms} ms, ref {ref.p10_ms} ms at the 10th percentile)")
    ratios = Timing.of([a / r for a, r in zip(arch_ms, ref_ms)])
    ratio = latency_ratio(arch, ref, ratios.median_ms, statistic)
    return PairedTiming(arch, ref, ratio, ratios.p10_ms, ratios.p90_ms, (sum(arch_ms) + sum(ref_ms)) / 1e3)


def latency_ratio(arch: Timing, ref: Timing, pair_median: float, statistic: str) -> float:
    """The latency ratio by ``statistic`` (:data:`STATISTICS`), from the two networks'
    timings and the median of their per-pair ratios."""
    return pair_median if statistic == "pair_median" else arch.p10_ms / ref.p10_ms


@dataclass(frozen=True)
class Measurement:
    timing: PairedTiming
    export_s: float  # the architecture's ONNX export (0 for eager)
    compile_s: float  # its session / compiled-model build
    build_path: str  # how the network got into the runtime: eager, direct or traced (lanas.runtimes)


class LatencyMeter:
    """Measures genotypes at one macro and input size on one target, against a fixed
    reference network compiled for the same target.

    With ``settings.builds`` = B, the reference is built B times here, once, and each
    architecture B times from one export; the timed pairs are shared over the builds
    (architecture build b against reference build b, each pair of builds warmed up
    first), and the ratio is taken over all of them. A compiled runtime's builds of one
    network can differ by more than its timing does (``benchmarks/build_noise.py``; on a
    shared CPU OpenVINO's ratio moved 1.2x to 2.6x as much from build to build as from
    one timing to the next, depending on the hour), and a reference build that came out
    slow or fast would shift every ratio a meter measures; spreading the pairs over builds
    averages both, for the price of the extra builds and warm-ups only. (Each block warms
    its reference build up too: with one build, the reference gets a few untimed runs
    before every architecture.)"""

    def __init__(self, macro: MacroSettings, target: Target, settings: MeasureSettings, resolution: int, seed: int = 0):
        self.macro, self.target, self.settings = macro, target, settings
        self.runtime_version = runtime_version(target.runtime)
        self.x = example_input(macro.in_channels, resolution, target)
        torch.manual_seed(seed)
        reference = Network(published(REFERENCE_GENOTYPE), macro)
        self.references = compile_builds(reference, self.x, target, settings.builds, settings.onnx_build)

    def compile(self, genotype: Genotype) -> list[Compiled]:
        return compile_builds(
            Network(genotype, self.macro), self.x, self.target, self.settings.builds, self.settings.onnx_build
        )

    def measure(self, genotype: Genotype) -> Measurement:
        arch_ms: list[float] = []
        ref_ms: list[float] = []
        builds = self.compile(genotype)
        for model, reference in zip(builds, self.references):
            a, r = time_block(model, reference, self.settings, self.target.threads, self.settings.builds)
            arch_ms += a
            ref_ms += r
        timing = paired_timing(arch_ms, ref_ms, self.settings.statistic)
        return Measurement(
            timing, sum(b.export_s for b in builds), sum(b.compile_s for b in builds), builds[0].build_path
        )
