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
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, record  # noqa: E402

from pipeline.compare import section  # noqa: E402


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
        from pipeline.report import run_report
        from pipeline.rundir import RunDir

        run_report(RunDir.existing(run))
        done = {s: json.loads((run / s / "DONE.json").read_text()) for s in ("measure", "fit", "search", "evaluate")}
        stages = [f"{s}: {d.get('summary', d).get('wall_s', float('nan')):.0f} s" for s, d in done.items()]
    else:
        if run.exists():
            shutil.rmtree(run)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pipeline", "reproduce", "--config", args.config, "--run-dir", str(run), "--quiet"]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"reproduce failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        stages = [line for line in r.stdout.splitlines() if line.startswith("[reproduce]") and "done in" in line]
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
        },  # fmt: skip
        f"python benchmarks/peers.py --config {args.config}" + (" --report-only" if args.report_only else ""),
    )


if __name__ == "__main__":
    main()
