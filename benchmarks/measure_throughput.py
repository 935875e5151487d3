"""Stage-1 throughput, overhead and repeatability on the demo profile, through real Ray.

    .venv/bin/python benchmarks/measure_throughput.py [--archs 40] [--rounds 3] [--repeat-archs 50]

* speed: rounds alternate 1 worker and 2 workers (side by side in one run, so drift
  hits both); each round measures --archs fresh architectures; median archs/s per
  worker count and the 2-worker speed-up are reported;
* overhead share: 1 - (seconds inside timed inference) / (wall seconds x workers);
* repeatability: the same --repeat-archs architectures measured twice, a round apart;
  median relative difference of the reference-normalised latency and of raw ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402

from pipeline import dataset as ds  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.measure import dataset_dir, run_measure  # noqa: E402
from pipeline.ray_env import init_ray  # noqa: E402
from pipeline.rundir import RunDir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat-archs", type=int, default=50)
    ap.add_argument(
        "--target", default="cpu-t1-torch-b1", help="the target measured (benchmarks/targets.py covers all)"
    )
    args = ap.parse_args()
    init_ray(num_cpus=2)
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
