"""Devices that cannot join the cluster: timed tables in, predictions out.

A phone, a board or an accelerator nobody can attach to Ray is timed by its owner with
the vendor's tool. The workflow (``docs/usage.md``, "Devices outside the cluster"):

1. ``lanas select``: which K architectures to time -- diverse under the latencies the run
   already has on other devices (the *sources*; :func:`lanas.fewshot.select`);
2. ``lanas import``: the timed table (CSV or Parquet: an architecture column and
   ``latency_ms``, optional ``latency_p10_ms`` / ``latency_p90_ms``) becomes the dataset
   partition ``hardware=<name>`` with ``runtime: imported`` and the table's ``source``;
   a device the config does not list is added to the run's ``imported`` section;
3. ``lanas fit --transfer-from SRC[,SRC...]``: the device's latency as a linear map of the
   sources' log latencies (:func:`lanas.fewshot.fit`), its leave-one-out error over the K
   timings recorded in ``fit/<name>/crossdevice.json``;
4. ``lanas predict``: every architecture's predicted latency and an upper bound for
   latency budgets (:func:`lanas.fewshot.with_upper_bound`).

A source is any partition of the run's dataset (an imported device, or a measured
target by spec or hardware id); the candidates are the architectures every source has a
latency for (all 15,625 with NAS-Bench-201's published tables).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy.stats import spearmanr

from lanas import fewshot
from lanas.nb201_tables import Nb201Tables
from lanas.nb201_tables import load as load_nb201
from lanas.spaces import ArchError, ArchSpace, space_of

from . import dataset as ds
from .config import VENDORED, ImportedDevice
from .errors import PipelineError
from .records import PREDICTED_MS, MeasuredRow, TimedArch
from .rows import dataset_dir
from .rundir import RunDir, write_atomic, write_jsonl

ARCH_COLUMNS = ("arch", "arch_str", "genotype")  # the architecture column of a table, first found
RUNTIME = "imported"
MODEL_FILE = "crossdevice.json"


def read_table_file(path: str | Path) -> pa.Table:
    """A timed table as pyarrow reads it: ``.csv`` or ``.parquet``; refused in one line otherwise."""
    p = Path(path)
    if not p.is_file():
        raise PipelineError(f"table not found: {p}")
    try:
        if p.suffix == ".csv":
            return pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
        if p.suffix == ".parquet":
            return pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise PipelineError(f"unreadable table {p}: {str(exc).splitlines()[0]}") from None
    raise PipelineError(f"table {p}: expected a .csv or .parquet file")


def _column(table: pa.Table, name: str, where: str) -> list[Any]:
    try:
        return table.column(name).cast(pa.float64()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise PipelineError(f"{where}: column {name} must hold numbers of ms") from None


def _parsed(space: ArchSpace, text: str, memo: dict[str, tuple]) -> tuple:
    """(arch, arch_id, canonical text, encoding) of ``text``; ``memo`` keeps them across
    tables of one import (the vendored devices share their 15,625 architectures)."""
    if text not in memo:
        arch = space.parse(text)
        memo[text] = (arch, space.arch_id(arch), space.text(arch), space.encode(arch).tolist())
    return memo[text]


def timings(table: pa.Table, space: ArchSpace, where: str, memo: dict | None = None) -> dict[str, TimedArch]:
    """arch_id -> {arch, text, encoding, latency_ms, latency_p10_ms, latency_p90_ms} of a
    timed table, checked: an architecture of the run's space on every row, latencies finite
    and > 0, and an architecture listed twice only with the same values. Refusals name the row."""
    arch_col = next((c for c in ARCH_COLUMNS if c in table.column_names), None)
    if arch_col is None or "latency_ms" not in table.column_names:
        raise PipelineError(
            f"{where}: needs an architecture column ({' or '.join(ARCH_COLUMNS)}) and latency_ms; "
            f"has {', '.join(table.column_names)}"
        )
    cols = {c: _column(table, c, where) for c in ("latency_ms", "latency_p10_ms", "latency_p90_ms")
            if c in table.column_names}  # fmt: skip
    memo = {} if memo is None else memo
    out: dict[str, TimedArch] = {}
    for i, text in enumerate(table.column(arch_col).to_pylist()):
        row = f"{where} row {i + 1}"
        try:
            arch, key, canonical, encoding = _parsed(space, str(text), memo)
        except ArchError as exc:
            raise PipelineError(f"{row}: {exc} (this run's space is {space.name})") from None
        values = {c: v[i] for c, v in cols.items()}
        for c, v in values.items():
            if (v is not None or c == "latency_ms") and not (v is not None and math.isfinite(v) and v > 0):
                got = "nothing (an empty cell or NaN)" if v is None else v
                raise PipelineError(f"{row}: {c} must be a finite number of ms > 0, got {got}")
        if key in out and {c: out[key].get(c) for c in values} != values:
            raise PipelineError(f"{row}: {canonical} is listed twice with different latencies")
        out[key] = {"arch": arch, "text": canonical, "encoding": encoding, **values}
    if not out:
        raise PipelineError(f"{where}: no rows")
    return out


def vendored_table(tables: Nb201Tables, device: str) -> pa.Table:
    """One device of the vendored NAS-Bench-201 tables, as a timed table."""
    if device not in tables.latency_ms:
        raise PipelineError(f"{VENDORED}{device}: not a NAS-Bench-201 device; known: {', '.join(tables.devices)}")
    return pa.table({"arch": list(tables.arch_strs), "latency_ms": tables.latency_ms[device]})


def partition_rows(run: RunDir, hardware: str) -> dict[str, MeasuredRow]:
    """arch_id -> row of partition ``hardware`` with a usable latency (ok, finite, > 0)."""
    cols = ["arch_id", "genotype", "status", "latency_ms", "runtime", "source"]
    rows = ds.read_table(dataset_dir(run), hardware, columns=cols).to_pylist()
    return {r["arch_id"]: r for r in rows if r["status"] == "ok" and r["latency_ms"] and r["latency_ms"] > 0}


def _rows(run: RunDir, name: str, new: dict[str, TimedArch], space: ArchSpace, source: str) -> list[MeasuredRow]:
    cfg, macro = run.config, run.config.macro()
    fixed = {
        "layout_version": space.layout_version, "space_ops": ",".join(cfg.space.ops), "device": RUNTIME,
        "runtime": RUNTIME, "resolution": cfg.data.resolution, "in_channels": macro.in_channels,
        "channels": macro.channels, "layers": macro.layers, "stem_multiplier": macro.stem_multiplier,
        "device_name": name, "status": "ok", "measured_at": dt.datetime.now(dt.timezone.utc),
        "sampler": RUNTIME, "source": source,
    }  # fmt: skip
    out = []
    for key, t in new.items():
        values = {c: v for c, v in t.items() if c.startswith("latency_")}
        out.append({**fixed, "arch_id": key, "genotype": t["text"], "encoding": t["encoding"], **values})
    return out


def import_table(run: RunDir, device: ImportedDevice, table: pa.Table, where: str, memo: dict | None = None) -> int:
    """Add ``table``'s timings to partition ``device.name`` (rows it holds already, with the
    same latency, are skipped; another latency is refused) and ``device`` to the run's
    config. Returns the number of rows added. Nothing is written when a row is refused."""
    space = space_of(run.config.space)
    timed = timings(table, space, where, memo)
    if device.name in {t.spec for t in run.config.targets} | set(run.hardware_ids().values()):
        raise PipelineError(f"{device.name} is a measured target of this run; import under another name")
    have = partition_rows(run, device.name)
    for key, t in timed.items():
        if key in have and not math.isclose(have[key]["latency_ms"], t["latency_ms"], rel_tol=1e-9):
            raise PipelineError(
                f"{where}: {t['text']} has {have[key]['latency_ms']} ms in {device.name} already, "
                f"{t['latency_ms']} ms here; refusing to mix two timings"
            )
    new = {k: t for k, t in timed.items() if k not in have}
    if new:
        rows = _rows(run, device.name, new, space, device.source or where)
        ds.write_shard(dataset_dir(run), device.name, rows, run.path / "measure" / "_tmp")
    if run.config.imported_device(device.name) is None:
        run = RunDir(run.path, run.config.with_imported((device,)))
        run.save_config()
    return len(new)


def import_listed(run: RunDir) -> list[tuple[str, int]]:
    """Import every device of the config's ``imported`` list that has a table; (name, rows added)."""
    out, memo, nb201 = [], {}, None
    for device in run.config.imported:
        if not device.table:
            continue
        if device.table.startswith(VENDORED):
            nb201 = nb201 or load_nb201()
            table = vendored_table(nb201, device.table.removeprefix(VENDORED))
        else:
            table = read_table_file(device.table)
        out.append((device.name, import_table(run, device, table, device.table, memo)))
    return out


def _resolve(run: RunDir, name: str) -> str:
    """The dataset partition ``name`` means: an imported device, a hardware id or a target spec."""
    hw = run.hardware_ids().get(name, name)
    known = ds.hardware_partitions(dataset_dir(run))
    if hw not in known:
        raise PipelineError(f"{name!r} has no latencies in {run.path}; devices there: {', '.join(known) or 'none'}")
    return hw


def source_matrix(run: RunDir, sources: list[str]) -> tuple[list[str], list[str], np.ndarray]:
    """(arch ids, arch texts, ``[candidates, sources]`` ms) over the architectures every
    source has a latency for, in arch-id order."""
    if not sources:
        raise PipelineError("--transfer-from needs at least one source device")
    tables = [partition_rows(run, _resolve(run, s)) for s in sources]
    common = sorted(set.intersection(*(set(t) for t in tables)))
    if not common:
        raise PipelineError(f"the sources {', '.join(sources)} have no architecture in common")
    texts = [tables[0][k]["genotype"] for k in common]
    return common, texts, np.array([[t[k]["latency_ms"] for t in tables] for k in common])


def select(run: RunDir, target: str, k: int, sources: list[str], out: Path, seed: int) -> list[str]:
    """Pick ``k`` architectures for ``target`` to time (none it has timed already) and write
    them to ``out`` as JSON lines ``{"arch", "arch_id"}``; an existing file is refused."""
    if out.exists():
        raise PipelineError(f"{out} exists; refusing to overwrite it")
    if target in sources:
        raise PipelineError(f"{target} cannot be its own source")
    ids, texts, matrix = source_matrix(run, sources)
    timed = set(partition_rows(run, target)) if target in ds.hardware_partitions(dataset_dir(run)) else set()
    keep = [i for i, a in enumerate(ids) if a not in timed]
    if not 0 < k <= len(keep):
        raise PipelineError(f"--num-archs {k}: {len(keep)} candidates are left to pick from")
    picks = [keep[i] for i in fewshot.select(matrix[keep], k, seed)]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(out, [{"arch": texts[i], "arch_id": ids[i]} for i in picks])
    return [texts[i] for i in picks]


def _picks(run: RunDir, target: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    own = partition_rows(run, _resolve(run, target))
    index = {a: i for i, a in enumerate(ids)}
    picks = [index[a] for a in sorted(own) if a in index]
    if len(picks) < 3:
        raise PipelineError(
            f"{target} has {len(picks)} timed architectures that every source has too; a transfer needs 3 or more"
        )
    return np.array(picks), np.array([own[ids[i]]["latency_ms"] for i in picks])


def _leave_one_out(matrix: np.ndarray, picks: np.ndarray, timed: np.ndarray) -> np.ndarray:
    """Each pick's latency predicted by the fit on the other picks."""
    return np.array(
        [
            fewshot.fit(matrix, np.delete(picks, i), np.delete(timed, i)).predict(matrix[picks[i : i + 1]])[0]
            for i in range(len(picks))
        ]
    )


def fit_cross_device(run: RunDir, target: str, sources: list[str]) -> dict[str, Any]:
    """Fit ``target``'s latency from its timings and the sources' latencies; write and
    return ``fit/<target>/crossdevice.json``."""
    if target in sources:
        raise PipelineError(f"{target} cannot be its own source")
    ids, _, matrix = source_matrix(run, sources)
    picks, timed = _picks(run, target, ids)
    model = fewshot.fit(matrix, picks, timed)
    loo = _leave_one_out(matrix, picks, timed)
    record = {
        "target": target, "sources": list(sources), "space": run.config.space.name, "timed": len(picks),
        "candidates": len(ids), "picks": [ids[i] for i in picks], "timed_ms": timed.tolist(),
        "coef": model.coef.tolist(), "centre": model.centre.tolist(), "scale": model.scale.tolist(),
        "intercept": model.intercept, "alpha": model.alpha,
        "loo_mape": float(np.mean(np.abs(loo / timed - 1))),
        "loo_spearman": float(spearmanr(loo, timed).statistic) if np.ptp(timed) > 0 else None,
        "fitted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    where = run.stage("fit") / target
    where.mkdir(parents=True, exist_ok=True)
    write_atomic(where / MODEL_FILE, json.dumps(record, indent=1) + "\n")
    return record


def load_model(run: RunDir, target: str) -> dict[str, Any]:
    f = run.path / "fit" / target / MODEL_FILE
    if not f.is_file():
        raise PipelineError(f"{target} has no cross-device fit in {run.path}: run `lanas fit --target {target} "
                            "--transfer-from SRC[,SRC...]` first")  # fmt: skip
    return json.loads(f.read_text(encoding="utf-8"))


def read_archs(path: str | Path, space: ArchSpace) -> list[Any]:
    """Architectures of a JSON-lines file: per line an arch text (a JSON string), an object
    with ``arch`` (as ``lanas select`` writes) or a genotype object. Errors name the line."""
    p = Path(path)
    if not p.is_file():
        raise PipelineError(f"architectures file not found: {p}")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            item = item.get("arch", item) if isinstance(item, dict) else item
            out.append(space.parse(item if isinstance(item, str) else json.dumps(item)))
        except (ArchError, ValueError) as exc:
            raise PipelineError(f"{p}:{n}: {exc}") from None
    if not out:
        raise PipelineError(f"{p}: no architectures in file")
    return out


def predicted(run: RunDir, target: str) -> tuple[dict[str, int], np.ndarray, np.ndarray, dict[str, float]]:
    """``target``'s cross-device fit over its candidates: (arch_id -> index, predicted ms,
    upper-bound ms, the timed ms by arch_id)."""
    model = load_model(run, target)
    ids, _, matrix = source_matrix(run, model["sources"])
    if len(ids) != model["candidates"] or not np.allclose(np.log(matrix).mean(0), model["centre"], rtol=1e-9):
        raise PipelineError(f"the sources of {target}'s fit changed since it was fitted; run `lanas fit` again")
    index = {a: i for i, a in enumerate(ids)}
    picks = np.array([index[a] for a in model["picks"]])
    point, upper = fewshot.with_upper_bound(matrix, picks, np.array(model["timed_ms"]))
    return index, point, upper, dict(zip(model["picks"], model["timed_ms"]))


def predict(run: RunDir, target: str, archs_file: str | Path) -> list[dict[str, Any]]:
    """Per architecture of ``archs_file``: ``target``'s predicted latency and the upper bound
    a budget is checked against (and the timed latency where it was timed)."""
    space = space_of(run.config.space)
    index, point, upper, timed = predicted(run, target)
    out = []
    for arch in read_archs(archs_file, space):
        key = space.arch_id(arch)
        if key not in index:
            raise PipelineError(f"{space.text(arch)}: not every source of {target} has a latency for it")
        row = {"arch": space.text(arch), "arch_id": key, "target": target,
               PREDICTED_MS: round(float(point[index[key]]), 6),
               "upper_latency_ms": round(float(upper[index[key]]), 6)}  # fmt: skip
        out.append(row | ({"timed_latency_ms": timed[key]} if key in timed else {}))
    return out
