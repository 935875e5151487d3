"""Deployment targets side by side: throughput, overhead, repeatability, predictor
quality per target, rank agreement between targets, and what searching for the right
target is worth. Through real Ray, on the demo profile's network.

    .venv/bin/python benchmarks/targets.py [--archs 600] [--repeat-archs 50] [--demo-run runs/demo]
        [--protocol long --out runs/bench-targets-long]   # recorded as results/targets_long.json
        [--statistic p10s] [--builds 3]                    # ... as targets_long_p10s_b3.json

* every CPU runtime (torch eager, ONNX Runtime, OpenVINO; 1 thread, batch 1) measures
  the same --archs architectures, one target after the other, with 2 workers:
  archs/s, overhead share (1 - timed seconds / (wall x workers)) and the share of the
  task time spent exporting and compiling;
* repeatability: the first --repeat-archs architectures measured again in a second run
  directory; median |ratio_a / ratio_b - 1| of the reference-normalised latency;
* predictor: ``lanas fit`` on each target's rows; MAPE and Kendall tau of the shipped
  predictor and of every baseline on the same test split, and the paired-bootstrap
  interval of the MAPE difference to the best baseline (a tie when it holds 0);
* Kendall tau of the latency ratios between every pair of targets;
* specialisation (from a finished ``make demo`` run, --demo-run): on ONNX Runtime, the
  architecture searched for eager against the one searched for ONNX Runtime.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import shutil
import statistics
from pathlib import Path

from common import PROTOCOLS, record
from scipy import stats

from lanas.measure import STATISTICS
from lanas_pipeline import dataset as ds
from lanas_pipeline.config import load_config
from lanas_pipeline.fit.stage import run_fit
from lanas_pipeline.measure import run_measure
from lanas_pipeline.predictor_store import load_for
from lanas_pipeline.ray_env import init_ray
from lanas_pipeline.rows import dataset_dir
from lanas_pipeline.rundir import RunDir

TARGETS = [{"device": "cpu", "runtime": r, "batch_size": 1, "threads": 1} for r in ("torch", "onnxruntime", "openvino")]


def ratios(run: RunDir) -> dict[str, dict[str, float]]:
    """spec -> arch_id -> latency ratio (ok rows)."""
    by_hw = {hw: spec for spec, hw in run.hardware_ids().items()}
    out: dict[str, dict[str, float]] = {spec: {} for spec in by_hw.values()}
    for r in ds.read_table(dataset_dir(run)).to_pylist():
        if r["status"] == "ok":
            out[by_hw[r[ds.PARTITION]]][r["arch_id"]] = r["latency_ratio"]
    return out


def specialisation(demo_run: Path) -> dict | None:
    f = demo_run / "report" / "specialisation.csv"
    if not f.is_file():
        return None
    rows = list(csv.DictReader(f.open()))
    ort = [r for r in rows if r["deployed_on"] == "cpu-t1-onnxruntime-b1" and r["searched_for"] == "cpu-t1-torch-b1"]
    return {"source": str(f), "rows": ort, "all_rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--archs", type=int, default=600)
    ap.add_argument("--repeat-archs", type=int, default=50)
    ap.add_argument("--demo-run", default="runs/demo", help="a finished `make demo` run, for the specialisation gain")
    ap.add_argument("--out", default="runs/bench-targets", help="the benchmark's scratch folder (emptied first)")
    ap.add_argument("--protocol", choices=sorted(PROTOCOLS), help="measure with this protocol instead of the config's")
    ap.add_argument("--statistic", choices=STATISTICS, help="reduce the timings with this statistic (lanas.measure)")
    ap.add_argument("--builds", type=int, help="share the timed pairs over this many builds (measure.protocol.builds)")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)  # the benchmark's own scratch folder: every figure from a fresh measurement
    init_ray(num_cpus=2)
    overrides = {"name": "bench-targets", "measure.targets": TARGETS, "measure.num_archs": args.archs}
    if args.protocol:
        overrides["measure.protocol"] = PROTOCOLS[args.protocol]
    if args.statistic:
        overrides["measure.protocol.statistic"] = args.statistic
    if args.builds:
        overrides["measure.protocol.builds"] = args.builds
    cfg = load_config(args.config, overrides)
    run = RunDir.open(out / "main", cfg, overwrite=True)
    speed = {}
    for t in cfg.targets:
        s = run_measure(run, progress=False, target=t.spec, max_in_flight=2)
        rows = [r for r in ds.read_table(dataset_dir(run), run.hardware_id(t.spec)).to_pylist() if r["status"] == "ok"]
        prep = sum(r["export_s"] + r["compile_s"] for r in rows)
        speed[t.spec] = {
            "new_rows": s["new_rows"],
            "archs_per_s": s["archs_per_s"],
            "overhead_share": 1 - s["timed_s"] / (s["wall_s"] * 2) if s["new_rows"] else None,
            "export_compile_share_of_task_time": prep / s["task_s"] if s["new_rows"] else None,
            "median_latency_ms": s["targets"][t.spec]["latency_ms_median"],
            "median_export_compile_s": s["targets"][t.spec]["export_compile_s_median"],
        }
        print(
            f"{t.spec}: {s['archs_per_s']:.2f} archs/s, overhead {speed[t.spec]['overhead_share']}, "
            f"median {speed[t.spec]['median_latency_ms']:.3f} ms",
            flush=True,
        )
    again = RunDir.open(out / "repeat", cfg, overwrite=True)
    run_measure(again, num_archs=args.repeat_archs, progress=False)
    a, b = ratios(run), ratios(again)
    repeat = {}
    for spec in a:
        common = sorted(set(a[spec]) & set(b[spec]))
        diff = [abs(a[spec][i] / b[spec][i] - 1) for i in common]
        repeat[spec] = {
            "archs": len(common),
            "median_rel_diff": statistics.median(diff),
            "p90_rel_diff": statistics.quantiles(diff, n=10)[-1],
        }
    run_fit(run)
    quality = {}
    for t in cfg.targets:
        m = load_for(run, t, gate=False).meta
        quality[t.spec] = {
            "rows": m.rows,
            "predictor": {k: m.test[k] for k in ("mape", "kendall_tau", "within_10pct")},
            "baselines": {k: {"mape": v["mape"], "kendall_tau": v["kendall_tau"]} for k, v in m.baselines.items()},
            "versus_best_baseline": m.versus_best_baseline,
        }
    tau = {}
    for s1, s2 in itertools.combinations(a, 2):
        common = sorted(set(a[s1]) & set(a[s2]))
        tau[f"{s1} vs {s2}"] = {
            "archs": len(common),
            "kendall_tau": float(stats.kendalltau([a[s1][i] for i in common], [a[s2][i] for i in common]).statistic),
        }
    figures = {
        "archs": args.archs,
        "protocol": dataclasses.asdict(cfg.measure.protocol),
        "throughput": speed,
        "repeatability": repeat,
        "predictor": quality,
        "kendall_tau_between_targets": tau,
        "specialisation_demo": specialisation(Path(args.demo_run)),
        "targets": {
            "repeatability": "median <= 0.03",
            "predictor_mape": "<= 0.04 on every CPU target",
            "predictor_vs_best_baseline": "no worse beyond noise (bootstrap interval holds 0 or below)",
        },
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "specialisation_demo"}, indent=1))
    record(
        "targets"
        + "".join(f"_{v}" for v in (args.protocol, args.statistic) if v)
        + (f"_b{args.builds}" if args.builds else ""),
        figures,
        f"python benchmarks/targets.py --archs {args.archs} --repeat-archs {args.repeat_archs} "
        f"--config {args.config} --demo-run {args.demo_run} --out {args.out}"
        + (f" --protocol {args.protocol}" if args.protocol else "")
        + (f" --statistic {args.statistic}" if args.statistic else "")
        + (f" --builds {args.builds}" if args.builds else ""),
    )


if __name__ == "__main__":
    main()
