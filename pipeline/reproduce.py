"""``lanas reproduce``: measure -> fit -> search -> evaluate -> report from one config.

Completed stages (``<stage>/DONE.json``) are skipped, so an interrupted run continues
where it stopped; each stage itself resumes without duplicates. A completed stage whose
inputs changed since it ran (:mod:`pipeline.staleness`) runs again.
"""

from __future__ import annotations

import time
from pathlib import Path

from .config import RunConfig, load_config
from .measure import check_runtimes
from .ray_env import check_reachable, init_ray
from .records import MEASURED_MS, PREDICTED_MS, TEST_ACC
from .rundir import RunDir
from .stages import STAGES, Options
from .staleness import refresh


def reproduce(
    config: str | Path | RunConfig,
    run_dir: str | Path | None = None,
    address: str | None = None,
    overwrite: bool = False,
    options: Options | None = None,
) -> str:
    """Run every stage that is not done, in order; returns the report's path."""

    options = options or Options()
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    check_runtimes(cfg.targets)
    check_reachable(address)  # before anything is written
    run = RunDir.open(Path(run_dir or Path("runs") / cfg.name), cfg, overwrite=overwrite)
    t0 = time.perf_counter()
    print(f"[reproduce] run directory {run.path}", flush=True)
    for stage in STAGES:
        refresh(run, stage.name, lambda line: print(f"[reproduce] {line}", flush=True))  # re-run if inputs changed
        if run.is_done(stage.name):
            print(f"[reproduce] {stage.name}: complete, skipped", flush=True)
            continue
        if stage.needs_ray:
            init_ray(address, verbose=options.verbose)
        t = time.perf_counter()
        print(f"[reproduce] {stage.name}: starting", flush=True)
        stage.run(run, options)
        print(f"[reproduce] {stage.name}: done in {time.perf_counter() - t:.0f} s", flush=True)
    report = run.path / "report" / "report.md"
    if run.config.evaluate.accuracy == "train":  # a lookup evaluation's report stage prints its own summary
        print_summary(run)
    print(f"[reproduce] finished in {time.perf_counter() - t0:.0f} s; report: {report}", flush=True)
    return str(report)


def print_summary(run: RunDir) -> None:
    """Each searched architecture (lambda or budget) on the target it was searched for: test
    accuracy, measured and predicted latency, genotype."""
    rows = [
        r
        for r in run.stage_results("evaluate")
        if r["kind"] in ("searched", "budget") and r["searched_for"] in (None, r["target"])
    ]
    for r in sorted(rows, key=lambda r: (r["target"], r["kind"], r["seed"], r.get("budget_ms") or 0.0, r["lam"])):
        ms = r[MEASURED_MS]
        lat = "measurement failed" if ms is None else f"{ms:.3f} ms measured"
        if r["kind"] == "budget" and ms is not None:
            lat += f" ({'meets' if ms <= r['budget_ms'] else 'MISSES'} the {r['budget_ms']:g} ms budget)"
        print(
            f"[result] {r['target']}: {r['name']}: test acc {100 * r[TEST_ACC]:.1f} %, {lat}, "
            f"{r[PREDICTED_MS]:.3f} ms predicted\n         genotype {r['genotype']}",
            flush=True,
        )
