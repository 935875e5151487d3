"""`lanas reproduce` on a NAS-Bench-201 run, end to end on small files in CIFAR-10's own
format: tables imported, a device the run never saw fitted from ten timings in a CSV,
a real Ray Tune sweep of the supernet, evaluation by lookup, and a report that draws the
true front of all 15,625 architectures beside the searched ones."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from conftest import NB201_SOURCES, lanas, nb201_config_text, write_cifar10

from lanas import nb201_tables

NEW = "2080ti_1"  # timed by "its owner" (the published figures of ten picks), then fitted from the sources


def _profile(tmp_path) -> str:
    text = nb201_config_text()
    root = write_cifar10(tmp_path / "cifar", n_train_per_batch=12, n_test=10)
    swaps = {
        "root: data/cifar10": f"root: {root}\n  verify_checksums: false",
        "devices: [pixel3, titanx_1, gold_6240]": f"devices: [titanx_1, {NEW}]",
        "lambdas: [0.0, 0.3, 1.0, 3.0]": "lambdas: [0.0, 5.0]\n  budgets_ms: {titanx_1: [6.0]}",
        "layers: 5                # cells": "layers: 1                # cells",
        "channels: 16\n    epochs: 50": "channels: 4\n    epochs: 2",
        "batch_size: 64": "batch_size: 16",
        "a_lr: 0.0003": "a_lr: 0.1",
        "resources: {num_cpus: 4, num_gpus: 1}": "resources: {num_cpus: 1}",
    }
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "nb201.yaml").write_text(text)
    return str(tmp_path / "nb201.yaml")


@pytest.mark.slow
def test_reproduce_searches_nb201_and_reports_the_true_front(ray_start, tmp_path, capsys):
    tables, cfg, run = nb201_tables.load(), _profile(tmp_path), tmp_path / "run"
    assert lanas(capsys, "import", "--config", cfg, "--run-dir", run).returncode == 0
    sources = ",".join(NB201_SOURCES)
    r = lanas(capsys, "select", "--run-dir", run, "--target", NEW, "--num-archs", 10, "--transfer-from", sources,
              "--out", tmp_path / "pick.jsonl")  # fmt: skip
    assert r.returncode == 0, r.stderr
    index = {a: i for i, a in enumerate(tables.arch_strs)}
    with open(tmp_path / "timed.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "latency_ms"])
        for line in (tmp_path / "pick.jsonl").read_text().splitlines():
            arch = json.loads(line)["arch"]
            w.writerow([arch, tables.latency_ms[NEW][index[arch]]])
    assert lanas(capsys, "import", "--run-dir", run, "--target", NEW, "--table", tmp_path / "timed.csv").returncode == 0
    assert lanas(capsys, "fit", "--run-dir", run, "--target", NEW, "--transfer-from", sources).returncode == 0

    r = lanas(capsys, "reproduce", "--config", cfg, "--run-dir", run, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "of the true front's" in r.stdout
    searched = [json.loads(x) for x in (run / "search" / "results.jsonl").read_text().splitlines()]
    assert sorted((s["device"], s["lam"], s["budget_ms"] or 0) for s in searched) == sorted(
        [(d, lam, 0) for d in ("titanx_1", NEW) for lam in (0.0, 5.0)] + [("titanx_1", 0.0, 6.0)]
    )
    rows = [json.loads(x) for x in (run / "evaluate" / "results.jsonl").read_text().splitlines()]
    acc = tables.accuracy["cifar10"]
    for row in rows:  # looked up, never trained or timed: the table's accuracy, the device's table or prediction
        assert row["accuracy"] == pytest.approx(acc[index[row["arch"]]]) and row["accuracy_source"] == "lookup"
        other = tables.accuracy["imagenet16-120"][index[row["arch"]]]
        assert row["accuracy_by_dataset"]["imagenet16-120"] == pytest.approx(other)
        assert row["latency_source"] == ("table" if row["device"] == "titanx_1" else "predicted")
        if row["device"] == "titanx_1":
            assert row["latency_ms"] == pytest.approx(tables.latency_ms["titanx_1"][index[row["arch"]]])
    mine = {r["lam"]: r["latency_ms"] for r in rows if r["device"] == r["searched_for"] == "titanx_1" and
            r["kind"] == "searched"}  # fmt: skip
    assert mine[5.0] < mine[0.0]  # a large λ finds a faster cell
    (budget,) = [r for r in rows if r["kind"] == "budget" and r["device"] == "titanx_1"]
    assert budget["budget_ms"] == 6.0 and budget["meets_budget"] == (budget["latency_ms"] <= 6.0)
    fronts = json.loads((run / "report" / "fronts.json").read_text())
    for device in ("titanx_1", NEW):
        front = np.array(fronts[device]["front"])
        assert 5 < len(front) < 200 and np.all(np.diff(front[:, 1]) >= 0) and np.all(np.diff(front[:, 0]) > 0)
        assert 0 < fronts[device]["hypervolume_share"] <= 1
    report = (run / "report" / "report.md").read_text()
    assert "True front" in report and "looked up" in report and (run / "report" / "pareto.png").stat().st_size > 0
    assert yaml.safe_load((run / "config.yaml").read_text())["search"]["devices"] == ["titanx_1", NEW]
    r = lanas(capsys, "show", run)
    assert r.returncode == 0 and f"{NEW}: the searched front's hypervolume" in r.stdout
    # a search that died after some trials: a re-run runs only the missing one, keeps the others' rows
    kept = (run / "search" / "results.jsonl").read_text().splitlines()
    (run / "search" / "results.jsonl").write_text("\n".join(kept[1:]) + "\n")
    (run / "search" / "DONE.json").unlink()
    r = lanas(capsys, "search", "--config", cfg, "--run-dir", run, "--quiet")
    assert r.returncode == 0 and f"1 NAS-Bench-201 searches to run ({len(kept) - 1} done)" in r.stdout, r.stderr
    again = (run / "search" / "results.jsonl").read_text().splitlines()
    assert len(again) == len(kept) and set(again[1:]) == set(kept[1:])
