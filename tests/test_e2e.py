"""`lanas reproduce` end to end on the three-target smoke profile (torch eager, ONNX
Runtime, OpenVINO) through a real local Ray (slow).

One run's driver is SIGKILLed mid-sweep (Tune has recorded some trial finished, not all),
resumed with --resume and SIGKILLed again mid-evaluate, then re-run: completed stages and
the trials Tune recorded finished are not repeated, evaluate trains only what is missing,
the console holds our lines only, and the final artifacts hold their invariants: a partition, a predictor and a front
per target, the cross-target latency matrix, the specialisation table, and an ONNX export
of a searched architecture.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, lanas, run_cli

from lanas.genotype import Genotype
from lanas.pareto import dominates

pytestmark = pytest.mark.slow
CONFIG = "configs/targets-smoke.yaml"
SPECS = ["cpu-t1-torch-b1", "cpu-t1-onnxruntime-b1", "cpu-t1-openvino-b1"]
TRIALS = 1 + len(SPECS)  # lambda = 0 once, lambda = 2 per target


def _start(run, *flags):
    args = [sys.executable, "-m", "lanas_pipeline", "reproduce", "--config", CONFIG, "--run-dir", str(run), *flags]
    return subprocess.Popen(
        args, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _kill_when(proc, ready, timeout=400):
    """SIGKILL the driver and everything it started (its local Ray) once ``ready()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted:\n" + proc.stdout.read()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    out = proc.communicate()[0]
    return out


def _committed(sweep) -> set[str]:
    """The trials Tune's saved experiment state records as finished: what a resume keeps.
    (A trial that reported its last epoch after the last save is resumed from its last
    recorded checkpoint, so it may run that epoch again -- Tune's at-least-once.)"""
    states = sorted(sweep.glob("experiment_state-*.json"))
    try:
        trials = [json.loads(t[0]) for t in json.loads(states[-1].read_text())["trial_data"]] if states else []
    except (OSError, ValueError, KeyError):  # caught mid-copy: not ready yet
        return set()
    return {Path(t["relative_logdir"]).name for t in trials if t.get("status") == "TERMINATED"}


def _our_lines_only(out: str) -> list[str]:
    """The lines a user reads that are not ours (issue: Ray's logs, Tune's tables, warnings)."""
    ours = ("[", "         genotype ", "lanas: ")
    return [x for x in out.splitlines() if x.strip() and not x.startswith(ours)]


def test_reproduce_interrupted_in_search_and_in_evaluate_then_completed(tmp_path, capsys):
    run = tmp_path / "smoke"
    sweep = run / "search" / "tune" / "sweep"
    # 1. the driver killed mid-sweep, once Tune has recorded some trial finished and not all
    proc = _start(run, "--quiet")
    _kill_when(proc, lambda: 0 < len(_committed(sweep)) < TRIALS)
    assert (run / "measure" / "DONE.json").is_file() and (run / "fit" / "DONE.json").is_file()
    assert not (run / "search" / "DONE.json").exists()
    finished = {d: (sweep / d / "result.json").read_text() for d in _committed(sweep)}
    assert finished
    done_before = {s: (run / s / "DONE.json").stat().st_mtime_ns for s in ("measure", "fit")}
    rows_before = len(pd.read_parquet(run / "measure" / "dataset"))

    r = run_cli("reproduce", "--config", CONFIG, "--run-dir", str(run), "--quiet")
    assert r.returncode == 2 and "pass --resume" in r.stderr  # an interrupted sweep is not silently restarted
    # 2. resumed, then the driver killed again mid-evaluate, once some candidates are trained
    trained = run / "evaluate" / "trained.jsonl"
    proc = _start(run, "--quiet", "--resume")
    out = _kill_when(proc, lambda: trained.is_file() and len(trained.read_text().splitlines()) >= 1)
    assert "[reproduce] measure: complete, skipped" in out and "[reproduce] fit: complete, skipped" in out
    assert "[search] resuming the sweep" in out and "[reproduce] search: done" in out
    assert {d: (sweep / d / "result.json").read_text() for d in finished} == finished  # finished trials not redone
    assert {s: (run / s / "DONE.json").stat().st_mtime_ns for s in ("measure", "fit")} == done_before
    trained_lines = trained.read_text().splitlines()
    kept = [json.loads(x)["arch_id"] for x in trained_lines]

    # 3. a re-run trains only what is missing, then completes; the user reads our lines only
    r = run_cli("reproduce", "--config", CONFIG, "--run-dir", str(run))  # progress bars on (they go to stderr)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[reproduce] search: complete, skipped" in r.stdout
    assert f", {len(set(kept))} already trained" in r.stdout
    assert f"report: {run / 'report' / 'report.md'}" in r.stdout
    assert _our_lines_only(r.stdout) == [], r.stdout
    bars = [x for x in r.stderr.splitlines() if x.strip()]
    assert all(x.split(":")[0] in ("evaluate.train", "evaluate.measure") for x in bars), r.stderr
    ids = [json.loads(x)["arch_id"] for x in trained.read_text().splitlines()]
    assert ids[: len(kept)] == kept and len(ids) == len(set(ids))  # appended, none trained twice
    latency = pd.read_parquet(run / "evaluate" / "latency")
    assert latency.duplicated(["hardware", "arch_id"]).sum() == 0

    # artifacts and their invariants: one partition and one predictor per target
    df = pd.read_parquet(run / "measure" / "dataset")
    # 60 random + 3 published per target before the search; then the architectures it derived, on every target
    drawn = df[df["sampler"] != "derived"]
    assert len(drawn) == rows_before == 3 * 63 and drawn.groupby("hardware")["arch_id"].nunique().tolist() == [63] * 3
    derived = df[df["sampler"] == "derived"]
    searched = {json.loads(x)["arch_id"] for x in (run / "search" / "results.jsonl").read_text().splitlines()}
    assert set(derived["arch_id"]) <= searched and set(derived["round"]) <= {0}
    assert all(searched <= set(df.loc[df["hardware"] == hw, "arch_id"]) for hw in df["hardware"].unique())
    assert df.duplicated(["hardware", "arch_id"]).sum() == 0
    assert sorted(df["runtime"].unique()) == ["onnxruntime", "openvino", "torch"]
    manifest = json.loads((run / "manifest.json").read_text())
    ids = manifest["measure"]["targets"]
    assert sorted(ids) == sorted(SPECS) and set(df["hardware"]) == set(ids.values())
    side = (run / "fit" / "metrics.md").read_text()
    for spec in SPECS:
        meta = json.loads((run / "fit" / ids[spec] / "predictor.json").read_text())
        assert meta["hardware"] == ids[spec] and meta["test"]["mape"] > 0 and meta["target"]["runtime"] in spec
        assert f"| {spec} | `{ids[spec]}` |" in side
    # Tune's result.json here is not the record: it is the storage copy Tune syncs from its staging
    # folder now and then, so a SIGKILLed driver can leave it behind and a resumed sweep does not sync
    # a finished trial again (seen beside a busy core: a trial finished before the kill with an empty
    # result.json, a restored one with [2]); it never holds an epoch the trial did not run
    for trial_dir in sorted(sweep.glob("trial*")):
        epochs = [json.loads(x)["epoch"] for x in (trial_dir / "result.json").read_text().splitlines() if x.strip()]
        assert set(epochs) <= {1, 2}, (trial_dir.name, epochs)
    trials = [json.loads(x) for x in (run / "search" / "results.jsonl").read_text().splitlines()]
    # our record: every trial ran its two epochs, each once; a resumed one says from which
    assert all(t["epochs"] == 2 and 0 <= t["resumed_from_epoch"] < 2 for t in trials), trials
    assert sorted((t["lam"], t["target"] or "") for t in trials) == [(0.0, "")] + [(2.0, s) for s in sorted(SPECS)]
    assert (run / "search" / "tune" / "sweep").is_dir()  # Tune's own outputs stay available
    assert list((run / "search" / "tune" / "sweep").rglob("events.out.tfevents*"))  # TensorBoard's, by default
    for name in (
        "pareto.csv",
        "pareto.png",
        "report.md",
        "report.html",
        "latency_matrix.csv",
        "specialisation.csv",
        "specialisation.png",
    ):
        assert (run / "report" / name).is_file(), name
    page = (run / "report" / "report.html").read_text()  # self-contained: every figure inside it
    assert page.count("data:image/png;base64,") == 3 and "<figcaption>How to read it" in page

    # one front per target, over the architectures searched for it (and lambda = 0)
    with open(run / "report" / "pareto.csv") as fh:
        points = list(csv.DictReader(fh))
    assert len(points) == 3 * len({p["name"] for p in points})  # every candidate on every target
    for spec in SPECS:
        mine = [
            p for p in points if p["target"] == spec and p["kind"] == "searched" and p["searched_for"] in ("", spec)
        ]
        assert sorted(p["lam"] for p in mine) == ["0.0", "2.0"]
        for p in mine:
            Genotype.from_json(p["genotype"])  # valid
            assert float(p["measured_latency_ms"]) > 0
        front = [(float(p["test_acc"]), float(p["measured_latency_ms"])) for p in mine if p["on_front"] == "True"]
        others = [(float(p["test_acc"]), float(p["measured_latency_ms"])) for p in mine if p["on_front"] != "True"]
        assert front and not any(dominates(a, b) for a in front for b in front)
        assert all(any(dominates(f, o) for f in front) for o in others)
        foreign = [p for p in points if p["target"] == spec and p["searched_for"] not in ("", spec)]
        assert sorted(p["kind"] for p in foreign) == ["matched"] * 2 + ["searched"] * 2
        assert all(p["on_front"] == "False" for p in foreign)  # not on this target's front
        # baselines: the trivial no-convolution network, and a latency-matched random architecture per searched one
        assert [p["name"] for p in points if p["target"] == spec and p["kind"] == "baseline"] == ["trivial"]
        published = {p["name"]: p for p in points if p["target"] == spec and p["kind"] == "published"}
        assert sorted(published) == ["darts_v1", "darts_v2", "pc_darts"]
        assert all(float(p["measured_latency_ms"]) > 0 and 0 < float(p["test_acc"]) <= 1 for p in published.values())
        matched = [p for p in points if p["target"] == spec and p["kind"] == "matched" and p["searched_for"] == spec]
        assert [p["name"] for p in matched] == [f"matched-lam2-seed0-{spec}"]
        assert matched[0]["arch_id"] != next(p["arch_id"] for p in mine if p["lam"] == "2.0")

    # the cross-target matrix and the specialisation table
    with open(run / "report" / "latency_matrix.csv") as fh:
        matrix = list(csv.DictReader(fh))
    assert len(matrix) == len({p["name"] for p in points}) and all(float(m[s]) > 0 for m in matrix for s in SPECS)
    with open(run / "report" / "specialisation.csv") as fh:
        spec_rows = list(csv.DictReader(fh))
    assert sorted((r["deployed_on"], r["searched_for"]) for r in spec_rows) == sorted(
        (b, a) for b in SPECS for a in SPECS if a != b
    )
    cell = {(m["name"]): m for m in matrix}
    for r in spec_rows:  # the table is the matrix read off at the right cells
        own = cell[f"lam2-seed0-{r['deployed_on']}"][r["deployed_on"]]
        other = cell[f"lam2-seed0-{r['searched_for']}"][r["deployed_on"]]
        assert float(r["latency_lost"]) == pytest.approx(float(other) / float(own) - 1)
    report = (run / "report" / "report.md").read_text()
    assert all(f"## Target `{s}`" in report for s in SPECS)
    assert "Specialisation" in report and "Run manifest" in report and "git_sha" in report
    assert "| trivial | baseline |" in report and "Searched minus latency-matched random" in report
    assert "Hypervolume at equal set size" in report and "decided on validation accuracy" in report

    # a searched architecture exported for deployment runs in ONNX Runtime with the trained weights
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "net.onnx"
    r = lanas(capsys, "export", "--run-dir", run, "--candidate", "lam2-seed0-cpu-t1-onnxruntime-b1", "--onnx", out)
    assert r.returncode == 0 and "trained weights" in r.stdout, r.stderr
    logits = ort.InferenceSession(str(out)).run(None, {"x": np.zeros((3, 1, 8, 8), np.float32)})[0]
    assert logits.shape == (3, 10)
    r = lanas(capsys, "export", "--run-dir", run, "--candidate", "lam2-seed0-cpu-t1-onnxruntime-b1", "--onnx", out)
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr

    # a second run is all skips and changes nothing
    before = (run / "report" / "pareto.csv").read_text()
    r = lanas(capsys, "reproduce", "--config", CONFIG, "--run-dir", run, "--quiet")  # no stage starts Ray
    assert r.returncode == 0 and r.stdout.count("complete, skipped") == 5
    assert (run / "report" / "pareto.csv").read_text() == before
