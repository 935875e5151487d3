"""Does what runs on the other core change a runtime's labels?

    .venv/bin/python benchmarks/measure_neighbour.py [--archs 40] [--config benchmarks/configs/heldout-long-b3.yaml]

Stage 1 hands the targets' chunks out in turn (``pipeline.measure.interleaved_chunks``),
so on a 2-core machine a compiled runtime is mostly timed while eager torch runs on the
other core. The held-out transfer run measured its three runtimes that way; OpenVINO
re-timed alone there (2 OpenVINO workers) came out less noisy. This benchmark asks the
question side by side: the same ``--archs`` architectures (uniform, the config's network
and measurement protocol, 1 thread) are timed on each compiled runtime under three
conditions, each twice, the passes of all conditions interleaved (ABCCBA per runtime, so
the machine's drift falls on all alike):

- ``same``: two workers of the runtime, each on half the architectures (a run with one
  target, as ``lanas measure --target``);
- ``beside_eager``: one worker of the runtime on all of them while another process times
  eager torch on the other core (a run whose targets take turns);
- ``alone``: one worker, the other core idle (half the throughput).

Recorded per (runtime, condition): the mean and median of ``|ratio_pass1 / ratio_pass2 - 1|``
(one timing's repeatability), Kendall tau between the passes, seconds per architecture;
the mean difference of the per-architecture repeatability to ``same``'s with a paired
bootstrap interval; and how the condition moves the labels themselves (Kendall tau and
median ratio between its mean labels and ``same``'s).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import statistics
import time
from pathlib import Path

from common import cpu_meter, record

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ("openvino", "onnxruntime")
CONDITIONS = ("same", "beside_eager", "alone")
NEIGHBOUR = "torch"


def _ratios(job) -> tuple[list[float], float]:
    """One worker: the latency ratios (the protocol's statistic) of its genotypes, and its seconds."""
    config, runtime, genotypes = job
    meter = cpu_meter(config, runtime)
    t0 = time.perf_counter()
    return [meter.measure(g).timing.ratio for g in genotypes], time.perf_counter() - t0


def _neighbour(config: str, genotypes, stop) -> None:
    """Time eager torch on ``genotypes``, round and round, until ``stop`` is set."""
    meter = cpu_meter(config, NEIGHBOUR)
    i = 0
    while not stop.is_set():
        meter.measure(genotypes[i % len(genotypes)])
        i += 1


def one_pass(ctx, config: str, runtime: str, condition: str, genotypes) -> tuple[list[float], float]:
    """The ratios of ``genotypes`` on ``runtime`` under ``condition``, and seconds per architecture."""
    if condition == "same":
        halves = [genotypes[0::2], genotypes[1::2]]
        with ctx.Pool(2) as pool:
            (a, ta), (b, tb) = pool.map(_ratios, [(config, runtime, h) for h in halves])
        ratios = [0.0] * len(genotypes)
        ratios[0::2], ratios[1::2] = a, b
        return ratios, (ta + tb) / len(genotypes)
    stop, neighbour = ctx.Event(), None
    if condition == "beside_eager":
        neighbour = ctx.Process(target=_neighbour, args=(config, genotypes[::-1], stop))
        neighbour.start()
    try:
        with ctx.Pool(1) as pool:
            ratios, seconds = pool.apply(_ratios, ((config, runtime, genotypes),))
    finally:
        stop.set()
        if neighbour is not None:
            neighbour.join()
    return ratios, seconds / len(genotypes)


def main() -> None:
    import numpy as np
    from scipy import stats

    from lanas.quality import paired_bootstrap
    from lanas.space import SearchSpace
    from lanas_pipeline.config import load_config

    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--config", default="benchmarks/configs/heldout-long-b3.yaml")
    ap.add_argument("--name", default="measure_neighbour")
    args = ap.parse_args()
    config = str(ROOT / args.config)
    cfg = load_config(config)
    genotypes = SearchSpace(cfg.space.ops).sample_unique(args.archs, seed=4243)
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    passes: dict[tuple[str, str], list[list[float]]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    for runtime in RUNTIMES:
        for condition in CONDITIONS + CONDITIONS[::-1]:  # ABCCBA: drift falls on all alike
            ratios, s = one_pass(ctx, config, runtime, condition, genotypes)
            passes.setdefault((runtime, condition), []).append(ratios)
            seconds.setdefault((runtime, condition), []).append(s)
            print(f"{runtime:12s} {condition:13s} pass {len(passes[runtime, condition])}: {s:.2f} s/arch "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip

    def rel_diff(a, b) -> np.ndarray:
        return np.abs(np.asarray(a) / np.asarray(b) - 1)

    figures: dict[str, dict] = {}
    for runtime in RUNTIMES:
        same = passes[runtime, "same"]
        base, same_mean = rel_diff(*same), np.mean(same, axis=0)
        for condition in CONDITIONS:
            first, second = passes[runtime, condition]
            diff, mean = rel_diff(first, second), np.mean([first, second], axis=0)
            figures.setdefault(runtime, {})[condition] = {
                "mean_rel_diff": float(diff.mean()),
                "median_rel_diff": float(np.median(diff)),
                "kendall_tau_between_passes": float(stats.kendalltau(first, second).statistic),
                "mean_rel_diff_vs_same": paired_bootstrap(diff, base),
                "kendall_tau_to_same": float(stats.kendalltau(mean, same_mean).statistic),
                "median_ratio_to_same": float(np.median(mean / same_mean)),
                "s_per_arch": statistics.mean(seconds[runtime, condition]),
                "passes": [first, second],
            }
    print("| runtime | condition | mean diff | median diff | tau between passes | vs same (mean diff) | "
          "tau to same | ratio to same | s/arch |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for runtime, per in figures.items():
        for condition, f in per.items():
            v = f["mean_rel_diff_vs_same"]
            cells = [
                runtime, condition, f"{f['mean_rel_diff']:.2%}", f"{f['median_rel_diff']:.2%}",
                f"{f['kendall_tau_between_passes']:.3f}", f"{v['mean']:+.2%} [{v['lo']:+.2%}, {v['hi']:+.2%}]",
                f"{f['kendall_tau_to_same']:.3f}", f"{f['median_ratio_to_same']:.3f}", f"{f['s_per_arch']:.2f}",
            ]  # fmt: skip
            print("| " + " | ".join(cells) + " |")
    record(
        args.name,
        {
            "archs": args.archs,
            "config": args.config,
            "protocol": dataclasses.asdict(cfg.measure.protocol),
            "wall_s": time.perf_counter() - t0,
            "runtimes": figures,
        },
        f".venv/bin/python benchmarks/measure_neighbour.py --archs {args.archs} --config {args.config}"
        f" --name {args.name}",
    )


if __name__ == "__main__":
    main()
