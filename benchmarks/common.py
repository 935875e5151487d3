"""Shared helpers of the benchmark scripts: where results go, how they are recorded."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
# measurement protocols (MeasureSettings fields) the benchmarks compare; "demo" is configs/demo.yaml's
PROTOCOLS = {
    "demo": {"warmup": 5, "repeats": 25, "min_time_s": 0.05},
    "long": {"warmup": 20, "repeats": 100, "min_time_s": 0.4},
    "builds3": {"warmup": 5, "repeats": 25, "min_time_s": 0.05, "builds": 3},  # demo's pairs over 3 builds
}


def t_half_width(d) -> float:
    """Half the width of the 95 % t-interval of the mean of ``d`` (paired differences over
    repeats); infinite for fewer than two."""
    import numpy as np
    from scipy import stats

    d = np.asarray(d, dtype=float)
    return float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")


def cpu_meter(config: str, runtime: str, protocol: dict | None = None):
    """A ``LatencyMeter`` of the config's network on one CPU runtime at 1 thread (this
    process's torch too), timing by ``protocol`` (MeasureSettings fields; default: the
    config's ``measure.protocol``)."""
    import torch

    from lanas.measure import LatencyMeter, MeasureSettings
    from lanas.target import Target
    from lanas_pipeline.config import load_config

    torch.set_num_threads(1)
    cfg = load_config(config)
    setting = cfg.setting(Target(runtime=runtime))
    settings = cfg.measure.protocol if protocol is None else MeasureSettings(**protocol)
    return LatencyMeter(setting.macro, setting.target, settings, setting.resolution)


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run a command from the repository root (``env`` added to this process's); exit with
    its output if it fails. Returns its wall time in seconds and its stdout."""
    import os

    t0 = time.perf_counter()
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0, r.stdout


def lanas(*args: str) -> float:
    """Run one ``lanas`` command quietly from the repository root (:func:`run`). Returns
    its wall time in seconds."""
    return run([sys.executable, "-m", "lanas_pipeline", *args, "--quiet"])[0]


def commit() -> str:
    """The checkout's commit, with ``+dirty`` when tracked files other than the recordings
    themselves (``benchmarks/results/``, which a benchmark writes) differ from it."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    code = ["git", "diff", "--quiet", "HEAD", "--", ".", ":(exclude)benchmarks/results"]
    dirty = subprocess.run(code, cwd=ROOT).returncode != 0
    return (head or "unknown") + ("+dirty" if dirty else "")


def record(name: str, figures: dict[str, Any], command: str) -> Path:
    """Write ``results/<name>.json`` with the figures, the command, the commit and the machine."""
    from lanas.runtimes import cpu_model

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": command,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit(),
        "machine": {"cpu": cpu_model(), "python": sys.version.split()[0], "host": platform.node()},
        **figures,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"recorded {out}")
    return out
