"""Stage 1 -- ``lanas measure``: fan latency measurements out over Ray workers.

Every (target, chunk of architectures) is one Ray task reserving what the target needs
(``threads`` cores for a CPU target, so timing tasks never share a core; a GPU for a
CUDA one). It times each architecture with the interleaved-reference protocol of
:mod:`lanas.measure` in the target's runtime and returns rows; the driver writes each
returned chunk as one Parquet shard at once, so an interrupted run loses at most the
chunks in flight, and a re-run skips every architecture the dataset already holds for
that target and setting.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch

from lanas.encoding import LAYOUT_VERSION, encode_genotype
from lanas.genotype import PUBLISHED, Genotype, published, read_jsonl
from lanas.measure import LatencyMeter, MeasureSettings, hardware_id
from lanas.runtimes import RuntimeMissing, device_name, runtime_version
from lanas.space import SearchSpace, sample_mixed
from lanas.target import Target, pick

from . import dataset as ds
from .config import RunConfig
from .errors import PipelineError
from .fanout import check_resources, fan_out, slots
from .records import LATENCY_RATIO, MeasuredRow, Setting
from .rows import dataset_dir
from .rundir import RunDir
from .staleness import mark_done


def _timing_columns(m) -> dict[str, Any]:
    """The latency columns of one measurement (lanas.measure.Measurement)."""
    t = m.timing
    return {"latency_ms": t.arch.median_ms, "latency_p10_ms": t.arch.p10_ms, "latency_p90_ms": t.arch.p90_ms,
            "ref_latency_ms": t.reference.median_ms, LATENCY_RATIO: t.ratio, "latency_ratio_p10": t.ratio_p10,
            "latency_ratio_p90": t.ratio_p90, "repeats": t.arch.repeats, "export_s": m.export_s,
            "compile_s": m.compile_s, "build_path": m.build_path}  # fmt: skip


def ray_node() -> str:
    """``host:<Ray node id>`` where this runs (nodes may share a host), or the host outside Ray."""
    import ray

    host = platform.node()
    return f"{host}:{ray.get_runtime_context().get_node_id()}" if ray.is_initialized() else host


def measure_genotypes(
    genotypes: Sequence[Genotype], setting: Setting, protocol: MeasureSettings, seed: int
) -> dict[str, Any]:
    """Measure ``genotypes`` here (inside a Ray task) on ``setting.target``. Returns the
    hardware id, rows and timing totals; a genotype that fails (an op the runtime cannot
    export or run, among others) is a row with status 'failed' and its error."""
    t0 = time.perf_counter()
    target = setting.target
    meter = LatencyMeter(setting.macro, target, protocol, setting.resolution, seed)
    space = SearchSpace(setting.space_ops)
    base = {
        "layout_version": LAYOUT_VERSION,
        **setting.columns(),
        "device_name": device_name(target),
        "runtime_version": meter.runtime_version,
        "warmup": protocol.warmup,
        "torch_version": torch.__version__,
        "seed": seed,
        "node": ray_node(),
    }
    rows, timed = [], 0.0
    for g in genotypes:
        row = {**base, "arch_id": g.arch_id, "genotype": g.to_json(), "measured_at": datetime.now(timezone.utc)}
        try:
            row["encoding"] = encode_genotype(g, space).tolist()
            m = meter.measure(g)
            timed += m.timing.timed_s
            row.update(status="ok", error=None, **_timing_columns(m))
        except Exception as exc:  # noqa: BLE001 - any failure is recorded, never a number
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500], repeats=0)
        rows.append(row)
    return {"hardware": hardware_id(target), "rows": rows, "timed_s": timed, "wall_s": time.perf_counter() - t0}


def _probe(target: Target) -> str:
    return hardware_id(target)


def select_targets(cfg: RunConfig, name: str | None, hardware_ids: dict[str, str] | None = None) -> tuple[Target, ...]:
    """All of the run's targets, or the one called ``name`` (its spec or hardware id)."""
    if name is None:
        return cfg.targets
    try:
        return (pick(cfg.targets, name, hardware_ids),)
    except ValueError as exc:
        raise PipelineError(str(exc)) from None


def check_runtimes(targets: Sequence[Target]) -> None:
    """One clear line, before anything runs, when a target's runtime is not installed."""
    for t in targets:
        try:
            runtime_version(t.runtime)
        except RuntimeMissing as exc:
            raise PipelineError(f"target {t.spec}: {exc}") from None


def probe_targets(run: RunDir, targets: Sequence[Target], record: bool = True) -> dict[str, str]:
    """Hardware id of each target, asked of a worker with the target's resources (its
    device model is the worker's). With ``record``, stores spec -> id in the manifest."""
    import ray

    cfg = run.config
    refs = {}
    for t in targets:
        what, options = cfg.resource_asks()[f"measure:{t.spec}"]
        check_resources(what, options)
        refs[t.spec] = ray.remote(_probe).options(name=f"measure[probe {t.spec}]", **options).remote(t)
    ids = {}
    for spec, ref in refs.items():
        try:
            ids[spec] = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            raise PipelineError(f"target {spec}: {str(getattr(exc, 'cause', exc)).splitlines()[0]}") from None
    if not record:
        return ids
    known = {**run.hardware_ids(), **ids}
    run.update_manifest({"measure": {"targets": known, "protocol": cfg.to_dict()["measure"]["protocol"]}})
    return ids


Origins = dict[str, tuple[str, int | None]]  # arch_id -> (sampler, search round) of the rows measured


def published_probes(cfg: RunConfig) -> list[Genotype]:
    """The published genotypes the run's space can express: measured in stage 1 as a
    held-out probe of the predictor away from random architectures, never trained on."""
    return [g for g in map(published, PUBLISHED) if cfg.space.expresses(g)]


def probe_same_hardware(run: RunDir, targets: Sequence[Target]) -> dict[str, str]:
    """Hardware id of each target on this cluster, refused unless it is the one stage 1
    measured (later stages add rows or compare against that hardware)."""
    ids = probe_targets(run, targets, record=False)
    for spec, hw in ids.items():
        if run.hardware_id(spec) != hw:
            raise PipelineError(
                f"target {spec} is {hw} on this cluster, but its predictor was fitted on "
                f"{run.hardware_id(spec)}; run on the hardware that was measured"
            )
    return ids


def _select(cfg: RunConfig, num_archs: int | None, genotypes_file: str | None) -> tuple[list[Genotype], Origins]:
    """The architectures to measure and where each comes from."""
    if genotypes_file is not None:
        gs = list({g.arch_id: g for g in read_jsonl(genotypes_file, cfg.space.ops)}.values())
        return gs, {g.arch_id: ("genotypes", None) for g in gs}
    n = cfg.measure.num_archs if num_archs is None else num_archs
    if n <= 0:
        raise PipelineError(f"--num-archs must be > 0, got {n}")
    drawn = sample_mixed(cfg.space, n, cfg.seed, cfg.measure.sampling)
    origins = {g.arch_id: (k, None) for g, k in drawn}
    probes = [g for g in (published_probes(cfg) if cfg.measure.published else []) if g.arch_id not in origins]
    origins.update({g.arch_id: ("published", None) for g in probes})
    return [g for g, _ in drawn] + probes, origins


def missing(
    root: Path, cfg: RunConfig, targets: Sequence[Target], ids: dict[str, str], genotypes: Sequence[Genotype]
) -> dict[str, list[Genotype]]:
    """Per target spec: the genotypes the dataset under ``root`` lacks for it (ok or failed rows count)."""
    have = ds.measured_keys(root)
    out = {}
    for t in targets:
        key = (ids[t.spec], *cfg.setting(t).key())
        out[t.spec] = [g for g in genotypes if (*key, g.arch_id) not in have]
    return out


def interleaved_chunks(todo: dict[str, list[Genotype]], size: int) -> list[tuple[str, list[Genotype]]]:
    """(target spec, chunk of ``size`` genotypes) jobs, the targets taking turns chunk by chunk."""
    chunks = {spec: [gs[i : i + size] for i in range(0, len(gs), size)] for spec, gs in todo.items()}
    rounds = max(map(len, chunks.values()), default=0)
    return [(spec, chunks[spec][i]) for i in range(rounds) for spec in chunks if i < len(chunks[spec])]


def _add(totals: dict[str, float], out: dict[str, Any]) -> None:
    """Add one task's rows and timings to the running totals."""
    totals["new_rows"] += len(out["rows"])
    totals["new_failed"] += sum(r["status"] != "ok" for r in out["rows"])
    totals["timed_s"] += out["timed_s"]
    totals["task_s"] += out["wall_s"]


def _cleared_tmp(root: Path, name: str) -> Path:
    """The folder shards are written in before they move into ``root`` whole, emptied of
    the partial shards an interrupted run left there."""
    tmp = root.parent / "tmp"
    left = ds.clear_partial(tmp)
    if left:
        print(f"[{name}] removed {left} partial shard(s) an interrupted run left in {tmp}", flush=True)
    return tmp


def cluster_slots(options) -> int:
    """How many measuring tasks the cluster runs at once, summed over distinct resource shapes."""
    shapes = {json.dumps(o, sort_keys=True): o for o in options}
    return sum(slots(o) for o in shapes.values())


def measure_into(
    run: RunDir,
    root: Path,
    todo: dict[str, list[Genotype]],
    max_in_flight: int | None,
    progress: bool,
    name: str = "measure",
    origins: Origins | None = None,
) -> dict[str, float]:
    """Measure ``todo`` (target spec -> genotypes) with Ray tasks, chunk by chunk and
    target by target in turn, writing each chunk as one shard of ``root``; each row's
    ``sampler`` and ``round`` come from ``origins`` (default: sampler ``name``)."""
    import ray
    from tqdm import tqdm

    cfg = run.config
    tmp = _cleared_tmp(root, name)
    by_spec = {t.spec: t for t in cfg.targets}
    jobs = interleaved_chunks(todo, cfg.measure.chunk_size)
    options = {spec: cfg.measure.task_options(by_spec[spec]) for spec in todo}
    retries = cfg.measure.max_retries
    tasks = {
        s: ray.remote(measure_genotypes).options(name=f"{name}[{s}]", max_retries=retries, **options[s]) for s in todo
    }
    max_in_flight = max_in_flight or cluster_slots(options.values())
    totals: dict[str, float] = {"new_rows": 0, "new_failed": 0, "timed_s": 0.0, "task_s": 0.0}
    bar = tqdm(total=sum(len(g) for _, g in jobs), unit="arch", desc=name, disable=not progress, mininterval=1.0)

    def submit(job):
        spec, gs = job
        return tasks[spec].remote(gs, cfg.setting(by_spec[spec]), cfg.measure.protocol, cfg.seed)

    def write(job, out):
        for row in out["rows"]:
            row["sampler"], row["round"] = (origins or {}).get(row["arch_id"], (name.split(".")[0], None))
        ds.write_shard(root, out["hardware"], out["rows"], tmp)
        _add(totals, out)
        bar.update(len(out["rows"]))

    t0 = time.perf_counter()
    fan_out(submit, jobs, max_in_flight, write)
    bar.close()
    totals["wall_s"] = time.perf_counter() - t0
    totals["max_in_flight"] = max_in_flight
    return totals


def run_measure(
    run: RunDir,
    num_archs: int | None = None,
    genotypes_file: str | None = None,
    progress: bool = True,
    max_in_flight: int | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """Measure the selected architectures that the dataset does not hold yet, on every
    target of the run (or the one named ``target``); marks the stage done when every
    target was measured."""
    cfg = run.config
    targets = select_targets(cfg, target, run.hardware_ids())
    check_runtimes(targets)
    root = dataset_dir(run)
    ds.check_dataset(root)  # a corrupt or foreign file stops us before any work
    wanted, origins = _select(cfg, num_archs, genotypes_file)
    ids = probe_targets(run, targets)
    todo = missing(root, cfg, targets, ids, wanted)
    kinds = ", ".join(f"{n} {k}" for k, n in Counter(k for k, _ in origins.values()).items())
    for t in targets:
        n = len(todo[t.spec])
        print(
            f"[measure] {ids[t.spec]}: {len(wanted)} architectures wanted ({kinds}), {len(wanted) - n} already "
            f"measured, {n} to measure",
            flush=True,
        )
    totals = measure_into(run, root, todo, max_in_flight or cfg.measure.max_in_flight, progress, origins=origins)
    wall = totals["wall_s"]
    summary: dict[str, Any] = {
        **totals,
        "archs_per_s": totals["new_rows"] / wall if wall > 0 and totals["new_rows"] else 0.0,
    }
    summary["targets"] = summarise_targets(run, targets, ids)
    # how many architectures stage 1 has sampled: measure.num_archs may grow past it (pipeline.staleness)
    sampled = 0 if genotypes_file is not None else (cfg.measure.num_archs if num_archs is None else num_archs)
    summary["sampled"] = max(sampled, run.done_summary("measure").get("sampled", 0))
    print(f"[measure] dataset: {root}", flush=True)
    if target is None:  # one target alone does not complete the stage for `reproduce`
        mark_done(run, "measure", summary)
    return summary


def summarise_targets(run: RunDir, targets: Sequence[Target], ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per target: its rows' summary (printed) and latency histogram."""
    cfg, out = run.config, {}
    table = ds.read_table(dataset_dir(run)).to_pylist()  # read once for every target's summary
    for t in targets:
        hw = ids[t.spec]
        key = cfg.setting(t).key()
        rows = [r for r in table if r[ds.PARTITION] == hw and ds.setting_of(r) == key]
        s = out[t.spec] = summarise(rows, hw)
        plot_histogram(run, hw, [r for r in rows if r["status"] == "ok"])
        print(
            f"[measure] {hw}: {s['rows']} rows ({s['failed']} failed); latency ms min/median/max = "
            f"{s['latency_ms_min']:.3f}/{s['latency_ms_median']:.3f}/{s['latency_ms_max']:.3f}",
            flush=True,
        )
    return out


def summarise(rows: list[MeasuredRow], hardware: str) -> dict[str, Any]:
    """Counts and latency range of one target's rows."""
    ok = [r for r in rows if r["status"] == "ok"]
    lat = [r["latency_ms"] for r in ok]
    refs = [r["ref_latency_ms"] for r in ok]
    prep = [r["export_s"] + r["compile_s"] for r in ok]
    return {
        "hardware": hardware,
        "rows": len(rows),
        "failed": len(rows) - len(ok),
        "latency_ms_min": min(lat, default=float("nan")),
        "latency_ms_median": statistics.median(lat) if lat else float("nan"),
        "latency_ms_max": max(lat, default=float("nan")),
        "reference_ms": statistics.median(refs) if refs else float("nan"),
        "export_compile_s_median": statistics.median(prep) if prep else float("nan"),
    }


def plot_histogram(run: RunDir, hardware: str, rows: list[MeasuredRow]) -> Path | None:
    """Histograms of raw and reference-normalised latency of the successful ``rows``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].hist([r["latency_ms"] for r in rows], bins=40, color="tab:blue")
    axes[0].set(xlabel="latency (ms, median of repeats)", ylabel="architectures", title=f"raw latency, {hardware}")
    axes[1].hist([r[LATENCY_RATIO] for r in rows], bins=40, color="tab:orange")
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
