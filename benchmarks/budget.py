"""Latency budgets on the demo: three budgets per CPU target, met by measurement?

    .venv/bin/python benchmarks/budget.py [--run-dir runs/bench-budget] [--from runs/bench-demo]

Starts from a finished demo run (a copy of ``--from``, else a fresh ``lanas reproduce
--config configs/demo.yaml``), picks per target three budgets at 20, 50 and 80 % of the
way from the fastest architecture known there (the corner architectures' prediction, or
a measured one) to the slowest one measured, runs them as one `lanas search
--budget-ms ...`, then `lanas evaluate` and `lanas report`. Records per budget: the
lambda updates and epochs the search needed (one trial each), predicted and measured
latency, whether the measured latency is <= T and >= 0.85 T, the accuracy, and the most
accurate lambda-sweep architecture that meets the same budget; and, for comparison, how
many budgets the lambda sweep alone lands in [0.85 T, T].
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from common import lanas, record

ROOT = Path(__file__).resolve().parents[1]
SPREAD = (0.2, 0.5, 0.8)  # where the budgets sit between the fastest known and the slowest measured latency
NOT_WASTEFUL = 0.85  # a met budget should use at least this share of it


def budgets_of(run: Path, config: str) -> dict[str, list[float]]:
    """Per target: budgets (ms, 3 significant digits) at SPREAD of the way from the fastest
    known architecture to the slowest measured one."""
    from lanas.budget import reachable
    from lanas_pipeline.config import load_config
    from lanas_pipeline.predictor_store import load_for
    from lanas_pipeline.rundir import RunDir
    from lanas_pipeline.search.penalties import measured_ratios

    cfg = load_config(ROOT / config)
    rd = RunDir(run, cfg)
    out = {}
    for t in cfg.targets:
        p = load_for(rd, t, gate=False)
        measured = measured_ratios(rd, t, p.meta.hardware)
        lo, hi = reachable(p.predict_ratio, cfg.space, measured)[0], max(measured)
        out[t.spec] = [float(f"{p.reference_ms * (lo + f * (hi - lo)):.3g}") for f in SPREAD]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", default="runs/bench-budget")
    ap.add_argument("--from", dest="source", default="runs/bench-demo", help="a finished demo run to start from")
    ap.add_argument("--config", default="configs/demo.yaml")
    args = ap.parse_args()
    run, source = ROOT / args.run_dir, ROOT / args.source
    if run.exists():
        shutil.rmtree(run)
    base = {"--config": args.config, "--run-dir": str(run)}
    flags = [x for kv in base.items() for x in kv]
    if (source / "report" / "DONE.json").is_file():
        shutil.copytree(source, run, ignore=shutil.ignore_patterns("tmp"))
        print(f"starting from a copy of {source}")
    else:
        print(f"reproduce (demo): {lanas('reproduce', *flags):.0f} s")
    budgets = budgets_of(run, args.config)
    print("budgets (ms):", json.dumps(budgets))
    budget_flags = [x for spec, ts in budgets.items() for t in ts for x in ("--budget-ms", f"{spec}={t:g}")]
    wall = {"search": lanas("search", *flags, *budget_flags)}
    wall["evaluate"] = lanas("evaluate", *flags)
    wall["report"] = lanas("report", *flags)
    print("wall (s):", {k: round(v) for k, v in wall.items()})

    search = {
        (r["target"], r["budget_ms"]): r
        for r in map(json.loads, (run / "search" / "results.jsonl").read_text().splitlines())
        if r.get("budget_ms") is not None
    }
    evaluated = [json.loads(x) for x in (run / "evaluate" / "results.jsonl").read_text().splitlines()]
    with open(run / "report" / "budgets.csv") as fh:
        table = list(csv.DictReader(fh))
    rows = []
    for b in table:
        spec, t = b["target"], float(b["budget_ms"])
        s = search[(spec, t)]
        measured = float(b["measured_ms"])
        sweep = [
            e
            for e in evaluated
            if e["kind"] == "searched" and e["target"] == spec and e["searched_for"] in (None, spec)
        ]
        row = {
            "target": spec,
            "budget_ms": t,
            "trials": 1,
            "lam_updates": s["lam_updates"],
            "epochs": s["epochs"],
            "lam_final": s["lam"],
            "predicted_ms": float(b["predicted_ms"]),
            "measured_ms": measured,
            "share_of_budget": measured / t,
            "met": measured <= t,
            "not_wasteful": measured >= NOT_WASTEFUL * t,
            "test_acc": float(b["test_acc"]),
            "sweep_best": b["sweep_best"] or None,
            "sweep_best_acc": float(b["sweep_best_acc"]) if b["sweep_best"] else None,
            "sweep_in_window": [
                e["name"]
                for e in sweep
                if e["measured_latency_ms"] is not None and NOT_WASTEFUL * t <= e["measured_latency_ms"] <= t
            ],
        }
        rows.append(row)
        versus = (
            f"{100 * (row['test_acc'] - row['sweep_best_acc']):+.1f} points vs {row['sweep_best']}"
            if row["sweep_best"]
            else "no sweep architecture meets it"
        )
        print(
            f"{spec} budget {t:g} ms: {s['lam_updates']} lambda updates over {s['epochs']} epochs; predicted "
            f"{row['predicted_ms']:.3f}, measured {measured:.3f} ms ({row['share_of_budget']:.0%} of T, "
            f"{'met' if row['met'] else 'MISSED'}{'' if row['not_wasteful'] else ', below 0.85 T'}); "
            f"test acc {100 * row['test_acc']:.1f} % ({versus}); lambda sweep in [0.85 T, T]: "
            f"{row['sweep_in_window'] or 'none'}"
        )
    summary = {
        "budgets": len(rows),
        "met": sum(r["met"] for r in rows),
        "met_and_not_wasteful": sum(r["met"] and r["not_wasteful"] for r in rows),
        "lambda_sweep_lands_in_window": sum(bool(r["sweep_in_window"]) for r in rows),
    }
    print("summary:", summary)
    command = f".venv/bin/python benchmarks/budget.py --run-dir {args.run_dir} --from {args.source}"
    record("budget", {"budgets_ms": budgets, "wall_s": wall, "summary": summary, "rows": rows}, command)


if __name__ == "__main__":
    main()
