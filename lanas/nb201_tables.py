"""The vendored NAS-Bench-201 tables: published latencies of 21 device settings and the
200-epoch accuracies of all 15,625 architectures (``lanas/tables/nb201/README.md`` says
where they come from and under which licences). Read with pyarrow; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pyarrow.parquet as pq

from lanas.nb201 import Cell

# the phones timed in whole milliseconds: many ties, so rank correlations are capped near 0.9
WHOLE_MS_DEVICES = ("essential_ph_1", "samsung_a50", "samsung_s7")
ACCURACY_COLUMNS = {
    "cifar10": "cifar10_valid_acc",
    "cifar100": "cifar100_valid_acc",
    "imagenet16-120": "imagenet16_120_valid_acc",
}


@dataclass(frozen=True)
class Nb201Tables:
    arch_strs: tuple[str, ...]  # official index order
    latency_ms: dict[str, np.ndarray]  # device -> [15625] float64
    accuracy: dict[str, np.ndarray]  # dataset (ACCURACY_COLUMNS' keys) -> [15625] percent
    params_mb: np.ndarray

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(sorted(self.latency_ms))

    def cells(self) -> list[Cell]:
        return [Cell.from_arch_str(s) for s in self.arch_strs]

    def latency_matrix(self, devices: tuple[str, ...] | list[str]) -> np.ndarray:
        """``[15625, len(devices)]`` latencies in ms, columns in ``devices`` order."""
        return np.column_stack([self.latency_ms[d] for d in devices])


def _table(name: str):
    with resources.as_file(resources.files("lanas.tables").joinpath("nb201", name)) as path:
        return pq.read_table(path)


def load() -> Nb201Tables:
    lat, acc = _table("latency_ms.parquet"), _table("accuracy.parquet")
    archs = tuple(lat.column("arch_str").to_pylist())
    if tuple(acc.column("arch_str").to_pylist()) != archs or lat.column("index").to_pylist() != list(range(len(archs))):
        raise ValueError("the vendored NAS-Bench-201 tables disagree on the architectures' order")
    devices = [c for c in lat.column_names if c not in ("index", "arch_str")]
    return Nb201Tables(
        arch_strs=archs,
        latency_ms={d: lat.column(d).to_numpy().astype(np.float64) for d in devices},
        accuracy={k: acc.column(c).to_numpy().astype(np.float64) for k, c in ACCURACY_COLUMNS.items()},
        params_mb=acc.column("params_mb").to_numpy().astype(np.float64),
    )
