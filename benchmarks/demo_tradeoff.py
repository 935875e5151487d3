"""The whole demo pipeline, timed, and the paper's headline claim on it.

    .venv/bin/python benchmarks/demo_tradeoff.py [--run-dir runs/bench-demo]

Runs `lanas reproduce --config configs/demo.yaml` in a fresh run directory (a fresh
local Ray), then records the wall time (target <= 600 s on 2 cores) and, from the
report, per target: the highest-lambda architecture's measured latency and accuracy
versus lambda = 0 (aim: >= 20 % lower latency with at most 1 point lower accuracy), the
hypervolumes and the prediction error on the derived architectures; and the
specialisation table (what searching for the other target costs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from common import record
from common import run as run_command

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", default="runs/bench-demo")
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--name", default="demo_tradeoff", help="record results/<name>.json")
    args = ap.parse_args()
    run = ROOT / args.run_dir
    if run.exists():
        shutil.rmtree(run)
    wall, out = run_command(
        [sys.executable, "-m", "lanas_pipeline", "reproduce", "--config", args.config, "--run-dir", str(run), "--quiet"]
    )
    stages = [line for line in out.splitlines() if line.startswith("[reproduce]") and "done in" in line]
    analysis = json.loads((run / "report" / "analysis.json").read_text())
    results = [json.loads(x) for x in (run / "evaluate" / "results.jsonl").read_text().splitlines()]
    print("\n".join(stages))
    print(f"reproduce on {args.config}: {wall:.0f} s (target <= 600 s)")
    per_target = {}
    for spec, a in analysis["targets"].items():
        searched = {
            x["lam"]: x
            for x in results
            if x["kind"] == "searched" and x["target"] == spec and x["searched_for"] in (None, spec)
        }
        print(f"target {spec}:")
        for lam, x in sorted(searched.items()):
            print(
                f"  lambda={lam:g}: test acc {x['test_acc']:.3f}, measured {x['measured_latency_ms']:.3f} ms, "
                f"predicted {x['predicted_latency_ms']:.3f} ms"
            )
        for h in a["headline"]:
            print(
                f"  headline (seed {h['seed']}, lambda={h['lam']:g} vs 0): latency {h['latency_change']:+.1%}, "
                f"accuracy {h['accuracy_change_points']:+.1f} points (aim: <= -20 %, >= -1 point)"
            )
        for kind in ("matched", "baseline", "random", "published"):
            for x in results:
                if x["kind"] == kind and x["target"] == spec and x["searched_for"] in (None, spec):
                    print(
                        f"  {kind} {x['name']}: test acc {x['test_acc']:.3f}, "
                        f"measured {x['measured_latency_ms']:.3f} ms"
                    )
        m = a["searched_minus_matched_acc"]
        if m:
            print(
                f"  searched - latency-matched random: {100 * m['mean']:+.2f} points [{100 * m['lo']:+.2f}, "
                f"{100 * m['hi']:+.2f}] over {m['n']} pairs"
            )
        per_target[spec] = {
            "headline": a["headline"],
            "hypervolume": a["hypervolume"],
            "hypervolume_equal_size": a["hypervolume_equal_size"],
            "dominance": a["dominance"],
            "searched_minus_matched_acc": m,
            "savings": a["savings"],
            "others": {
                x["name"]: {f: x[f] for f in ("kind", "test_acc", "val_acc", "measured_latency_ms")}
                for x in results
                if x["kind"] != "searched" and x["target"] == spec and x["searched_for"] in (None, spec)
            },
            "prediction_mape_derived": a["prediction_mape_derived"],
            "prediction_mape_all": a["prediction_mape_all"],
            "searched": {
                str(k): {f: v[f] for f in ("test_acc", "measured_latency_ms", "predicted_latency_ms")}
                for k, v in searched.items()
            },
        }
    for s in analysis["specialisation"]:
        print(
            f"  deployed on {s['deployed_on']}, searched for {s['searched_for']} (lambda={s['lam']:g}): "
            f"latency lost {s['latency_lost']:+.1%}"
        )
    kinds = {}
    for x in results:
        if x["target"] == results[0]["target"]:
            kinds.setdefault(x["kind"], []).append({"name": x["name"], "test_acc": x["test_acc"]})
    record(
        args.name,
        {
            "wall_s": wall,
            "stages": stages,
            "accuracy_by_kind": kinds,
            "targets": per_target,
            "specialisation": analysis["specialisation"],
            "aim": {"latency_change": "<= -0.20", "accuracy_change_points": ">= -1.0", "wall_s": "<= 600"},
        },
        f"python benchmarks/demo_tradeoff.py --config {args.config} --name {args.name}",
    )


if __name__ == "__main__":
    main()
