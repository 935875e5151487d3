"""Stage-1 throughput, overhead and repeatability on the demo profile, through real Ray.

    .venv/bin/python benchmarks/measure_throughput.py [--archs 40] [--rounds 3] [--repeat-archs 50]
    .venv/bin/python benchmarks/measure_throughput.py --compare-builds onnxruntime,openvino,torch [--archs 60]

* speed: rounds alternate 1 worker and 2 workers (side by side in one run, so drift
  hits both); each round measures --archs fresh architectures; median archs/s per
  worker count and the 2-worker speed-up are reported;
* overhead share: 1 - (seconds inside timed inference) / (wall seconds x workers);
* repeatability: the same --repeat-archs architectures measured twice, a round apart;
  median relative difference of the reference-normalised latency and of raw ms.

``--compare-builds RUNTIMES`` (recorded as ``measure_throughput_builds.json``) compares how a
network gets into its runtime (``measure.protocol.onnx_build``): per runtime, ``--blocks``
blocks of four rounds ABBA (traced, direct, direct, traced) on 2 workers, each measuring the
same --archs architectures from scratch; per path the median archs/s, the share of the task
time spent getting networks in (export + compile seconds / (wall x workers)), the median
export and compile seconds, and the repeatability of the latency ratio (the median, over
every pair of the path's rounds, of the median |relative difference|); across paths, the
median |direct / traced - 1| of each architecture's mean ratio. Eager torch
has one path: its rounds are the control (same code both ways).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import record

from lanas_pipeline import dataset as ds
from lanas_pipeline.config import load_config
from lanas_pipeline.measure import run_measure
from lanas_pipeline.ray_env import init_ray
from lanas_pipeline.rows import dataset_dir
from lanas_pipeline.rundir import RunDir

PATHS = ("traced", "direct", "direct", "traced")  # ABBA: drift hits both paths alike


def compare_builds(config: str, runtimes: list[str], archs: int, blocks: int = 1) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="lanas-bench-builds-"))
    targets = [{"device": "cpu", "runtime": r, "batch_size": 1, "threads": 1} for r in runtimes]
    out = {}
    for runtime in runtimes:
        rounds: dict[str, list[dict]] = {"traced": [], "direct": []}
        for i, path in enumerate(PATHS * blocks):
            cfg = load_config(
                config, {"seed": 300, "name": f"b{i}", "measure.targets": targets, "measure.protocol.onnx_build": path}
            )
            run = RunDir.open(tmp / f"{runtime}-{i}", cfg)
            spec = next(t.spec for t in cfg.targets if t.runtime == runtime)
            s = run_measure(run, num_archs=archs, progress=False, max_in_flight=2, target=spec)
            rows = [r for r in ds.read_table(dataset_dir(run)).to_pylist() if r["status"] == "ok"]
            prep = sum(r["export_s"] + r["compile_s"] for r in rows)
            rounds[path].append({
                "archs_per_s": s["archs_per_s"], "wall_s": s["wall_s"], "network_in_share": prep / (s["wall_s"] * 2),
                "export_s_median": statistics.median(r["export_s"] for r in rows),
                "compile_s_median": statistics.median(r["compile_s"] for r in rows),
                "build_paths": sorted({r["build_path"] for r in rows}),
                "ratios": {r["arch_id"]: r["latency_ratio"] for r in rows},
            })  # fmt: skip
            r = rounds[path][-1]
            print(f"{runtime} round {i + 1} ({path}): {r['archs_per_s']:.2f} archs/s, network in "
                  f"{r['network_in_share']:.0%} of task time, export {r['export_s_median']:.3f} s, "
                  f"compile {r['compile_s_median']:.3f} s, paths {r['build_paths']}", flush=True)  # fmt: skip
        out[runtime] = summarise_builds(rounds)
    return out


def summarise_builds(rounds: dict[str, list[dict]]) -> dict:
    def rel(a: dict, b: dict) -> list[float]:
        return [abs(a[k] / b[k] - 1) for k in sorted(set(a) & set(b))]

    def mean_ratio(rs: list[dict]) -> dict[str, float]:
        return {
            k: statistics.mean(r["ratios"][k] for r in rs) for k in set.intersection(*(set(r["ratios"]) for r in rs))
        }

    def repeatability(rs: list[dict]) -> float:
        """Median over every pair of the path's rounds of the median |relative difference|."""
        pairs = [(a, b) for i, a in enumerate(rs) for b in rs[i + 1 :]]
        return statistics.median(statistics.median(rel(a["ratios"], b["ratios"])) for a, b in pairs)

    per_path = {
        path: {
            "archs_per_s": statistics.median(r["archs_per_s"] for r in rs),
            "network_in_share": statistics.median(r["network_in_share"] for r in rs),
            "export_s_median": statistics.median(r["export_s_median"] for r in rs),
            "compile_s_median": statistics.median(r["compile_s_median"] for r in rs),
            "build_paths": sorted({p for r in rs for p in r["build_paths"]}),
            "repeatability_median_rel_diff": repeatability(rs),
            "rounds_archs_per_s": [r["archs_per_s"] for r in rs],
        }
        for path, rs in rounds.items()
    }
    return {
        **per_path,
        "speedup_direct_over_traced": per_path["direct"]["archs_per_s"] / per_path["traced"]["archs_per_s"],
        "latency_ratio_median_rel_diff_direct_vs_traced": statistics.median(
            rel(mean_ratio(rounds["direct"]), mean_ratio(rounds["traced"]))
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat-archs", type=int, default=50)
    ap.add_argument(
        "--target", default="cpu-t1-torch-b1", help="the target measured (benchmarks/targets.py covers all)"
    )
    ap.add_argument("--compare-builds", metavar="RUNTIMES", help="compare traced and direct ONNX builds (see above)")
    ap.add_argument("--blocks", type=int, default=1, help="with --compare-builds: ABBA blocks of 4 rounds per runtime")
    args = ap.parse_args()
    init_ray(num_cpus=2)
    if args.compare_builds:
        runtimes = args.compare_builds.split(",")
        figures = {
            "archs": args.archs,
            "blocks": args.blocks,
            "runtimes": compare_builds(args.config, runtimes, args.archs, args.blocks),
            "targets": {
                "onnxruntime": "network in <= 20 % of task time, archs/s >= 3x traced",
                "openvino": "export <= 0.02 s, archs/s >= 2x traced",
                "all": "latency ratio direct vs traced: median |difference| <= 2 %",
            },
        }
        record(
            "measure_throughput_builds",
            figures,
            f"python benchmarks/measure_throughput.py --compare-builds {args.compare_builds} --archs {args.archs} "
            f"--blocks {args.blocks} --config {args.config}",
        )
        return
    tmp = Path(tempfile.mkdtemp(prefix="lanas-bench-"))
    speed: dict[int, list[float]] = {1: [], 2: []}
    overhead: dict[int, list[float]] = {1: [], 2: []}
    seed = 100
    repeat_cfg = load_config(args.config, {"seed": 7, "name": "repeat"})
    first = RunDir.open(tmp / "repeat-a", repeat_cfg)
    run_measure(first, num_archs=args.repeat_archs, progress=False, target=args.target)
    for r in range(args.rounds):
        for workers in (1, 2):
            seed += 1
            cfg = load_config(args.config, {"seed": seed, "name": f"speed{seed}"})
            run = RunDir.open(tmp / f"speed-{seed}", cfg)
            s = run_measure(run, num_archs=args.archs, progress=False, max_in_flight=workers, target=args.target)
            speed[workers].append(s["archs_per_s"])
            overhead[workers].append(1 - s["timed_s"] / (s["wall_s"] * workers))
            print(
                f"round {r + 1}, {workers} worker(s): {s['archs_per_s']:.2f} archs/s, "
                f"overhead {overhead[workers][-1]:.1%}"
            )
    second = RunDir.open(tmp / "repeat-b", repeat_cfg)
    run_measure(second, num_archs=args.repeat_archs, progress=False, target=args.target)

    def by_arch(run: RunDir) -> dict[str, dict]:
        return {r["arch_id"]: r for r in ds.read_table(dataset_dir(run)).to_pylist() if r["status"] == "ok"}

    a, b = by_arch(first), by_arch(second)
    common_ids = sorted(set(a) & set(b))
    rel_ratio = [abs(a[i]["latency_ratio"] / b[i]["latency_ratio"] - 1) for i in common_ids]
    rel_raw = [abs(a[i]["latency_ms"] / b[i]["latency_ms"] - 1) for i in common_ids]

    def q(v):
        return statistics.quantiles(v, n=10)[-1]

    med = {w: statistics.median(v) for w, v in speed.items()}
    figures = {
        "archs_per_s": {"1_worker": med[1], "2_workers": med[2], "rounds": {str(k): v for k, v in speed.items()}},
        "speedup_2_workers": med[2] / med[1],
        "overhead_share": {"1_worker": statistics.median(overhead[1]), "2_workers": statistics.median(overhead[2])},
        "repeatability": {
            "archs": len(common_ids),
            "median_rel_diff_normalised": statistics.median(rel_ratio),
            "p90_rel_diff_normalised": q(rel_ratio),
            "median_rel_diff_raw_ms": statistics.median(rel_raw),
            "p90_rel_diff_raw_ms": q(rel_raw),
        },
        "targets": {"speedup_2_workers": ">= 1.7", "overhead_share": "<= 0.25", "repeatability": "<= 0.03"},
    }
    print(f"archs/s: 1 worker {med[1]:.2f}, 2 workers {med[2]:.2f} -> speed-up {med[2] / med[1]:.2f}x (target >= 1.7)")
    print(
        f"overhead share: 1 worker {figures['overhead_share']['1_worker']:.1%}, 2 workers "
        f"{figures['overhead_share']['2_workers']:.1%} (target <= 25 %)"
    )
    rep = figures["repeatability"]
    print(
        f"repeatability over {rep['archs']} archs: median {rep['median_rel_diff_normalised']:.2%} normalised "
        f"(p90 {rep['p90_rel_diff_normalised']:.2%}), raw ms {rep['median_rel_diff_raw_ms']:.2%} (target <= 3 %)"
    )
    record(
        "measure_throughput",
        figures,
        "python benchmarks/measure_throughput.py "
        f"--archs {args.archs} --rounds {args.rounds} --repeat-archs {args.repeat_archs} --config {args.config} "
        f"--target {args.target}",
    )


if __name__ == "__main__":
    main()
