"""Stage 1 -- ``lanas measure``: fan latency measurements out over Ray workers.

Each Ray task measures a chunk of architectures on one device (one CPU core or one GPU,
from ``measure.resources``) with the interleaved-reference protocol of
:mod:`lanas.measure`, and returns rows; the driver writes every returned chunk as one
Parquet shard at once, so an interrupted run loses at most the chunks in flight and a
re-run skips every architecture already in the dataset for that hardware and setting.
"""
from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch

from lanas.encoding import LAYOUT_VERSION, encode_genotype
from lanas.genotype import Genotype, read_jsonl
from lanas.measure import LatencyMeter, MeasureSettings, hardware_id
from lanas.network import MacroConfig
from lanas.space import SearchSpace
from pipeline import dataset as ds
from pipeline.config import RunConfig
from pipeline.errors import PipelineError
from pipeline.rundir import RunDir


def dataset_dir(run: RunDir) -> Path:
    return run.stage("measure") / "dataset"


def measure_genotypes(genotypes: Sequence[Genotype], space: SearchSpace, macro: MacroConfig,
                      protocol: MeasureSettings, seed: int) -> dict[str, Any]:
    """Measure ``genotypes`` here (inside a Ray task). Returns hardware, rows and timing
    totals; a genotype that fails is a row with status 'failed' and its error."""
    t0 = time.perf_counter()
    hw = hardware_id(protocol)
    meter = LatencyMeter(macro, protocol, seed)
    base = {
        "layout_version": LAYOUT_VERSION, "space_ops": ",".join(space.ops), "batch_size": protocol.batch_size,
        "resolution": protocol.resolution, "in_channels": macro.in_channels, "channels": macro.channels,
        "layers": macro.layers, "dtype": protocol.dtype, "threads": protocol.threads, "warmup": protocol.warmup,
        "torch_version": torch.__version__, "seed": seed, "node": platform.node(),
    }
    rows, timed = [], 0.0
    for g in genotypes:
        row = {**base, "arch_id": g.arch_id, "genotype": g.to_json(), "measured_at": datetime.now(timezone.utc)}
        try:
            row["encoding"] = encode_genotype(g, space).tolist()
            t = meter.measure(g)
            timed += t.timed_s
            row.update(status="ok", error=None, latency_ms=t.arch.median_ms, latency_p10_ms=t.arch.p10_ms,
                       latency_p90_ms=t.arch.p90_ms, ref_latency_ms=t.reference.median_ms, latency_ratio=t.ratio,
                       latency_ratio_p10=t.ratio_p10, latency_ratio_p90=t.ratio_p90, repeats=t.arch.repeats)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded, never a number
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500], repeats=0)
        rows.append(row)
    return {"hardware": hw, "rows": rows, "timed_s": timed, "wall_s": time.perf_counter() - t0}


def _probe(protocol: MeasureSettings) -> str:
    return hardware_id(protocol)


def _select(cfg: RunConfig, num_archs: int | None, genotypes_file: str | None) -> list[Genotype]:
    if genotypes_file is not None:
        gs = read_jsonl(genotypes_file, cfg.space.ops)
        unique = {g.arch_id: g for g in gs}
        return list(unique.values())
    n = cfg.measure.num_archs if num_archs is None else num_archs
    if n <= 0:
        raise PipelineError(f"--num-archs must be > 0, got {n}")
    return cfg.space.sample_unique(n, cfg.seed)


def setting_key(cfg: RunConfig) -> tuple:
    m, p = cfg.macro(), cfg.measure.protocol
    row = {"batch_size": p.batch_size, "resolution": p.resolution, "in_channels": m.in_channels,
           "channels": m.channels, "layers": m.layers, "dtype": p.dtype, "threads": p.threads,
           "space_ops": ",".join(cfg.space.ops)}
    return ds.setting_of(row)


def run_measure(run: RunDir, num_archs: int | None = None, genotypes_file: str | None = None,
                progress: bool = True, max_in_flight: int | None = None) -> dict[str, Any]:
    """Measure the selected architectures that the dataset does not hold yet."""
    import ray
    from tqdm import tqdm

    from pipeline.ray_env import cluster_cpus

    cfg = run.config
    root = dataset_dir(run)
    existing = ds.measured_keys(root)  # validates every existing file first
    wanted = _select(cfg, num_archs, genotypes_file)
    res = cfg.measure.resources
    hw = ray.get(ray.remote(_probe).options(name="measure[probe]", **res.ray_options()).remote(cfg.measure.protocol))
    key = (hw, *setting_key(cfg))
    todo = [g for g in wanted if (*key, g.arch_id) not in existing]
    print(f"[measure] {hw}: {len(wanted)} architectures wanted, {len(wanted) - len(todo)} already measured, "
          f"{len(todo)} to measure", flush=True)
    chunks = [todo[i : i + cfg.measure.chunk_size] for i in range(0, len(todo), cfg.measure.chunk_size)]
    if max_in_flight is None:
        max_in_flight = cfg.measure.max_in_flight
    if not max_in_flight:
        if res.num_gpus > 0:
            max_in_flight = max(1, int(ray.cluster_resources().get("GPU", 0) // res.num_gpus))
        else:
            max_in_flight = max(1, int(cluster_cpus() // max(res.num_cpus, 1e-9)))
    task = ray.remote(measure_genotypes).options(name=f"measure[{hw}]", max_retries=cfg.measure.max_retries, **res.ray_options())
    macro = cfg.macro()
    t0 = time.perf_counter()
    pending: list = []
    written = failed = 0
    timed = busy = 0.0
    bar = tqdm(total=len(todo), unit="arch", desc=f"measure[{hw}]", disable=not progress, mininterval=1.0)
    next_chunk = 0
    while next_chunk < len(chunks) or pending:
        while next_chunk < len(chunks) and len(pending) < max_in_flight:
            pending.append(task.remote(chunks[next_chunk], cfg.space, macro, cfg.measure.protocol, cfg.seed))
            next_chunk += 1
        done, pending = ray.wait(pending, num_returns=1)
        out = ray.get(done[0])
        ds.write_shard(root, out["hardware"], out["rows"], run.stage("measure") / "tmp")
        written += len(out["rows"])
        failed += sum(r["status"] != "ok" for r in out["rows"])
        timed += out["timed_s"]
        busy += out["wall_s"]
        bar.update(len(out["rows"]))
    bar.close()
    wall = time.perf_counter() - t0
    rows = ds.read_table(root, hw).to_pylist()
    summary = summarise(rows, hw)
    summary.update(new_rows=written, new_failed=failed, wall_s=wall, timed_s=timed, task_s=busy,
                   archs_per_s=written / wall if wall > 0 and written else 0.0, max_in_flight=max_in_flight)
    key = setting_key(cfg)
    plot_histogram(run, hw, [r for r in rows if r["status"] == "ok" and ds.setting_of(r) == key])
    print(f"[measure] {hw}: {summary['rows']} rows ({summary['failed']} failed); latency ms "
          f"min/median/max = {summary['latency_ms_min']:.3f}/{summary['latency_ms_median']:.3f}/"
          f"{summary['latency_ms_max']:.3f}; dataset: {root}", flush=True)
    run.update_manifest({"measure": {"hardware": hw, "protocol": asdict(cfg.measure.protocol)}})
    return summary


def summarise(rows: list[dict[str, Any]], hardware: str) -> dict[str, Any]:
    """Counts and latency range of one partition's rows."""
    lat = [r["latency_ms"] for r in rows if r["status"] == "ok"]
    refs = [r["ref_latency_ms"] for r in rows if r["status"] == "ok"]
    return {"hardware": hardware, "rows": len(rows), "failed": sum(r["status"] != "ok" for r in rows),
            "latency_ms_min": min(lat, default=float("nan")), "latency_ms_median": statistics.median(lat) if lat else float("nan"),
            "latency_ms_max": max(lat, default=float("nan")), "reference_ms": statistics.median(refs) if refs else float("nan")}


def plot_histogram(run: RunDir, hardware: str, rows: list[dict[str, Any]]) -> Path | None:
    """Histograms of raw and reference-normalised latency of the successful ``rows``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].hist([r["latency_ms"] for r in rows], bins=40, color="tab:blue")
    axes[0].set(xlabel="latency (ms, median of repeats)", ylabel="architectures", title=f"raw latency, {hardware}")
    axes[1].hist([r["latency_ratio"] for r in rows], bins=40, color="tab:orange")
    axes[1].set(xlabel="latency / reference network", title=f"reference-normalised ({len(rows)} archs)")
    fig.tight_layout()
    out = run.stage("measure") / f"latency_hist_{hardware}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def measure_jsonl_path(run: RunDir, genotypes: Sequence[Genotype], name: str = "genotypes.jsonl") -> Path:
    """Write ``genotypes`` as a JSON-lines file in the run's measure folder (for --genotypes)."""
    path = run.stage("measure") / name
    path.write_text("".join(g.to_json() + "\n" for g in genotypes), encoding="utf-8")
    return path
