"""Stage 2 -- ``lanas fit``: a Ray Train job fits the latency predictor.

Reads one hardware partition of the stage-1 dataset with Ray Data, keeps the rows of
the run's measurement setting, drops failed rows and non-finite or non-positive
latencies (counted), splits train/val/test by a hash of ``arch_id`` (deterministic,
stable as the dataset grows), and trains :class:`lanas.predictor.LatencyPredictor` on
the reference-normalised latency with a ``TorchTrainer``. The held-out test set scores
it beside the LUT, tree-ensemble and FLOPs baselines; the predictor is exported to
``fit/`` with its metadata, ``metrics.json``, ``metrics.md`` and ``scatter.png``.
"""
from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lanas.genotype import Genotype, read_jsonl
from lanas.encoding import encode_genotype, encoding_size
from lanas.encoding import group_matrix
from lanas.predictor import LatencyPredictor, PredictorSettings, train_predictor
from lanas.space import SearchSpace
from lanas import quality
from pipeline import dataset as ds
from pipeline import predictor_store
from pipeline.errors import PipelineError
from pipeline.measure import dataset_dir, setting_key
from pipeline.rundir import RunDir, write_atomic

MIN_ROWS = {"train": 10, "val": 2, "test": 5}
COLUMNS = ["arch_id", "genotype", "encoding", "status", "latency_ms", "ref_latency_ms", "latency_ratio",
           *ds.SETTING_COLUMNS]


def split_of(arch_id: str, val_fraction: float, test_fraction: float) -> str:
    u = int(hashlib.sha1(arch_id.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def choose_hardware(run: RunDir, hardware: str | None) -> str:
    parts = ds.hardware_partitions(dataset_dir(run))
    if not parts:
        raise PipelineError(f"the latency dataset {dataset_dir(run)} is empty (run `lanas measure` first)")
    if hardware is not None:
        if hardware not in parts:
            raise PipelineError(f"no rows for hardware {hardware!r} in {dataset_dir(run)}; it has: {', '.join(parts)}")
        return hardware
    manifest = json.loads((run.path / "manifest.json").read_text())
    last = manifest.get("measure", {}).get("hardware")
    if last in parts:
        return last
    if len(parts) > 1:
        raise PipelineError(f"the dataset holds several hardware targets ({', '.join(parts)}); pick one with --hardware")
    return parts[0]


def load_rows(run: RunDir, hardware: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Ray Data read of one partition -> split rows, plus counts of what was dropped.
    The dataset's files were validated by :func:`choose_hardware` just before."""
    import ray

    cfg = run.config
    part = dataset_dir(run) / f"{ds.PARTITION}={hardware}"
    data = ray.data.read_parquet(str(part), columns=COLUMNS)
    key = setting_key(cfg)
    data = data.filter(lambda r: tuple(r[c] for c in ds.SETTING_COLUMNS) == key)
    rows = data.to_pandas()
    dropped = {"failed": int((rows["status"] != "ok").sum())}
    ok = rows[rows["status"] == "ok"]
    lat = ok["latency_ratio"].astype(float)
    bad = ~np.isfinite(lat) | (lat <= 0) | ~np.isfinite(ok["latency_ms"].astype(float)) | (ok["latency_ms"].astype(float) <= 0)
    dropped["nan_zero_or_negative"] = int(bad.sum())
    ok = ok[~bad]
    if len(ok) == 0:
        raise PipelineError(f"no usable rows for hardware {hardware!r} at this run's measurement setting "
                            f"({dropped['failed']} failed, {dropped['nan_zero_or_negative']} NaN/zero/negative)")
    fit = run.config.fit
    ok = ok.assign(split=[split_of(a, fit.val_fraction, fit.test_fraction) for a in ok["arch_id"]])
    splits = {name: ok[ok["split"] == name] for name in MIN_ROWS}
    for name, minimum in MIN_ROWS.items():
        if len(splits[name]) < minimum:
            raise PipelineError(f"too few rows to split: {len(ok)} usable rows give {len(splits[name])} {name} rows "
                                f"(need >= {minimum}); measure more architectures")
    return splits, dropped


def _arrays(frame) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(np.stack(frame["encoding"].to_numpy()), dtype=torch.float32)
    y = torch.tensor(frame["latency_ratio"].to_numpy(), dtype=torch.float32)
    return x, y


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker; the only Ray code around lanas.train_predictor."""
    import ray.train
    import ray.train.torch

    torch.set_num_threads(config["threads"])
    ctx = ray.train.get_context()

    space = SearchSpace(tuple(config["ops"]))

    def collect(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        frames = list(ray.train.get_dataset_shard(name).iter_batches(batch_format="pandas", batch_size=4096))
        import pandas as pd

        return _arrays(pd.concat(frames)) if frames else (torch.empty(0, encoding_size(space)), torch.empty(0))

    train, val, full = collect("train"), collect("val"), collect("train_full")
    settings = PredictorSettings(**{**config["settings"], "hidden": tuple(config["settings"]["hidden"])})
    torch.manual_seed(config["seed"])  # same initial weights on every worker and every run
    predictor = LatencyPredictor.for_space(space, settings.hidden)
    every = max(1, settings.epochs // 5)

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if (epoch + 1) % every == 0 and epoch + 1 < settings.epochs:
            ray.train.report(metrics)

    metrics = train_predictor(predictor, train, val, settings, seed=config["seed"] + ctx.get_world_rank(),
                              on_epoch=on_epoch, wrap=ray.train.torch.prepare_model, init=full)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if ctx.get_world_rank() == 0:
            torch.save(predictor.state_dict(), Path(tmp) / "predictor.pt")
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_with_ray(run: RunDir, splits: dict[str, Any]) -> tuple[LatencyPredictor, dict[str, Any]]:
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    fit = run.config.fit
    res = fit.resources_per_worker
    columns = ["encoding", "latency_ratio"]
    trainer = TorchTrainer(
        _train_loop_per_worker,
        train_loop_config={"settings": asdict(fit.model), "seed": run.config.seed,
                           "ops": list(run.config.space.ops),
                           "threads": max(1, int(res.num_cpus))},
        scaling_config=ray.train.ScalingConfig(
            num_workers=fit.num_workers, use_gpu=res.num_gpus > 0,
            resources_per_worker={"CPU": res.num_cpus, **({"GPU": res.num_gpus} if res.num_gpus else {}), **res.custom}),
        run_config=ray.train.RunConfig(name="fit", storage_path=str((run.stage("fit") / "ray").resolve())),
        # "train" is sharded across workers for SGD; every worker also sees the whole
        # training set ("train_full") for the target statistics and the additive init
        datasets={**{name: ray.data.from_pandas(splits[name][columns].reset_index(drop=True)) for name in ("train", "val")},
                  "train_full": ray.data.from_pandas(splits["train"][columns].reset_index(drop=True))},
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise PipelineError(f"the Ray Train job left no checkpoint (error: {result.error})")
    with result.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "predictor.pt", map_location="cpu", weights_only=True)
    model = LatencyPredictor.for_space(run.config.space, fit.model.hidden)
    model.load_state_dict(state)
    return model.eval(), dict(result.metrics or {})


def evaluate_all(run: RunDir, model: LatencyPredictor, splits: dict[str, Any], reference_ms: float) -> dict[str, Any]:
    """Test metrics of the predictor and of each baseline on the same split."""
    cfg = run.config
    (xtr, ytr), (xte, yte) = _arrays(splits["train"]), _arrays(splits["test"])
    with torch.no_grad():
        mlp = model(xte).numpy()
    lut = quality.fit_lut(xtr.numpy(), ytr.numpy())
    groups = group_matrix(cfg.space)
    lut_op = quality.fit_lut((xtr @ groups).numpy(), ytr.numpy())
    trees = quality.fit_trees(xtr.numpy(), ytr.numpy(), cfg.seed)
    macro, res = cfg.macro(), cfg.measure.protocol.resolution
    rng = np.random.default_rng(cfg.seed)
    sample = rng.choice(len(splits["train"]), size=min(len(splits["train"]), 1000), replace=False)
    flops_of = lambda frame: [quality.network_flops(Genotype.from_json(g), macro, res) for g in frame["genotype"]]
    slope, intercept = quality.fit_flops(flops_of(splits["train"].iloc[sample]), ytr.numpy()[sample])
    flops_pred = slope * np.asarray(flops_of(splits["test"]), dtype=float) + intercept
    y = yte.numpy()
    preds = {"predictor": mlp, "lut": lut.predict(xte.numpy()), "lut_op": lut_op.predict((xte @ groups).numpy()), "trees": trees.predict(xte.numpy()), "flops": flops_pred}
    return {name: quality.regression_metrics(p, y, reference_ms) for name, p in preds.items()}, {
        "test_true": y.tolist(), "test_pred": mlp.tolist(), "lut_pred": preds["lut"].tolist()}


def run_fit(run: RunDir, hardware: str | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    hw = choose_hardware(run, hardware)
    splits, dropped = load_rows(run, hw)
    counts = {k: len(v) for k, v in splits.items()}
    if any(dropped.values()):
        print(f"[fit] dropped {dropped['failed']} failed rows and {dropped['nan_zero_or_negative']} rows with "
              "NaN, zero or negative latency", flush=True)
    print(f"[fit] {hw}: train/val/test = {counts['train']}/{counts['val']}/{counts['test']} architectures; "
          f"Ray Train with {run.config.fit.num_workers} worker(s)", flush=True)
    all_rows = [splits[k] for k in MIN_ROWS]
    reference_ms = float(statistics.median(np.concatenate([f["ref_latency_ms"].to_numpy() for f in all_rows])))
    t1 = time.perf_counter()
    model, train_metrics = train_with_ray(run, splits)
    t2 = time.perf_counter()
    scores, points = evaluate_all(run, model, splits, reference_ms)
    print(f"[fit] Ray Train job {t2 - t1:.1f} s, baselines and test metrics {time.perf_counter() - t2:.1f} s", flush=True)
    meta = {**predictor_store.expected_meta(run.config), "hardware": hw, "hidden": list(run.config.fit.model.hidden),
            "target": "latency_ratio", "reference_ms": reference_ms,
            "normalisation": {"mean": float(model.mean), "std": float(model.std), "typical": float(model.typical)},
            "rows": counts, "dropped": dropped, "test": scores["predictor"], "baselines": {k: v for k, v in scores.items() if k != "predictor"},
            "train_metrics": {k: v for k, v in train_metrics.items() if isinstance(v, (int, float))}}
    folder = run.stage("fit")
    predictor_store.save(folder, model, meta)
    write_atomic(folder / "metrics.json", json.dumps({"hardware": hw, "rows": counts, "dropped": dropped, "test": scores}, indent=2))
    write_atomic(folder / "metrics.md", metrics_table(hw, scores, counts, run.config.fit.max_test_mape))
    plot_scatter(folder / "scatter.png", points, reference_ms, hw, scores["predictor"])
    best = min((v["mape"], k) for k, v in scores.items() if k != "predictor")
    s = scores["predictor"]
    print(f"[fit] test MAPE {s['mape']:.2%}, within +-10% {s['within_10pct']:.1%}, Kendall tau {s['kendall_tau']:.3f} "
          f"(best baseline: {best[1]} {best[0]:.2%}); gate {run.config.fit.max_test_mape:.0%}: "
          f"{'pass' if s['mape'] <= run.config.fit.max_test_mape else 'FAIL'}; wrote {folder}", flush=True)
    summary = {"hardware": hw, "test": s, "wall_s": time.perf_counter() - t0}
    run.mark_done("fit", summary)
    return summary


def metrics_table(hw: str, scores: dict[str, dict[str, float]], counts: dict[str, int], gate: float) -> str:
    lines = [f"# Latency predictor on `{hw}`", "",
             f"Held-out test set: {counts['test']} architectures (train {counts['train']}, val {counts['val']}), "
             f"split by arch_id hash. Quality gate: MAPE <= {gate:.0%}.", "",
             "| model | MAPE | RMSE (ms) | within +-5% | within +-10% | Kendall tau | Spearman rho |",
             "|---|---|---|---|---|---|---|"]
    names = {"predictor": "**lanas predictor** (grouped additive + MLP)", "lut": "lookup table per (cell, edge, op)",
             "lut_op": "lookup table per (edge group, op)",
             "trees": "gradient-boosted trees", "flops": "FLOPs (linear map)"}
    for k, v in scores.items():
        lines.append(f"| {names[k]} | {v['mape']:.2%} | {v['rmse_ms']:.4f} | {v['within_5pct']:.1%} | "
                     f"{v['within_10pct']:.1%} | {v['kendall_tau']:.3f} | {v['spearman_rho']:.3f} |")
    return "\n".join(lines) + "\n"


def plot_scatter(path: Path, points: dict[str, list[float]], reference_ms: float, hw: str, s: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(points["test_true"]) * reference_ms
    p = np.asarray(points["test_pred"]) * reference_ms
    fig, ax = plt.subplots(figsize=(5, 5))
    lo, hi = float(min(y.min(), p.min())) * 0.95, float(max(y.max(), p.max())) * 1.05
    grid = np.linspace(lo, hi, 50)
    ax.fill_between(grid, grid * 0.9, grid * 1.1, color="tab:green", alpha=0.15, label="+-10 %")
    ax.plot(grid, grid, color="tab:green", lw=1)
    ax.scatter(y, p, s=10, alpha=0.7, label="test architectures")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency (ms)", ylabel="predicted latency (ms)",
           title=f"{hw}\nMAPE {s['mape']:.2%}, tau {s['kendall_tau']:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_checked(run: RunDir, force: bool = False, gate: bool = True) -> predictor_store.StoredPredictor:
    """The run's predictor, checked against its config and (with ``gate``) its quality gate."""
    stored = predictor_store.load(run.path / "fit", run.config)
    if gate:
        predictor_store.check_quality(stored, run.config.fit.max_test_mape, force)
    return stored


def predict_genotypes(run_dir: str, genotypes_file: str) -> list[str]:
    run = RunDir.existing(run_dir)
    stored = load_checked(run, gate=False)
    gs = read_jsonl(genotypes_file, run.config.space.ops)
    x = torch.stack([encode_genotype(g, run.config.space) for g in gs])
    ratio = stored.predict_ratio(x).tolist()
    return [json.dumps({"arch_id": g.arch_id, "hardware": stored.meta["hardware"], "predicted_latency_ratio": round(r, 6),
                        "predicted_latency_ms": round(r * stored.reference_ms, 6)}) for g, r in zip(gs, ratio)]
