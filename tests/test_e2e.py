"""`lanas reproduce` end to end on the smoke profile through a real local Ray (slow).

One run is interrupted once the search stage has started, then resumed with --resume:
the completed stages are skipped (not repeated) and the final artifacts hold their
invariants.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, run_cli
from lanas.genotype import Genotype
from lanas.pareto import dominates

pytestmark = pytest.mark.slow


def _start(run):
    args = [sys.executable, "-m", "pipeline", "reproduce", "--config", "configs/smoke.yaml", "--run-dir", str(run), "--quiet"]
    return subprocess.Popen(args, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_reproduce_interrupted_then_resumed(tmp_path):
    run = tmp_path / "smoke"
    proc = _start(run)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and not (run / "search" / "tune").exists():
        time.sleep(0.5)
    time.sleep(3)  # let the sweep get going, then kill everything
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (run / "measure" / "DONE.json").is_file() and (run / "fit" / "DONE.json").is_file()
    assert not (run / "search" / "DONE.json").exists()
    done_before = {s: (run / s / "DONE.json").stat().st_mtime_ns for s in ("measure", "fit")}
    rows_before = len(pd.read_parquet(run / "measure" / "dataset"))

    r = run_cli("reproduce", "--config", "configs/smoke.yaml", "--run-dir", str(run), "--quiet")
    assert r.returncode == 2 and "pass --resume" in r.stderr  # an interrupted sweep is not silently restarted
    r = run_cli("reproduce", "--config", "configs/smoke.yaml", "--run-dir", str(run), "--quiet", "--resume")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[reproduce] measure: complete, skipped" in r.stdout and "[reproduce] fit: complete, skipped" in r.stdout
    assert {s: (run / s / "DONE.json").stat().st_mtime_ns for s in ("measure", "fit")} == done_before
    assert f"report: {run / 'report' / 'report.md'}" in r.stdout

    # artifacts and their invariants
    df = pd.read_parquet(run / "measure" / "dataset")
    assert len(df) == rows_before == 60 and df["arch_id"].is_unique
    assert (run / "fit" / "predictor.pt").is_file() and json.loads((run / "fit" / "predictor.json").read_text())["test"]
    trials = [json.loads(x) for x in (run / "search" / "results.jsonl").read_text().splitlines()]
    assert sorted(t["lam"] for t in trials) == [0.0, 2.0]
    assert (run / "search" / "tune" / "sweep").is_dir()  # Tune's own outputs stay available
    for name in ("pareto.csv", "pareto.png", "report.md"):
        assert (run / "report" / name).is_file(), name
    with open(run / "report" / "pareto.csv") as fh:
        points = list(csv.DictReader(fh))
    searched = [p for p in points if p["kind"] == "searched"]
    assert len(searched) == 2
    for p in searched:
        Genotype.from_json(p["genotype"])  # valid
        assert float(p["measured_latency_ms"]) > 0
    front = [(float(p["test_acc"]), float(p["measured_latency_ms"])) for p in searched if p["on_front"] == "True"]
    assert front and not any(dominates(a, b) for a in front for b in front)
    others = [(float(p["test_acc"]), float(p["measured_latency_ms"])) for p in searched if p["on_front"] != "True"]
    assert all(any(dominates(f, o) for f in front) for o in others)
    report = (run / "report" / "report.md").read_text()
    assert "Hypervolume" in report and "Run manifest" in report and "git_sha" in report

    # a second run is all skips and changes nothing
    before = (run / "report" / "pareto.csv").read_text()
    r = run_cli("reproduce", "--config", "configs/smoke.yaml", "--run-dir", str(run), "--quiet")
    assert r.returncode == 0 and r.stdout.count("complete, skipped") == 5
    assert (run / "report" / "pareto.csv").read_text() == before


def test_search_bad_inputs(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text((ROOT / "configs" / "smoke.yaml").read_text().replace("lambdas: [0.0, 2.0]", "lambdas: [0.0, -2.0]"))
    r = run_cli("search", "--config", str(bad), "--run-dir", str(tmp_path / "r"))
    assert r.returncode == 2 and "lambdas must be finite numbers >= 0" in r.stderr
    r = run_cli("search", "--config", "configs/smoke.yaml", "--run-dir", str(tmp_path / "r2"))
    assert r.returncode == 2 and "no fitted predictor" in r.stderr
