"""LA-DNAS against its peers on the same budget: lut, flops and random search, with
search seeds, training seeds and intervals, on every CPU target of the peers profile.

    .venv/bin/python benchmarks/peers.py [--config configs/peers.yaml] [--run-dir runs/bench-peers] [--report-only]

Runs ``lanas reproduce`` on the profile in a fresh run directory (``--report-only``:
re-makes the report of the finished run there) and records, per target, the method table of the report (hypervolume
with its 95 % bootstrap interval over search seeds, best accuracy, latency saved versus
lambda = 0 at matched accuracy with its interval, search wall time) and LA-DNAS's
verdict against each peer, in ``results/peers.json`` and ``results/peers.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, ROOT, record
from common import run as run_command

from lanas.encoding import encode_genotype
from lanas.genotype import Genotype
from lanas_pipeline.compare import section
from lanas_pipeline.predictor_store import load_all
from lanas_pipeline.rundir import RunDir, read_jsonl


def random_search_diagnosis(run: Path) -> list[dict]:
    """Per random trial (seed): how many candidates its time bought, and why its picks do or
    do not move with lambda: the spread of the candidates' proxy validation CE against the
    largest change lambda * latency term can make (the term from LA-DNAS's predictor of
    the first target, over the same candidates)."""
    rd = RunDir.existing(run)
    cfg, stored = rd.config, load_all(rd, gate=False)
    predictor = stored[cfg.targets[0].spec].model.eval()
    rows = [r for r in read_jsonl(run / "search" / "results.jsonl") if r.get("method") == "random"]
    out = []
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        trial = Path(mine[0]["trial_path"])
        scored = json.loads((sorted(trial.glob("checkpoint_*"))[-1] / "random_scored.json").read_text())
        x = torch.stack([encode_genotype(Genotype.from_json(c["genotype"], cfg.space.ops), cfg.space) for c in scored])
        with torch.no_grad():
            term = predictor.latency_term(x)
        ce = [c["val_ce"] for c in scored]
        out.append({
            "seed": seed, "candidates": len(scored), "budget_s": mine[0]["budget_s"], "proxy_s": mine[0]["proxy_s"],
            "val_ce_min": min(ce), "val_ce_max": max(ce), "val_ce_std": float(np.std(ce, ddof=1)),
            "latency_term_min": float(term.min()), "latency_term_max": float(term.max()),
            "max_lambda": max(cfg.search.lambdas), "distinct_picks": len({r["arch_id"] for r in mine}),
        })  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/peers.yaml")
    ap.add_argument("--run-dir", default="runs/bench-peers")
    ap.add_argument("--report-only", action="store_true", help="re-make the report of the finished run there")
    args = ap.parse_args()
    run = ROOT / args.run_dir
    stages: list[str] = []
    wall = None
    if args.report_only:
        from lanas_pipeline.report.stage import run_report

        run_report(RunDir.existing(run))
        done = {s: json.loads((run / s / "DONE.json").read_text()) for s in ("measure", "fit", "search", "evaluate")}
        stages = [f"{s}: {d.get('summary', d).get('wall_s', float('nan')):.0f} s" for s, d in done.items()]
    else:
        if run.exists():
            shutil.rmtree(run)
        wall, out = run_command(
            [
                sys.executable,
                "-m",
                "lanas_pipeline",
                "reproduce",
                "--config",
                args.config,
                "--run-dir",
                str(run),
                "--quiet",
            ]
        )
        stages = [line for line in out.splitlines() if line.startswith("[reproduce]") and "done in" in line]
    print("\n".join(stages))
    analysis = json.loads((run / "report" / "analysis.json").read_text())
    lines = [
        "# LA-DNAS against its peers",
        "",
        f"`python benchmarks/peers.py --config {args.config}` ({'; '.join(stages)}). The run's report has the "
        "same tables and `methods.png`.",
        "",
    ]
    for spec, c in analysis["methods"].items():
        lines += section(spec, c, analysis["task_spread"].get(spec))
    text = "\n".join(lines)
    print(text)
    (RESULTS / "peers.md").write_text(text + "\n")
    record(
        "peers",
        {
            "config": args.config,
            "wall_s": wall,
            "stages": stages,
            "methods": analysis["methods"],
            "task_spread": analysis["task_spread"],
            "random_search": random_search_diagnosis(run),
        },  # fmt: skip
        f"python benchmarks/peers.py --config {args.config}" + (" --report-only" if args.report_only else ""),
    )


if __name__ == "__main__":
    main()
