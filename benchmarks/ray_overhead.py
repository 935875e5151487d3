"""What Ray's own waiting costs the fit and search stages, side by side in one run.

    .venv/bin/python benchmarks/ray_overhead.py [--config configs/targets-smoke.yaml] [--rounds 2]

* fit: `lanas fit` on copies of one measured run, with Ray Train polling its workers
  every 2 s (Ray's default) and every 0.5 s (the pipeline's default,
  ``pipeline.ray_env.TRAIN_POLL_INTERVAL_S``). Train V2 holds one report per worker
  until the next poll, so a fit of a few seconds per target waits to report.
* search: `lanas search` on copies of one fitted run, Tune reusing its trial actors
  (the pipeline's choice) or starting a fresh worker process per trial (Tune's default).

Conditions alternate ABBA within each round so that drift hits both; the medians of the
Ray Train job's seconds (as `lanas fit` prints them), of each command's wall seconds and
their ratios are recorded in results/ray_overhead.json. Small profiles show the overhead
most: it is per report and per trial, not per row.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import lanas, record, run

POLL = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
FIT = {"poll 2 s (Ray's default)": "2.0", "poll 0.5 s (pipeline default)": "0.5"}
SEARCH = {"fresh actor per trial (Tune's default)": False, "reused actors (pipeline default)": True}


def _child_search(run_dir: str, config: str, reuse: bool) -> None:
    """Run `lanas search` in this process with Tune's reuse_actors forced to ``reuse``."""
    from ray import tune

    from lanas_pipeline import cli

    class Forced(tune.TuneConfig):
        def __init__(self, *a, **kw):
            super().__init__(*a, **{**kw, "reuse_actors": reuse})

    tune.TuneConfig = Forced
    sys.exit(cli.main(["search", "--config", config, "--run-dir", run_dir, "--quiet"]))


def _copy(src: Path, dst: Path, stages: tuple[str, ...]) -> Path:
    """``dst``: the run ``src`` with only ``stages`` (and its config and manifest)."""
    later = {"fit", "search", "evaluate", "report"} - set(stages)
    shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if Path(d) == src and n in later])
    return dst


def _summary(times: dict[str, list[float]]) -> dict[str, dict[str, float | list[float]]]:
    return {k: {"median_s": statistics.median(v), "runs_s": [round(x, 2) for x in v]} for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/targets-smoke.yaml")
    ap.add_argument("--rounds", type=int, default=2, help="ABBA rounds per stage (each runs both conditions twice)")
    ap.add_argument("--child-search", nargs=2, metavar=("RUN_DIR", "REUSE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_search:
        return _child_search(args.child_search[0], args.config, args.child_search[1] == "1")
    py = [sys.executable]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        print(f"measuring and fitting {args.config} once ...", flush=True)
        lanas("measure", "--config", args.config, "--run-dir", str(base))
        lanas("fit", "--config", args.config, "--run-dir", str(base))
        job, wall = {k: [] for k in FIT}, {k: [] for k in FIT}
        order = [k for _ in range(args.rounds) for k in (*FIT, *reversed(FIT))]
        for i, name in enumerate(order):
            copy = _copy(base, Path(tmp) / f"fit{i}", ("measure",))
            cmd = [*py, "-m", "lanas_pipeline", "fit", "--config", args.config, "--run-dir", str(copy), "--quiet"]
            s, out = run(cmd, {POLL: FIT[name]})
            seconds = float(re.search(r"Ray Train job ([\d.]+) s", out).group(1))
            job[name].append(seconds)
            wall[name].append(s)
            print(f"fit    {name:40s} Ray Train job {seconds:5.1f} s, wall {s:5.1f} s", flush=True)
        search = {k: [] for k in SEARCH}
        order = [k for _ in range(args.rounds) for k in (*SEARCH, *reversed(SEARCH))]
        for i, name in enumerate(order):
            copy = _copy(base, Path(tmp) / f"search{i}", ("measure", "fit"))
            flag = "1" if SEARCH[name] else "0"
            s, _ = run([*py, __file__, "--config", args.config, "--child-search", str(copy), flag])
            search[name].append(s)
            print(f"search {name:40s} wall {s:5.1f} s", flush=True)
    (fa, fb), (sa, sb) = list(FIT), list(SEARCH)
    figures = {
        "config": args.config,
        "rounds": args.rounds,
        "fit_ray_train_job": _summary(job),
        "fit_wall": _summary(wall),
        "fit_job_ratio": statistics.median(job[fb]) / statistics.median(job[fa]),
        "fit_wall_ratio": statistics.median(wall[fb]) / statistics.median(wall[fa]),
        "search_wall": _summary(search),
        "search_wall_ratio": statistics.median(search[sb]) / statistics.median(search[sa]),
    }
    print(
        f"fit: Ray Train job x{figures['fit_job_ratio']:.2f}, wall x{figures['fit_wall_ratio']:.2f}; "
        f"search: wall x{figures['search_wall_ratio']:.2f} (pipeline default / Ray's default, medians)"
    )
    record("ray_overhead", figures, "python benchmarks/ray_overhead.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
