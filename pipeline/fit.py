"""Stage 2 -- ``lanas fit``: one Ray Train job fits a latency predictor per target.

For each target, reads its hardware partition of the stage-1 dataset with Ray Data,
keeps the rows of the run's measurement setting, drops failed rows and non-finite or
non-positive latencies (counted), and splits train/val/test by a hash of ``arch_id``
(deterministic, stable as the dataset grows, the same split on every target). One
``TorchTrainer`` job then trains :class:`lanas.predictor.LatencyPredictor` on each
target's reference-normalised latency in turn (one Train job, not one per target: each
costs ~25 s of start-up here). The held-out test set scores each predictor beside the
lookup-table, tree-ensemble and FLOPs baselines, with a paired bootstrap interval of its
MAPE difference to the best baseline. Output: ``fit/<hardware id>/`` (predictor, its
metadata, ``metrics.md``, ``scatter.png``) and ``fit/metrics.md``, all targets side by side.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lanas import quality
from lanas.encoding import LAYOUT_VERSION, encode_genotype, group_matrix
from lanas.genotype import Genotype, read_jsonl
from lanas.predictor import LatencyPredictor, PredictorSettings, train_predictor
from lanas.space import SearchSpace
from lanas.target import Target
from pipeline import dataset as ds
from pipeline import predictor_store
from pipeline.errors import PipelineError
from pipeline.fanout import check_resources
from pipeline.measure import dataset_dir, select_targets
from pipeline.predictor_store import PredictorMeta
from pipeline.rundir import RunDir, write_atomic

MIN_ROWS = {"train": 10, "val": 2, "test": 5}
COLUMNS = [
    "arch_id",
    "genotype",
    "encoding",
    "status",
    "latency_ms",
    "ref_latency_ms",
    "latency_ratio",
    *ds.SETTING_COLUMNS,
]
REPORTS_PER_FIT = 5  # progress reports to Ray Train per predictor (besides the final one)
FLOPS_SAMPLE = 1000  # training rows whose FLOPs are counted for the FLOPs baseline
NAMES = {
    "predictor": "**lanas predictor** (grouped additive + MLP)",
    "lut": "lookup table per (cell, edge, op)",
    "lut_op": "lookup table per (edge group, op)",
    "trees": "gradient-boosted trees",
    "flops": "FLOPs (linear map)",
}


def split_of(arch_id: str, val_fraction: float, test_fraction: float) -> str:
    u = int(hashlib.sha1(arch_id.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def load_rows(run: RunDir, target: Target, hardware: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Ray Data read of one target's partition -> split rows, plus counts of what was dropped."""
    import ray
    from ray.data.expressions import col

    from pipeline.ray_env import quiet_ray_data

    quiet_ray_data()
    part = dataset_dir(run) / f"{ds.PARTITION}={hardware}"
    if not part.is_dir():
        raise PipelineError(
            f"no rows for target {target.spec} ({hardware}) in {dataset_dir(run)} (run `lanas measure` first)"
        )
    match = functools.reduce(operator.and_, (col(c) == v for c, v in run.config.setting(target).columns().items()))
    rows = ray.data.read_parquet(str(part), columns=COLUMNS).filter(expr=match).to_pandas()
    dropped = {"failed": int((rows["status"] != "ok").sum())}
    ok = rows[rows["status"] == "ok"]
    lat, ms = ok["latency_ratio"].astype(float), ok["latency_ms"].astype(float)
    bad = ~np.isfinite(lat) | (lat <= 0) | ~np.isfinite(ms) | (ms <= 0)
    dropped["nan_zero_or_negative"] = int(bad.sum())
    ok = ok[~bad]
    if len(ok) == 0:
        raise PipelineError(
            f"no usable rows for target {hardware} at this run's measurement setting "
            f"({dropped['failed']} failed, {dropped['nan_zero_or_negative']} NaN/zero/negative)"
        )
    fit = run.config.fit
    ok = ok.assign(split=[split_of(a, fit.val_fraction, fit.test_fraction) for a in ok["arch_id"]])
    splits = {name: ok[ok["split"] == name] for name in MIN_ROWS}
    for name, minimum in MIN_ROWS.items():
        if len(splits[name]) < minimum:
            raise PipelineError(
                f"{hardware}: too few rows to split: {len(ok)} usable rows give {len(splits[name])} "
                f"{name} rows (need >= {minimum}); measure more architectures"
            )
    return splits, dropped


def _arrays(frame) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(np.stack(frame["encoding"].to_numpy()), dtype=torch.float32)
    y = torch.tensor(frame["latency_ratio"].to_numpy(), dtype=torch.float32)
    return x, y


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: the only Ray code around lanas.train_predictor,
    once per target; every worker reports the same sequence (reports are collective).
    Each worker runs SGD on its shard (rows ``rank::world``) of the training rows and
    fits the target statistics and the additive init on all of them."""
    import logging

    import ray.train
    import ray.train.torch

    logging.getLogger().setLevel(logging.WARNING)  # Train logs every report at INFO through the root logger
    torch.set_num_threads(config["threads"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    space = SearchSpace(tuple(config["ops"]))
    settings = PredictorSettings(**{**config["settings"], "hidden": tuple(config["settings"]["hidden"])})
    every = max(1, settings.epochs // REPORTS_PER_FIT)
    final, states = {}, {}
    for i, (spec, data) in enumerate(config["data"].items()):

        def on_epoch(epoch: int, metrics: dict[str, float], spec=spec) -> None:
            if (epoch + 1) % every == 0 and epoch + 1 < settings.epochs:
                ray.train.report({"target": spec, **metrics})

        (xtr, ytr), val = [(torch.tensor(x), torch.tensor(y)) for x, y in (data["train"], data["val"])]
        torch.manual_seed(config["seed"])  # same initial weights on every worker and every run
        predictor = LatencyPredictor.for_space(space, settings.hidden)
        shard = (xtr[rank::world], ytr[rank::world])
        wrap, init = ray.train.torch.prepare_model, (xtr, ytr)
        metrics = train_predictor(predictor, shard, val, settings, config["seed"] + rank, on_epoch, wrap, init)
        final.update({f"{spec}/{k}": v for k, v in metrics.items()})
        final[f"{spec}/train_rows_per_worker"] = len(xtr[rank::world])
        final[f"{spec}/world_size"] = world
        states[i] = predictor.state_dict()
    _report_final(final, states, rank)


def _report_final(final: dict[str, Any], states: dict[int, dict], rank: int) -> None:
    """The last (collective) report; rank 0 attaches the predictors as the checkpoint."""
    import ray.train

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            for i, state in states.items():
                torch.save(state, Path(tmp) / f"predictor_{i}.pt")
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(final, checkpoint=checkpoint)


def train_with_ray(
    run: RunDir, splits: dict[str, dict[str, Any]]
) -> tuple[dict[str, LatencyPredictor], dict[str, Any]]:
    """One TorchTrainer job fitting a predictor for every target spec in ``splits``.
    The rows travel as arrays in the loop config (a few MB even at 100K rows)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    fit = run.config.fit
    res = fit.resources_per_worker
    check_resources(*run.config.resource_asks()["fit"])
    specs = list(splits)
    data = {
        spec: {name: tuple(t.numpy() for t in _arrays(splits[spec][name])) for name in ("train", "val")}
        for spec in specs
    }
    loop_config = {"settings": asdict(fit.model), "seed": run.config.seed, "ops": list(run.config.space.ops),
                   "threads": max(1, int(res.num_cpus)), "data": data}  # fmt: skip
    per_worker = {"CPU": res.num_cpus, **({"GPU": res.num_gpus} if res.num_gpus else {}), **res.custom}
    trainer = TorchTrainer(
        _train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=fit.num_workers, use_gpu=res.num_gpus > 0, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            name="fit",
            storage_path=str((run.stage("fit") / "ray").resolve()),
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),  # fmt: skip
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise PipelineError(f"the Ray Train job left no checkpoint (error: {result.error})")
    models = {}
    with result.checkpoint.as_directory() as d:
        for i, spec in enumerate(specs):
            model = LatencyPredictor.for_space(run.config.space, fit.model.hidden)
            model.load_state_dict(torch.load(Path(d) / f"predictor_{i}.pt", map_location="cpu", weights_only=True))
            models[spec] = model.eval()
    return models, dict(result.metrics or {})


def score(
    run: RunDir, model: LatencyPredictor, splits: dict[str, Any], reference_ms: float, flops: dict[str, int]
) -> tuple[dict, dict, dict, dict]:
    """Test metrics of the predictor and of each baseline on the same split; the paired
    bootstrap of the predictor's relative errors against the best baseline's; the
    predictor's validation metrics (for the quality gate). ``flops``
    caches FLOPs by arch_id across targets (the same architectures on each)."""
    cfg = run.config
    (xtr, ytr), (xte, yte) = _arrays(splits["train"]), _arrays(splits["test"])
    with torch.no_grad():
        ours = model(xte).numpy()
    groups = group_matrix(cfg.space)
    lut = quality.fit_lut(xtr.numpy(), ytr.numpy())
    lut_op = quality.fit_lut((xtr @ groups).numpy(), ytr.numpy())
    trees = quality.fit_trees(xtr.numpy(), ytr.numpy(), cfg.seed)
    macro, res = cfg.macro(), cfg.data.resolution
    sample = np.random.default_rng(cfg.seed).choice(
        len(splits["train"]), size=min(len(splits["train"]), FLOPS_SAMPLE), replace=False
    )

    def flops_of(frame) -> list[int]:
        for a, g in zip(frame["arch_id"], frame["genotype"]):
            if a not in flops:
                flops[a] = quality.network_flops(Genotype.from_json(g), macro, res)
        return [flops[a] for a in frame["arch_id"]]

    slope, intercept = quality.fit_flops(flops_of(splits["train"].iloc[sample]), ytr.numpy()[sample])
    y = yte.numpy()
    preds = {
        "predictor": ours,
        "lut": lut.predict(xte.numpy()),
        "lut_op": lut_op.predict((xte @ groups).numpy()),
        "trees": trees.predict(xte.numpy()),
        "flops": slope * np.asarray(flops_of(splits["test"]), dtype=float) + intercept,
    }
    scores = {name: quality.regression_metrics(p, y, reference_ms) for name, p in preds.items()}
    best = min((k for k in scores if k != "predictor"), key=lambda k: scores[k]["mape"])
    rel = {k: np.abs(p - y) / y for k, p in preds.items()}
    versus = {**quality.paired_bootstrap(rel["predictor"], rel[best], seed=cfg.seed), "best": best}
    points = {"test_true": y.tolist(), "test_pred": ours.tolist()}
    xva, yva = _arrays(splits["val"])
    with torch.no_grad():
        val = quality.regression_metrics(model(xva).numpy(), yva.numpy(), reference_ms)
    return scores, versus, points, val


def run_fit(run: RunDir, target: str | None = None) -> dict[str, Any]:
    """Fit the predictor of every target of the run (or of the one named ``target``)."""
    t0 = time.perf_counter()
    cfg = run.config
    targets = select_targets(cfg, target, run.hardware_ids())
    ds.check_dataset(dataset_dir(run))
    if not ds.hardware_partitions(dataset_dir(run)):
        raise PipelineError(f"the latency dataset {dataset_dir(run)} is empty (run `lanas measure` first)")
    ids = {t.spec: run.hardware_id(t.spec) for t in targets}
    splits, dropped = {}, {}
    for t in targets:
        splits[t.spec], dropped[t.spec] = load_rows(run, t, ids[t.spec])
        c = {k: len(v) for k, v in splits[t.spec].items()}
        d = dropped[t.spec]
        print(
            f"[fit] {ids[t.spec]}: train/val/test = {c['train']}/{c['val']}/{c['test']} architectures"
            + (
                f"; dropped {d['failed']} failed and {d['nan_zero_or_negative']} NaN/zero/negative rows"
                if any(d.values())
                else ""
            ),
            flush=True,
        )
    print(f"[fit] one Ray Train job, {cfg.fit.num_workers} worker(s), {len(targets)} predictor(s)", flush=True)
    t1 = time.perf_counter()
    models, train_metrics = train_with_ray(run, splits)
    print(f"[fit] Ray Train job {time.perf_counter() - t1:.1f} s", flush=True)
    summary: dict[str, Any] = {"targets": {}}
    metas, flops = {}, {}
    for t in targets:
        metas[t.spec] = _export(
            run, t, ids[t.spec], models[t.spec], splits[t.spec], dropped[t.spec], train_metrics, flops
        )
        summary["targets"][t.spec] = {"hardware": ids[t.spec], "test": metas[t.spec].test}
    summary["wall_s"] = time.perf_counter() - t0
    finish(run, summary)
    return summary


def _export(
    run: RunDir,
    target: Target,
    hw: str,
    model: LatencyPredictor,
    splits: dict[str, Any],
    dropped: dict[str, int],
    train_metrics: dict[str, Any],
    flops: dict[str, int],
) -> PredictorMeta:
    """Score one target's predictor and write ``fit/<hw>/``."""
    cfg = run.config
    reference_ms = float(statistics.median(np.concatenate([splits[k]["ref_latency_ms"].to_numpy() for k in MIN_ROWS])))
    scores, versus, points, val = score(run, model, splits, reference_ms, flops)
    prefix = f"{target.spec}/"
    meta = PredictorMeta(
        layout_version=LAYOUT_VERSION, ops=cfg.space.ops, target=target, hardware=hw, macro=cfg.macro(),
        resolution=cfg.data.resolution, hidden=cfg.fit.model.hidden, reference_ms=reference_ms,
        rows={k: len(v) for k, v in splits.items()}, dropped=dropped, test=scores["predictor"], val=val,
        baselines={k: v for k, v in scores.items() if k != "predictor"},
        versus_best_baseline={k: v for k, v in versus.items() if k != "best"},
        train_metrics={k[len(prefix):]: float(v) for k, v in train_metrics.items()
                       if k.startswith(prefix) and isinstance(v, (int, float))},
    )  # fmt: skip
    _write(run, model, meta, scores, versus, points)
    return meta


def _write(run: RunDir, model: LatencyPredictor, meta: PredictorMeta, scores: dict, versus: dict, points: dict) -> None:
    """``fit/<hw>/``: the predictor, its metrics (JSON and markdown) and scatter plot; one line to the console."""
    hw, val, gate = meta.hardware, meta.val, run.config.fit.max_val_mape
    where = predictor_store.folder(run, hw)
    predictor_store.save(where, model, meta)
    numbers = {"hardware": hw, "rows": meta.rows, "dropped": meta.dropped, "val": val, "test": scores}
    write_atomic(where / "metrics.json", json.dumps({**numbers, "versus_best_baseline": versus}, indent=2))
    write_atomic(where / "metrics.md", metrics_table(hw, scores, meta.rows, gate, val))
    plot_scatter(where / "scatter.png", points, meta.reference_ms, hw, scores["predictor"])
    s = scores["predictor"]
    print(
        f"[fit] {hw}: test MAPE {s['mape']:.2%}, within +-10% {s['within_10pct']:.1%}, Kendall tau "
        f"{s['kendall_tau']:.3f}; best baseline {versus['best']} {scores[versus['best']]['mape']:.2%} "
        f"({quality.verdict(versus)}: difference {versus['mean']:+.2%}, "
        f"95% CI [{versus['lo']:+.2%}, {versus['hi']:+.2%}]); "
        f"gate (validation MAPE {val['mape']:.2%} <= {gate:.0%}): {'pass' if val['mape'] <= gate else 'FAIL'}",
        flush=True,
    )


def side_by_side(run: RunDir, metas: dict[str, PredictorMeta]) -> str:
    """``fit/metrics.md``: one line per target."""
    lines = [
        "# Latency predictors, one per target",
        "",
        "Test split by arch_id hash (the same architectures on every target). *vs best baseline*: mean "
        "difference of the relative errors on the same test architectures, with a 95 % paired-bootstrap "
        "interval; an interval holding 0 is a tie within the noise of the test set. *vs additive LUT*: the "
        "same against the per-(edge group, op) lookup table, which is what the MLP term adds to "
        "(it helps where latency is not additive).",
        "",
        "The quality gate decides on the *validation* MAPE (the test split is only reported).",
        "",
        "| target | hardware | rows (train/val/test) | MAPE | within ±10 % | Kendall τ | best baseline | "
        "vs best baseline | vs additive LUT | val MAPE | gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    gate = run.config.fit.max_val_mape
    lines += [_transferred_line(spec, m, gate) if m.transferred_from else _fitted_line(spec, m, gate)
              for spec, m in metas.items()]  # fmt: skip
    lines.append("")
    for m in metas.values():
        if m.transferred_from:
            continue
        text = (predictor_store.folder(run, m.hardware) / "metrics.md").read_text(encoding="utf-8")
        lines.append(text.replace("# Latency predictor", "## Latency predictor"))
    return "\n".join(lines)


def _transferred_line(spec: str, m: PredictorMeta, gate: float) -> str:
    t = m.transferred_from
    return (
        f"| {spec} | `{m.hardware}` | {m.rows['train']}/0/{m.rows['test']} | "
        f"{_pct(m.test.get('mape'))} | {_pct(m.test.get('within_10pct'), '.1%')} | "
        f"{_num(m.test.get('kendall_tau'))} | transferred from `{t['source']}` with {t['samples']} "
        f"samples ({t['model']}) | — | — | {_pct(m.val.get('mape'))} (leave-one-out) | {_gate(m, gate)} |"
    )


def _fitted_line(spec: str, m: PredictorMeta, gate: float) -> str:
    best = min(m.baselines, key=lambda k: m.baselines[k]["mape"])
    v = m.versus_best_baseline
    lut = m.baselines["lut_op"]["mape"] - m.test["mape"]
    return (
        f"| {spec} | `{m.hardware}` | {m.rows['train']}/{m.rows['val']}/{m.rows['test']} | "
        f"{m.test['mape']:.2%} | {m.test['within_10pct']:.1%} | {m.test['kendall_tau']:.3f} | "
        f"{best} {m.baselines[best]['mape']:.2%} | {quality.verdict(v)} ({v['mean']:+.2%}, "
        f"[{v['lo']:+.2%}, {v['hi']:+.2%}]) | {'-' if lut >= 0 else '+'}{abs(lut):.2%} | "
        f"{_pct(m.val.get('mape'))} | {_gate(m, gate)} |"
    )


def _pct(x: float | None, spec: str = ".2%") -> str:
    return "—" if x is None else format(x, spec)


def _gate(m: PredictorMeta, gate: float) -> str:
    mape = m.val.get("mape")
    return "pass" if mape is not None and mape <= gate else "FAIL"


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def finish(run: RunDir, summary: dict[str, Any]) -> None:
    """Rewrite ``fit/metrics.md`` over every stored predictor; mark the stage done once
    every target has one."""
    metas = predictor_store.stored_metas(run)
    write_atomic(run.stage("fit") / "metrics.md", side_by_side(run, metas))
    if len(metas) == len(run.config.targets):
        run.mark_done("fit", summary)


def metrics_table(
    hw: str, scores: dict[str, dict[str, float]], counts: dict[str, int], gate: float, val: dict[str, float]
) -> str:
    verdict = "pass" if val["mape"] <= gate else "FAIL"
    lines = [
        f"# Latency predictor on `{hw}`",
        "",
        f"Held-out test set: {counts['test']} architectures (train {counts['train']}, val {counts['val']}), "
        f"split by arch_id hash. Quality gate, decided on validation: MAPE {val['mape']:.2%} <= {gate:.0%}: "
        f"{verdict}. The test rows below are reported, never used to decide.",
        "",
        "| model | MAPE | RMSE (ms) | within +-5% | within +-10% | Kendall tau | Spearman rho |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, v in scores.items():
        lines.append(
            f"| {NAMES[k]} | {v['mape']:.2%} | {v['rmse_ms']:.4f} | {v['within_5pct']:.1%} | "
            f"{v['within_10pct']:.1%} | {v['kendall_tau']:.3f} | {v['spearman_rho']:.3f} |"
        )
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
    ax.set(
        xlim=(lo, hi),
        ylim=(lo, hi),
        xlabel="measured latency (ms)",
        ylabel="predicted latency (ms)",
        title=f"{hw}\nMAPE {s['mape']:.2%}, tau {s['kendall_tau']:.3f}",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def predict_genotypes(run_dir: str, genotypes_file: str, target: str | None = None) -> list[str]:
    """One JSON line per (genotype, target): predicted ratio and ms with each target's predictor."""
    run = RunDir.existing(run_dir)
    cfg = run.config
    gs = read_jsonl(genotypes_file, cfg.space.ops)
    x = torch.stack([encode_genotype(g, cfg.space) for g in gs])
    out = []
    for t in select_targets(cfg, target, run.hardware_ids()):
        stored = predictor_store.load_for(run, t, gate=False)
        for g, r in zip(gs, stored.predict_ratio(x).tolist()):
            out.append(
                json.dumps(
                    {
                        "arch_id": g.arch_id,
                        "target": t.spec,
                        "hardware": stored.meta.hardware,
                        "predicted_latency_ratio": round(r, 6),
                        "predicted_latency_ms": round(r * stored.reference_ms, 6),
                    }
                )
            )
    return out
