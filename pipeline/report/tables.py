"""The report's CSV files: every candidate row and every budget."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..rundir import write_atomic

CSV_FIELDS = [
    "target",
    "name",
    "kind",
    "method",
    "searched_for",
    "lam",
    "budget_ms",
    "seed",
    "arch_id",
    "test_acc",
    "test_acc_std",
    "val_acc",
    "measured_latency_ms",
    "measured_raw_ms",
    "predicted_latency_ms",
    "prediction_error",
    "params",
    "on_front",
    "genotype",
]


BUDGET_FIELDS = [
    "target",
    "budget_ms",
    "predicted_ms",
    "measured_ms",
    "test_acc",
    "met",
    "share_of_budget",
    "name",
    "seed",
    "lam",
    "sweep_best",
    "sweep_best_acc",
    "sweep_best_ms",
]


def write_table(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_atomic(path, buf.getvalue())


def write_csv(path: Path, results: list[dict[str, Any]]) -> None:
    key = lambda r: (r["target"], r["kind"], r["lam"] if r["lam"] is not None else -1, r["name"])  # noqa: E731
    write_table(path, [{**r, "on_front": r.get("on_front", False)} for r in sorted(results, key=key)], CSV_FIELDS)
