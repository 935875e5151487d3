"""The report's CSV files: every candidate row and every budget."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..records import MEASURED_MS, PREDICTED_MS, TEST_ACC, EvaluatedRow
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
    TEST_ACC,
    "test_acc_std",
    "val_acc",
    MEASURED_MS,
    "measured_raw_ms",
    PREDICTED_MS,
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
    TEST_ACC,
    "met",
    "share_of_budget",
    "name",
    "seed",
    "lam",
    "sweep_best",
    "sweep_best_acc",
    "sweep_best_ms",
]


def write_table(path: Path, rows: Sequence[Mapping[str, object]], fields: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_atomic(path, buf.getvalue())


def write_csv(path: Path, results: list[EvaluatedRow]) -> None:
    key = lambda r: (r["target"], r["kind"], r["lam"] if r["lam"] is not None else -1, r["name"])  # noqa: E731
    write_table(path, [{**r, "on_front": r.get("on_front", False)} for r in sorted(results, key=key)], CSV_FIELDS)
