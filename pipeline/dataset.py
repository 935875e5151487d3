"""The latency dataset: Parquet shards, hive-partitioned by ``hardware``.

    <run>/measure/dataset/hardware=<id>/part-<time>-<uuid>.parquet

One row per (architecture, hardware, measurement setting). Shards are written to a
temporary file outside the dataset and renamed into place, so readers never see a
partial file and a crash loses at most the shard being written. Readable without this
project: ``pandas.read_parquet(dir)``, ``pyarrow.dataset.dataset(dir, partitioning=
"hive")``, ``ray.data.read_parquet(dir)``.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from .errors import PipelineError
from .records import LATENCY_RATIO, SETTING_COLUMNS, MeasuredRow

PARTITION = "hardware"

# columns stored in every shard (``hardware`` lives in the partition path)
FILE_SCHEMA = pa.schema(
    [
        ("arch_id", pa.string()),
        ("genotype", pa.string()),  # canonical genotype JSON
        ("encoding", pa.list_(pa.float32())),  # lanas.encoding layout (see layout_version)
        ("layout_version", pa.int32()),
        ("space_ops", pa.string()),  # comma-separated op list of the encoding
        ("device", pa.string()),  # the target: cpu | cuda ...
        ("runtime", pa.string()),  # ... torch | onnxruntime | openvino ...
        ("dtype", pa.string()),
        ("batch_size", pa.int32()),
        ("threads", pa.int32()),
        ("resolution", pa.int32()),  # input height = width (from the dataset)
        ("in_channels", pa.int32()),  # the deployed network's macro
        ("channels", pa.int32()),
        ("layers", pa.int32()),
        ("stem_multiplier", pa.int32()),
        ("device_name", pa.string()),  # CPU model or CUDA device name
        ("runtime_version", pa.string()),
        ("status", pa.string()),  # "ok" or "failed"
        ("error", pa.string()),  # why it failed (null when ok)
        ("latency_ms", pa.float64()),  # median of the timed runs (null when failed)
        ("latency_p10_ms", pa.float64()),
        ("latency_p90_ms", pa.float64()),
        ("ref_latency_ms", pa.float64()),  # the interleaved reference network's median
        (LATENCY_RATIO, pa.float64()),  # latency_ms / ref_latency_ms: what the predictor fits
        ("latency_ratio_p10", pa.float64()),
        ("latency_ratio_p90", pa.float64()),
        ("repeats", pa.int32()),
        ("warmup", pa.int32()),
        ("export_s", pa.float64()),  # seconds to export this architecture to ONNX (0 for eager); not latency
        ("compile_s", pa.float64()),  # seconds to build its runtime session / compiled model; not latency
        ("torch_version", pa.string()),
        ("measured_at", pa.timestamp("us", tz="UTC")),
        ("seed", pa.int64()),
        ("node", pa.string()),  # host:Ray node id the row was measured on
        # where the architecture came from: uniform | coverage (random samplers, split train/test by arch_id),
        # published (a held-out probe, never trained on), derived (a search round's result), genotypes (a file),
        # diverse (picked for a transfer), evaluate (stage 4); null in shards written before the column existed
        ("sampler", pa.string()),
        ("round", pa.int32()),  # the closed-loop search round that derived the architecture (null otherwise)
        # how the network got into its runtime: eager (torch), direct (ONNX written from the modules,
        # lanas.onnx_graph) or traced (the TorchScript exporter); null in shards written before the column existed
        ("build_path", pa.string()),
        # rows of an imported device (runtime "imported", sampler "imported"): who timed the table and how
        ("source", pa.string()),
    ]
)
# columns added after the first release: a shard without them is read with nulls ("uniform", no round)
OPTIONAL_COLUMNS = ("sampler", "round", "build_path", "source")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))


def check_dataset(root: Path) -> list[Path]:
    """Every file under ``root`` must be a readable Parquet shard with our schema.
    Returns the shard paths; raises PipelineError naming the first bad file."""
    files = _files(root) if root.exists() else []
    for f in files:
        if f.suffix != ".parquet" or not f.parent.name.startswith(f"{PARTITION}="):
            raise PipelineError(
                f"foreign file in the latency dataset: {f} (not a hardware=<id>/*.parquet shard); move it away"
            )
        try:
            schema = pq.read_schema(f)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            raise PipelineError(
                f"corrupt Parquet file in the latency dataset: {f} ({str(exc).splitlines()[0]})"
            ) from None
        missing = [fld.name for fld in FILE_SCHEMA if fld.name not in schema.names + list(OPTIONAL_COLUMNS)]
        wrong = [
            fld.name
            for fld in FILE_SCHEMA
            if fld.name in schema.names and not schema.field(fld.name).type.equals(fld.type)
        ]
        if missing or wrong:
            what = f"missing columns {missing}" if missing else f"columns of another type {wrong}"
            raise PipelineError(f"foreign schema in the latency dataset: {f} ({what})")
    return files


def write_shard(root: Path, hardware: str, rows: list[MeasuredRow], tmp_dir: Path) -> Path:
    """Write ``rows`` as one shard of partition ``hardware``, atomically."""
    table = pa.Table.from_pylist(rows, schema=FILE_SCHEMA)
    part = root / f"{PARTITION}={hardware}"
    part.mkdir(parents=True, exist_ok=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = tmp_dir / name
    pq.write_table(table, tmp)
    os.replace(tmp, part / name)
    return part / name


def clear_partial(tmp_dir: Path) -> int:
    """Delete the shards a killed writer left half-written in ``tmp_dir`` (never read: a
    shard enters the dataset only by an atomic rename); returns how many."""
    left = list(tmp_dir.glob("*.parquet")) if tmp_dir.is_dir() else []
    for f in left:
        f.unlink(missing_ok=True)
    return len(left)


def read_table(root: Path, hardware: str | None = None, columns: Iterable[str] | None = None) -> pa.Table:
    """The dataset (validated), optionally one hardware partition only."""
    files = check_dataset(root)
    if not files:
        return pa.Table.from_pylist([], schema=FILE_SCHEMA.append(pa.field(PARTITION, pa.string())))
    ds = pads.dataset(
        [str(f) for f in files],
        schema=FILE_SCHEMA.append(pa.field(PARTITION, pa.string())),  # older shards: optional columns as nulls
        format="parquet",
        partitioning=pads.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive"),
        partition_base_dir=str(root),
    )
    flt = pads.field(PARTITION) == hardware if hardware is not None else None
    return ds.to_table(columns=list(columns) if columns else None, filter=flt)


def sampler_of(row: MeasuredRow) -> str:
    """A row's sampler (rows written before the column existed were uniform samples)."""
    return row.get("sampler") or "uniform"


def setting_of(row: MeasuredRow) -> tuple:
    return tuple(row[c] for c in SETTING_COLUMNS)


def measured_keys(root: Path) -> set[tuple]:
    """``(hardware, setting..., arch_id)`` of every row already in the dataset (ok or failed)."""
    t = read_table(root, columns=["arch_id", PARTITION, *SETTING_COLUMNS])
    return {(r[PARTITION], *setting_of(r), r["arch_id"]) for r in t.to_pylist()}


def hardware_partitions(root: Path) -> list[str]:
    return sorted({f.parent.name.split("=", 1)[1] for f in check_dataset(root)})
