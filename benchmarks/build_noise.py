"""How much a network's latency ratio moves from one build of it to the next, against
how much it moves from one timing of the same build to the next.

    .venv/bin/python benchmarks/build_noise.py [--archs 16] [--rounds 4] [--config configs/demo.yaml]

For every CPU runtime, 2 worker processes side by side (as the pipeline's 2 measuring
tasks are on a 2-core machine) each take half of --archs uniform random architectures of
the config's network and, per architecture: build it once and time it --rounds times
against the same reference build (the demo protocol each time), then build it afresh
--rounds times (one export, new sessions / compiled models: ``lanas.runtimes.compile_builds``)
and time each build once. Recorded per runtime: the median over architectures of the
coefficient of variation of the ratio within one build and across builds. Where the
second is the larger, spreading the timed pairs over builds (``measure.protocol.builds``)
averages what re-timing one build cannot.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from pathlib import Path

from common import PROTOCOLS, cpu_meter, record

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ("torch", "onnxruntime", "openvino")


def _ratio(model, reference, settings, threads: int) -> float:
    from lanas.measure import paired_timing, time_block

    return paired_timing(*time_block(model, reference, settings, threads)).ratio


def _measure(job):
    """One worker's architectures: per architecture, the ratios of one build timed
    ``rounds`` times and of ``rounds`` builds timed once each."""
    config, runtime, genotypes, rounds = job
    from lanas.network import Network
    from lanas.runtimes import compile_builds

    meter = cpu_meter(config, runtime, PROTOCOLS["demo"])
    reference, threads, protocol = meter.references[0], meter.target.threads, meter.settings
    out = []
    for g in genotypes:
        net = Network(g, meter.macro)
        (once,) = compile_builds(net, meter.x, meter.target, 1)
        same = [_ratio(once, reference, protocol, threads) for _ in range(rounds)]
        fresh = [_ratio(b, reference, protocol, threads) for b in compile_builds(net, meter.x, meter.target, rounds)]
        out.append((same, fresh))
    return out


def main() -> None:
    from lanas.space import SearchSpace
    from lanas_pipeline.config import load_config

    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--config", default="configs/demo.yaml")
    args = ap.parse_args()
    genotypes = SearchSpace(load_config(ROOT / args.config).space.ops).sample_unique(args.archs, seed=4242)
    t0 = time.perf_counter()

    def cv(xs: list[float]) -> float:
        return statistics.pstdev(xs) / statistics.mean(xs)

    figures = {}
    with mp.get_context("spawn").Pool(2) as pool:
        for runtime in RUNTIMES:
            jobs = [(str(ROOT / args.config), runtime, genotypes[i::2], args.rounds) for i in range(2)]
            per_arch = [a for part in pool.map(_measure, jobs) for a in part]
            within = statistics.median(cv(same) for same, _ in per_arch)
            across = statistics.median(cv(fresh) for _, fresh in per_arch)
            figures[runtime] = {
                "cv_within_build": within,
                "cv_across_builds": across,
                "across_over_within": across / within,
            }
            print(f"| {runtime} | {within:.2%} | {across:.2%} | {across / within:.2f} |", flush=True)
    command = f".venv/bin/python benchmarks/build_noise.py --archs {args.archs} --rounds {args.rounds}"
    record(
        "build_noise",
        {"archs": args.archs, "rounds": args.rounds, "protocol": PROTOCOLS["demo"], "runtimes": figures,
         "wall_s": time.perf_counter() - t0},
        f"{command} --config {args.config}",
    )  # fmt: skip


if __name__ == "__main__":
    main()
