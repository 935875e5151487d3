"""A run's measured rows: where stage 1's latency dataset lives, and which of its rows
the predictors, the transfer and the staleness checks may use."""

from __future__ import annotations

import math
from pathlib import Path

from lanas.target import Target

from . import dataset as ds
from .records import LATENCY_RATIO, MeasuredRow
from .rundir import RunDir


def dataset_dir(run: RunDir) -> Path:
    return run.stage("measure") / "dataset"


def usable(ratio: float | None) -> bool:
    return ratio is not None and math.isfinite(ratio) and ratio > 0


def usable_rows(run: RunDir, target: Target, hardware: str, columns: list[str] | None = None) -> list[MeasuredRow]:
    """The rows stage 1 measured on ``target`` at this run's setting with a usable
    latency (ok, finite, > 0), one per architecture, by arch_id."""
    setting = run.config.setting(target).columns()
    read = None if columns is None else [*setting, "arch_id", *columns]
    rows = ds.read_table(dataset_dir(run), hardware, columns=read).to_pylist()
    ok = {r["arch_id"]: r for r in rows if r["status"] == "ok" and usable(r[LATENCY_RATIO])
          and all(r[c] == v for c, v in setting.items())}  # fmt: skip
    return [ok[a] for a in sorted(ok)]
