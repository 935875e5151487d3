"""Where the re-measurement noise comes from, and what the measurement protocol buys against it.

    .venv/bin/python benchmarks/measure_noise.py [--archs 24] [--config configs/demo.yaml]

Kendall tau and MAPE of a predictor are capped by the noise of the latencies they are
scored against: two measurements of the same architectures never agree perfectly. For
every CPU runtime and every protocol below, the same --archs uniform random
architectures of the config's network are measured twice (two passes, each with freshly
compiled networks and reference, as two runs of ``lanas measure`` would), by 2 worker
processes side by side (as the pipeline's 2 measuring tasks are on a 2-core machine);
the passes of all protocols are interleaved so the machine's drift falls on all alike.
The protocols (``common.PROTOCOLS``): the demo's (5 warm-up runs, >= 25 pairs, >= 0.05 s
timed), a long one (20, >= 100, >= 0.4 s) and the demo's pairs shared over 3 builds of
each network and of the reference (``builds: 3``; ``benchmarks/build_noise.py`` shows why).
Recorded per (runtime, protocol): median, p90 and mean of |ratio_a / ratio_b - 1|, the
mean's difference to the demo protocol's on the same architectures with a paired
bootstrap interval, Kendall tau between the passes (the ceiling any predictor's tau can
reach on such labels), the mean seconds per architecture (compile + timing) and both
passes' ratios. The same timings are also reduced by
other statistics (``STATISTICS``) than the protocol's median of the per-pair ratios: the
ratio of the two networks' medians, and of their 10th percentiles (a runtime whose calls
are sometimes slowed, by something outside its kernels, has a stable fast mode).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import statistics
import time
from pathlib import Path

from common import PROTOCOLS, cpu_meter, record

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ("torch", "onnxruntime", "openvino")
STATISTICS = ("pair_median", "medians", "p10s")  # lanas.measure's, and the ratio of the two medians


def _measure(job):
    """One worker's share of a pass: latency ratios of its genotypes (fresh meter)."""
    config, runtime, protocol, genotypes = job
    meter = cpu_meter(config, runtime, PROTOCOLS[protocol])
    t0 = time.perf_counter()
    timings = [meter.measure(g).timing for g in genotypes]  # the protocol's statistic: t.ratio is the pair median
    return {name: [_ratio(t, name) for t in timings] for name in STATISTICS}, time.perf_counter() - t0


def _ratio(t, statistic: str) -> float:
    from lanas.measure import latency_ratio

    if statistic == "medians":
        return t.arch.median_ms / t.reference.median_ms
    return latency_ratio(t.arch, t.reference, t.ratio, statistic)


def main() -> None:
    import numpy as np
    from scipy import stats

    from lanas.quality import paired_bootstrap
    from lanas.space import SearchSpace
    from lanas_pipeline.config import load_config

    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=24)
    ap.add_argument("--config", default="configs/demo.yaml")
    args = ap.parse_args()
    cfg = load_config(ROOT / args.config)
    genotypes = SearchSpace(cfg.space.ops).sample_unique(args.archs, seed=4242)
    halves = [genotypes[0::2], genotypes[1::2]]
    t0 = time.perf_counter()
    passes: dict[tuple[str, str], list[list[float]]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        for _, runtime, protocol in itertools.product(range(2), RUNTIMES, PROTOCOLS):
            outs = pool.map(_measure, [(str(ROOT / args.config), runtime, protocol, h) for h in halves])
            ratios = {}
            for name in STATISTICS:
                ratios[name] = [None] * len(genotypes)
                ratios[name][0::2], ratios[name][1::2] = outs[0][0][name], outs[1][0][name]
            passes.setdefault((runtime, protocol), []).append(ratios)
            seconds.setdefault((runtime, protocol), []).append(sum(o[1] for o in outs) / len(genotypes))
            print(f"{runtime:12s} {protocol:5s} pass {len(passes[runtime, protocol])}: "
                  f"{seconds[runtime, protocol][-1]:.2f} s/arch", flush=True)  # fmt: skip

    def rel_diff(a: list[float], b: list[float]) -> list[float]:
        return [abs(x / y - 1) for x, y in zip(a, b)]

    baseline = {r: rel_diff(*(p["pair_median"] for p in passes[r, "demo"])) for r in RUNTIMES}
    figures = {}
    for (runtime, protocol), (first, second) in passes.items():
        per_statistic = {}
        for name in STATISTICS:
            a, b = first[name], second[name]
            diff = rel_diff(a, b)
            ranked = sorted(diff)
            per_statistic[name] = {
                "median_rel_diff": statistics.median(diff),
                "p90_rel_diff": ranked[int(0.9 * (len(diff) - 1))],
                "mean_rel_diff": statistics.mean(diff),
                # the mean difference per architecture minus the demo protocol's pair median's, same architectures
                "mean_rel_diff_vs_demo_pair_median": paired_bootstrap(np.array(diff), np.array(baseline[runtime])),
                "kendall_tau_between_passes": float(stats.kendalltau(a, b).statistic),
                "ratio_range": [min(a), max(a)],
                "passes": [a, b],
            }
        figures.setdefault(runtime, {})[protocol] = {
            "protocol": PROTOCOLS[protocol],
            **per_statistic["pair_median"],  # the protocol's own statistic, as recorded before
            "statistics": per_statistic,
            "s_per_arch": statistics.mean(seconds[runtime, protocol]),
        }
    print("| runtime | protocol | statistic | median diff | p90 diff | tau between passes | s/arch |")
    print("|---|---|---|---|---|---|---|")
    for runtime, per in figures.items():
        for protocol, f in per.items():
            for name, g in f["statistics"].items():
                print(f"| {runtime} | {protocol} | {name} | {g['median_rel_diff']:.2%} | {g['p90_rel_diff']:.2%} | "
                      f"{g['kendall_tau_between_passes']:.3f} | {f['s_per_arch']:.2f} |")  # fmt: skip
    record(
        "measure_noise",
        {"archs": args.archs, "config": args.config, "wall_s": time.perf_counter() - t0, "runtimes": figures},
        f".venv/bin/python benchmarks/measure_noise.py --archs {args.archs} --config {args.config}",
    )


if __name__ == "__main__":
    main()
