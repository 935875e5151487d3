"""Stage 2 -- ``lanas fit``: one Ray Train job fits a latency predictor per target.

For each target, reads its hardware partition of the stage-1 dataset with Ray Data,
keeps the rows of the run's measurement setting, drops failed rows and non-finite or
non-positive latencies (counted), and splits by origin (:func:`split_row`): random
samples train/test by a hash of ``arch_id`` (deterministic, stable as the dataset grows,
the same split on every target; coverage samples' test rows are scored apart), the
architectures a search round derived always train, the published genotypes are only
scored. Two candidates are weighed by k-fold cross-validation over the training rows
(:func:`lanas.quality.select_model`): the additive lookup table (closed form) and
additive + MLP, which one ``TorchTrainer`` job trains data-parallel for every target and
fold, then on all rows (one Train job, not one per target: each costs ~25 s of start-up
here). The chosen predictor is scored beside the lookup-table, tree-ensemble and FLOPs
baselines on the random test split (with a paired bootstrap interval of its MAPE
difference to the best baseline) and on the out-of-distribution sets. Output:
``fit/<hardware id>/`` (predictor, its metadata, ``metrics.md``, ``scatter.png``) and
``fit/metrics.md``, all targets side by side.
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
from lanas.predictor import LatencyPredictor, PredictorSettings, additive_predictor, train_predictor
from lanas.space import SearchSpace
from lanas.target import Target
from pipeline import dataset as ds
from pipeline import predictor_store
from pipeline.errors import PipelineError
from pipeline.fanout import check_resources
from pipeline.measure import select_targets
from pipeline.predictor_store import PredictorMeta
from pipeline.ray_env import quiet_ray_data
from pipeline.rows import dataset_dir
from pipeline.rundir import RunDir, write_atomic
from pipeline.staleness import mark_done

MIN_ROWS = {"train": 10, "test": 5}
COLUMNS = [
    "arch_id",
    "genotype",
    "encoding",
    "status",
    "latency_ms",
    "ref_latency_ms",
    "latency_ratio",
    "sampler",
    "round",
    *ds.SETTING_COLUMNS,
]
REPORTS_PER_FIT = 5  # progress reports to Ray Train per predictor (besides the final one)
FLOPS_SAMPLE = 1000  # training rows whose FLOPs are counted for the FLOPs baseline
NAMES = {
    "predictor": "**lanas predictor** (shipped)",
    "lut": "lookup table per (cell, edge, op)",
    "lut_op": "lookup table per (edge group, op)",
    "trees": "gradient-boosted trees",
    "flops": "FLOPs (linear map)",
}
CANDIDATES = {"additive": "additive lookup table (edge group, op)", "mlp": "additive + MLP"}
# the evaluation sets of a predictor: the random test split, and out of distribution
EVAL_SETS = {
    "test": "random test split (uniform samples)",
    "test_coverage": "coverage test split (Dirichlet op mixtures)",
    "published": "published genotypes (never trained on)",
}


def split_of(arch_id: str, test_fraction: float) -> str:
    u = int(hashlib.sha1(arch_id.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if u < test_fraction else "train"


def split_row(arch_id: str, sampler: str, test_fraction: float) -> str:
    """Where a row serves: random samples split train/test by arch_id hash (coverage
    test rows scored apart), architectures derived by a search round always train, the
    published probes are only ever scored."""
    if sampler == "published":
        return "published"
    if sampler == "derived":
        return "train"
    split = split_of(arch_id, test_fraction)
    return "test_coverage" if split == "test" and sampler == "coverage" else split


def _read_partition(run: RunDir, target: Target, hardware: str):
    """Ray Data read of one target's partition at the run's setting, as pandas."""
    import ray
    from ray.data.expressions import col

    quiet_ray_data()
    part = dataset_dir(run) / f"{ds.PARTITION}={hardware}"
    if not part.is_dir():
        raise PipelineError(
            f"no rows for target {target.spec} ({hardware}) in {dataset_dir(run)} (run `lanas measure` first)"
        )
    match = functools.reduce(operator.and_, (col(c) == v for c, v in run.config.setting(target).columns().items()))
    return ray.data.read_parquet(str(part), columns=COLUMNS, schema=ds.FILE_SCHEMA).filter(expr=match).to_pandas()


def load_rows(run: RunDir, target: Target, hardware: str) -> tuple[dict[str, Any], dict[str, int]]:
    """One target's usable rows by split (see :func:`split_row`), plus counts of what was dropped."""
    rows = _read_partition(run, target, hardware)
    dropped = {"failed": int((rows["status"] != "ok").sum())}
    ok = rows[rows["status"] == "ok"]
    lat, ms = ok["latency_ratio"].astype(float), ok["latency_ms"].astype(float)
    bad = ~np.isfinite(lat) | (lat <= 0) | ~np.isfinite(ms) | (ms <= 0)
    dropped["nan_zero_or_negative"] = int(bad.sum())
    ok = ok[~bad].drop_duplicates("arch_id")
    if len(ok) == 0:
        raise PipelineError(
            f"no usable rows for target {hardware} at this run's measurement setting "
            f"({dropped['failed']} failed, {dropped['nan_zero_or_negative']} NaN/zero/negative)"
        )
    fit = run.config.fit
    samplers = ok["sampler"].fillna("uniform")
    ok = ok.assign(
        sampler=samplers, split=[split_row(a, k, fit.test_fraction) for a, k in zip(ok["arch_id"], samplers)]
    )
    splits = {name: ok[ok["split"] == name] for name in ("train", *EVAL_SETS)}
    splits["train"] = splits["train"].assign(fold=[quality.fold_of(a, fit.folds) for a in splits["train"]["arch_id"]])
    for name, minimum in MIN_ROWS.items():
        if len(splits[name]) < minimum:
            raise PipelineError(
                f"{hardware}: too few rows to split: {len(ok)} usable rows give {len(splits[name])} "
                f"{name} rows (need >= {minimum}); measure more architectures"
            )
    return splits, dropped


def predictor_round(train) -> int:
    """The closed-loop round a predictor serves: one past the last search round whose
    derived architectures it was trained on (0 without any)."""
    rounds = train.loc[train["sampler"] == "derived", "round"].dropna()
    return int(rounds.max()) + 1 if len(rounds) else 0


def arrays(frame) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(np.stack(frame["encoding"].to_numpy()), dtype=torch.float32)
    y = torch.tensor(frame["latency_ratio"].to_numpy(), dtype=torch.float32)
    return x, y


def _train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: the only Ray code around lanas.train_predictor.
    Per target, the MLP candidate is trained once per cross-validation fold (its
    out-of-fold predictions decide model selection) and once on every training row;
    every worker reports the same sequence (reports are collective). Each worker runs
    SGD on its shard (:func:`shard`) and fits the target statistics and the
    additive init on all of them. Training runs its fixed epochs: no early stopping."""
    import logging

    import ray.train

    logging.getLogger().setLevel(logging.WARNING)  # Train logs every report at INFO through the root logger
    torch.set_num_threads(config["threads"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    settings = PredictorSettings(**{**config["settings"], "hidden": tuple(config["settings"]["hidden"])})
    every = max(1, settings.epochs // REPORTS_PER_FIT)
    final, states = {}, {}
    for i, (spec, data) in enumerate(config["data"].items()):

        def on_epoch(epoch: int, metrics: dict[str, float], spec=spec) -> None:
            if (epoch + 1) % every == 0 and epoch + 1 < settings.epochs:
                ray.train.report({"target": spec, **metrics})

        x, y = torch.tensor(data["x"]), torch.tensor(data["y"])
        folds = np.asarray(data["folds"])
        oof = np.full(len(y), np.nan, dtype=np.float32)
        for k in np.unique(folds):
            held = torch.as_tensor(folds == k)
            model, _ = _train_one(config, settings, (x[~held], y[~held]), rank, world)
            with torch.no_grad():
                oof[held.numpy()] = model(x[held]).numpy()
        model, metrics = _train_one(config, settings, (x, y), rank, world, on_epoch)
        final.update({f"{spec}/{k}": v for k, v in metrics.items()})
        final[f"{spec}/train_rows_per_worker"] = len(shard(len(x), rank, world))
        final[f"{spec}/world_size"] = world
        states[i] = {"state": model.state_dict(), "oof": torch.from_numpy(oof)}
    _report_final(final, states, rank)


def _train_one(config, settings, train, rank, world, on_epoch=None) -> tuple[LatencyPredictor, dict[str, float]]:
    """One data-parallel training of the MLP candidate on ``train`` (this worker's shard)."""
    import ray.train.torch

    x, y = train
    torch.manual_seed(config["seed"])  # same initial weights on every worker and every run
    space = SearchSpace(tuple(config["ops"]))
    predictor = LatencyPredictor.for_space(space, settings.hidden, settings.sharing, settings.repeats)
    no_val, mine = (x[:0], y[:0]), shard(len(x), rank, world)
    wrap = ray.train.torch.prepare_model
    metrics = train_predictor(
        predictor, (x[mine], y[mine]), no_val, settings, config["seed"] + rank, on_epoch, wrap, (x, y)
    )
    return predictor.eval(), metrics


def shard(n: int, rank: int, world: int) -> torch.Tensor:
    """Row indices of worker ``rank``'s shard: rows ``rank::world``, wrapped around so that
    every worker holds ``ceil(n / world)`` rows (as torch's DistributedSampler pads). Equal
    shards take equal optimiser steps; unequal ones would leave DDP's all-reduce waiting."""
    per = -(-n // world)
    return torch.arange(rank, per * world, world) % n


def _report_final(final: dict[str, Any], states: dict[int, dict], rank: int) -> None:
    """The last (collective) report; rank 0 attaches the predictors and their
    out-of-fold predictions as the checkpoint."""
    import ray.train

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            for i, state in states.items():
                torch.save(state, Path(tmp) / f"predictor_{i}.pt")
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(final, checkpoint=checkpoint)


def _loop_data(splits: dict[str, dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Per spec, the training rows as the Train loop reads them: features, labels, folds."""
    data = {}
    for spec, split in splits.items():
        x, y = arrays(split["train"])
        data[spec] = {"x": x.numpy(), "y": y.numpy(), "folds": split["train"]["fold"].to_numpy()}
    return data


def train_with_ray(
    run: RunDir, splits: dict[str, dict[str, Any]]
) -> tuple[dict[str, tuple[LatencyPredictor, np.ndarray]], dict[str, Any]]:
    """One TorchTrainer job fitting the MLP candidate for every target spec in ``splits``:
    spec -> (model trained on every training row, its out-of-fold predictions), and the
    job's final metrics. The rows travel as arrays in the loop config (a few MB even at
    100K rows)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    fit = run.config.fit
    res = fit.resources_per_worker
    check_resources(*run.config.resource_asks()["fit"])
    specs = list(splits)
    loop_config = {"settings": asdict(fit.model), "seed": run.config.seed, "ops": list(run.config.space.ops),
                   "threads": max(1, int(res.num_cpus)), "data": _loop_data(splits)}  # fmt: skip
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
            failure_config=ray.train.FailureConfig(max_failures=fit.max_failures),  # a dead worker: restart
        ),  # fmt: skip
    )
    before = set(ray.util.placement_group_table())
    try:
        result = trainer.fit()
    except Exception as exc:  # noqa: BLE001 - Train's errors (a worker or its node lost beyond max_failures)
        _release_placement_groups(before)
        lines = [x.strip() for x in str(exc).splitlines() if x.strip()][:2]
        raise PipelineError(
            f"the Ray Train job fitting the predictors failed ({' '.join(lines) or type(exc).__name__}); "
            "no predictor was written: run `lanas fit` again"
        ) from None
    if result.checkpoint is None:
        raise PipelineError(f"the Ray Train job left no checkpoint (error: {result.error})")
    return _read_models(result.checkpoint, specs, fit.model.hidden), dict(result.metrics or {})


def _read_models(checkpoint, specs: list[str], hidden) -> dict[str, tuple[LatencyPredictor, np.ndarray]]:
    """The Train job's checkpoint: per spec, the model and its out-of-fold predictions."""
    models = {}
    with checkpoint.as_directory() as d:
        for i, spec in enumerate(specs):
            saved = torch.load(Path(d) / f"predictor_{i}.pt", map_location="cpu", weights_only=True)
            models[spec] = (LatencyPredictor.from_state(saved["state"], hidden), saved["oof"].double().numpy())
    return models


def _release_placement_groups(before: set[str]) -> None:
    """Remove the placement groups this job created since ``before`` (the failed Train
    job's). Ray 2.60's Train V2 leaves its worker group's placement group reserved when
    its controller gives up on a dead worker, and a later job in the same Ray would wait
    for those CPUs forever. Placement group ids end with their job's id."""
    import ray
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    job = ray.get_runtime_context().get_job_id()
    for pg_id, info in ray.util.placement_group_table().items():
        if pg_id not in before and pg_id.endswith(job) and info["state"] != "REMOVED":
            remove_placement_group(PlacementGroup(PlacementGroupID(bytes.fromhex(pg_id))))


def select(run: RunDir, mlp: tuple[LatencyPredictor, np.ndarray], train, reference_ms: float):
    """The shipped predictor, chosen by k-fold cross-validation over the training rows
    between the additive lookup table (closed form) and additive + MLP (trained by the
    Ray Train job): :func:`lanas.quality.select_model`. Returns it and the selection record."""
    space, sharing, repeats = run.config.space, run.config.fit.model.sharing, run.config.fit.model.repeats
    x, y = arrays(train)

    def additive(xa, ya, xb):
        with torch.no_grad():
            return additive_predictor(space, torch.as_tensor(xa), torch.as_tensor(ya), sharing, repeats)(
                torch.as_tensor(xb)
            ).numpy()

    oof = {"additive": quality.out_of_fold(additive, x.numpy(), y.numpy(), train["fold"].to_numpy()), "mlp": mlp[1]}
    sel = quality.select_model(oof, y.numpy(), run.config.seed, reference_ms)
    model = additive_predictor(space, x, y, sharing, repeats) if sel["chosen"] == "additive" else mlp[0]
    return model, {**sel, "folds": run.config.fit.folds, "rows": len(y), "sharing": sharing, "repeats": repeats}


def _baselines(run: RunDir, train, flops: dict[str, int]):
    """Name -> predict(frame) of every baseline, fitted on the ``train`` rows. ``flops``
    caches FLOPs by arch_id across targets (the same architectures on each)."""
    cfg = run.config
    xtr, ytr = (t.numpy() for t in arrays(train))
    groups = group_matrix(cfg.space).numpy()
    lut, lut_op, trees = (
        quality.fit_lut(xtr, ytr),
        quality.fit_lut(xtr @ groups, ytr),
        quality.fit_trees(xtr, ytr, cfg.seed),
    )
    macro, res = cfg.macro(), cfg.data.resolution
    sample = np.random.default_rng(cfg.seed).choice(len(train), size=min(len(train), FLOPS_SAMPLE), replace=False)

    def flops_of(frame) -> np.ndarray:
        for a, g in zip(frame["arch_id"], frame["genotype"]):
            if a not in flops:
                flops[a] = quality.network_flops(Genotype.from_json(g), macro, res)
        return np.asarray([flops[a] for a in frame["arch_id"]], dtype=float)

    slope, intercept = quality.fit_flops(flops_of(train.iloc[sample]), ytr[sample])
    x = lambda frame: arrays(frame)[0].numpy()  # noqa: E731
    return {
        "lut": lambda f: lut.predict(x(f)),
        "lut_op": lambda f: lut_op.predict(x(f) @ groups),
        "trees": lambda f: trees.predict(x(f)),
        "flops": lambda f: slope * flops_of(f) + intercept,
    }


def score(run: RunDir, model: LatencyPredictor, splits: dict[str, Any], reference_ms: float, flops: dict[str, int]):
    """Metrics of the shipped predictor and of every baseline on each evaluation set
    (:data:`EVAL_SETS` that have rows): set -> model -> metrics; the paired bootstrap of
    the predictor's relative errors on the random test split against the best baseline's;
    the test points of the scatter plot."""
    models = {"predictor": lambda f: _predict(model, f), **_baselines(run, splits["train"], flops)}
    scores, rel = {}, {}
    for name in (n for n in EVAL_SETS if len(splits[n])):
        y = arrays(splits[name])[1].numpy()
        preds = {k: np.asarray(m(splits[name]), dtype=float) for k, m in models.items()}
        scores[name] = {k: quality.regression_metrics(p, y, reference_ms) for k, p in preds.items()}
        if name == "test":
            rel = {k: np.abs(p - y) / y for k, p in preds.items()}
            points = {"test_true": y.tolist(), "test_pred": preds["predictor"].tolist()}
    best = min((k for k in scores["test"] if k != "predictor"), key=lambda k: scores["test"][k]["mape"])
    versus = {**quality.paired_bootstrap(rel["predictor"], rel[best], seed=run.config.seed), "best": best}
    return scores, versus, points


def _predict(model: LatencyPredictor, frame) -> np.ndarray:
    with torch.no_grad():
        return model(arrays(frame)[0]).numpy()


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
        _print_rows(ids[t.spec], splits[t.spec], dropped[t.spec])
    print(
        f"[fit] one Ray Train job, {cfg.fit.num_workers} worker(s), {len(targets)} target(s) x "
        f"({cfg.fit.folds} cross-validation folds + 1 final fit)",
        flush=True,
    )
    t1 = time.perf_counter()
    models, train_metrics = train_with_ray(run, splits)
    print(f"[fit] Ray Train job {time.perf_counter() - t1:.1f} s", flush=True)
    summary: dict[str, Any] = {"targets": {}}
    flops: dict[str, int] = {}
    for t in targets:
        meta = _export(run, t, ids[t.spec], models[t.spec], splits[t.spec], dropped[t.spec], train_metrics, flops)
        summary["targets"][t.spec] = {"hardware": ids[t.spec], "test": meta.test, "chosen": meta.selection["chosen"]}
    summary["wall_s"] = time.perf_counter() - t0
    finish(run, summary)
    return summary


def _print_rows(hw: str, splits: dict[str, Any], dropped: dict[str, int]) -> None:
    train = splits["train"]
    origin = ", ".join(f"{n} {k}" for k, n in train["sampler"].value_counts().items())
    held = ", ".join(f"{name} {len(splits[name])}" for name in EVAL_SETS if len(splits[name]))
    d = dropped
    print(
        f"[fit] {hw}: {len(train)} training architectures ({origin}); held out: {held}"
        + (
            f"; dropped {d['failed']} failed and {d['nan_zero_or_negative']} NaN/zero/negative rows"
            if any(d.values())
            else ""
        ),
        flush=True,
    )


def _export(
    run: RunDir,
    target: Target,
    hw: str,
    mlp: tuple[LatencyPredictor, np.ndarray],
    splits: dict[str, Any],
    dropped: dict[str, int],
    train_metrics: dict[str, Any],
    flops: dict[str, int],
) -> PredictorMeta:
    """Choose, score and write one target's predictor to ``fit/<hw>/``."""
    cfg = run.config
    reference_ms = float(statistics.median(np.concatenate([f["ref_latency_ms"].to_numpy() for f in splits.values()])))
    model, selection = select(run, mlp, splits["train"], reference_ms)
    scores, versus, points = score(run, model, splits, reference_ms, flops)
    prefix = f"{target.spec}/"
    meta = PredictorMeta(
        layout_version=LAYOUT_VERSION, ops=cfg.space.ops, target=target, hardware=hw, macro=cfg.macro(),
        resolution=cfg.data.resolution, hidden=model.hidden, reference_ms=reference_ms,
        rows={k: len(v) for k, v in splits.items()}, dropped=dropped, test=scores["test"]["predictor"],
        val=selection["cv"][selection["chosen"]],
        baselines={k: v for k, v in scores["test"].items() if k != "predictor"},
        versus_best_baseline={k: v for k, v in versus.items() if k != "best"},
        train_metrics={k[len(prefix):]: float(v) for k, v in train_metrics.items()
                       if k.startswith(prefix) and isinstance(v, (int, float))},
        selection=selection, ood={k: v for k, v in scores.items() if k != "test"},
        round=predictor_round(splits["train"]),
    )  # fmt: skip
    _write(run, model, meta, versus, points)
    return meta


def _write(run: RunDir, model: LatencyPredictor, meta: PredictorMeta, versus: dict, points: dict) -> None:
    """``fit/<hw>/``: the predictor, its metrics (JSON and markdown) and scatter plot; one line to the console."""
    hw, val, gate = meta.hardware, meta.val, run.config.fit.max_val_mape
    where = predictor_store.folder(run, hw)
    predictor_store.save(where, model, meta)
    scores = {"predictor": meta.test, **meta.baselines}
    numbers = {"hardware": hw, "rows": meta.rows, "dropped": meta.dropped, "cross_validated": val, "test": scores}
    write_atomic(where / "metrics.json", json.dumps({**numbers, "versus_best_baseline": versus, "ood": meta.ood,
                                                     "selection": meta.selection}, indent=2))  # fmt: skip
    write_metrics_md(run, meta)
    plot_scatter(where / "scatter.png", points, meta.reference_ms, hw, meta.test)
    s = meta.test
    print(
        f"[fit] {hw}: chose {_label(meta.selection['chosen'], meta.selection)} "
        f"(cross-validated MAPE {val['mape']:.2%}); "
        f"test MAPE {s['mape']:.2%}, Kendall tau {s['kendall_tau']:.3f}; best baseline {versus['best']} "
        f"{meta.baselines[versus['best']]['mape']:.2%} ({quality.verdict(versus)}: difference {versus['mean']:+.2%}, "
        f"95% CI [{versus['lo']:+.2%}, {versus['hi']:+.2%}]); {_ood_phrase(meta)}; "
        f"gate (cross-validated MAPE {val['mape']:.2%} <= {gate:.0%}): {'pass' if val['mape'] <= gate else 'FAIL'}",
        flush=True,
    )


def _ood_phrase(meta: PredictorMeta) -> str:
    parts = [f"{name} {sets['predictor']['mape']:.2%} (n={sets['predictor']['n']})" for name, sets in meta.ood.items()]
    return "out of distribution: " + (", ".join(parts) if parts else "no held-out rows yet")


def write_metrics_md(run: RunDir, meta: PredictorMeta) -> None:
    """``fit/<hw>/metrics.md`` from the stored metadata (rewritten when a search round adds derived rows)."""
    write_atomic(
        predictor_store.folder(run, meta.hardware) / "metrics.md", metrics_table(meta, run.config.fit.max_val_mape)
    )


def side_by_side(run: RunDir, metas: dict[str, PredictorMeta]) -> str:
    """``fit/metrics.md``: one line per target."""
    lines = [
        "# Latency predictors, one per target",
        "",
        "Test split by arch_id hash (the same architectures on every target). *vs best baseline*: mean "
        "difference of the relative errors on the same test architectures, with a 95 % paired-bootstrap "
        "interval; an interval holding 0 is a tie within the noise of the test set.",
        "",
        f"Model selection: {quality.SELECTION_RULE}. The quality gate decides on the chosen model's "
        "cross-validated MAPE; the test split and the out-of-distribution sets are only reported.",
        "",
        "*Out of distribution*: MAPE on the published genotypes and on the architectures the search derived "
        "with this predictor (measured after the search; see each target's table), next to the random test split.",
        "",
        "| target | hardware | rows (train/test) | chosen | test MAPE | within ±10 % | Kendall τ | best baseline | "
        "vs best baseline | published | derived | CV MAPE | gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
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
        f"| {spec} | `{m.hardware}` | {m.rows['train']}/{m.rows['test']} | transferred ({t['model']}) | "
        f"{_pct(m.test.get('mape'))} | {_pct(m.test.get('within_10pct'), '.1%')} | "
        f"{_num(m.test.get('kendall_tau'))} | transferred from `{t['source']}` with {t['samples']} "
        f"samples | — | — | — | {_pct(m.val.get('mape'))} (leave-one-out) | {_gate(m, gate)} |"
    )


def derived_sets(m: PredictorMeta) -> dict[str, dict]:
    """The predictor's scores on architectures derived by searches that used it."""
    return {k: v for k, v in m.ood.items() if k.startswith("derived")}


def _ood_cell(sets: dict | None) -> str:
    return "—" if not sets else f"{sets['predictor']['mape']:.2%} (n={sets['predictor']['n']})"


def _fitted_line(spec: str, m: PredictorMeta, gate: float) -> str:
    best = m.best_baseline()
    v = m.versus_best_baseline
    derived = list(derived_sets(m).values())
    return (
        f"| {spec} | `{m.hardware}` | {m.rows['train']}/{m.rows['test']} | {CANDIDATES[m.selection['chosen']]} | "
        f"{m.test['mape']:.2%} | {m.test['within_10pct']:.1%} | {m.test['kendall_tau']:.3f} | "
        f"{best} {m.baselines[best]['mape']:.2%} | {quality.verdict(v)} ({v['mean']:+.2%}, "
        f"[{v['lo']:+.2%}, {v['hi']:+.2%}]) | {_ood_cell(m.ood.get('published'))} | "
        f"{_ood_cell(derived[-1] if derived else None)} | {_pct(m.val.get('mape'))} | {_gate(m, gate)} |"
    )


def _pct(x: float | None, spec: str = ".2%") -> str:
    return "—" if x is None else format(x, spec)


def _gate(m: PredictorMeta, gate: float) -> str:
    mape = m.val.get("mape")
    return "pass" if mape is not None and mape <= gate else "FAIL"


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def finish(run: RunDir, summary: dict[str, Any] | None = None) -> None:
    """Rewrite ``fit/metrics.md`` over every stored predictor; with ``summary``, mark the
    stage done once every target has one."""
    metas = predictor_store.stored_metas(run)
    write_atomic(run.stage("fit") / "metrics.md", side_by_side(run, metas))
    if summary is not None and len(metas) == len(run.config.targets):
        mark_done(run, "fit", summary)


def _metric_row(label: str, v: dict[str, float]) -> str:
    return (
        f"| {label} | {v['n']} | {v['mape']:.2%} | {v['rmse_ms']:.4f} | {v['within_5pct']:.1%} | "
        f"{v['within_10pct']:.1%} | {_num(v['kendall_tau'])} | {_num(v['spearman_rho'])} |"
    )


def _label(candidate: str, sel: dict[str, Any]) -> str:
    """A candidate's name in metrics.md (whether its table counts merged and repeated ops:
    fits before ``fit.model.sharing`` or ``fit.model.repeats`` did not record it, and had none)."""
    counted = [name for name, key in (("merged", "sharing"), ("repeated", "repeats")) if sel.get(key)]
    return CANDIDATES[candidate] + (f", with {' and '.join(counted)} ops" if counted else "")


def metrics_table(meta: PredictorMeta, gate: float) -> str:
    """``fit/<hw>/metrics.md``: model selection, the random test split with the baselines,
    and the out-of-distribution sets."""
    sel, val = meta.selection, meta.val
    verdict = "pass" if val["mape"] <= gate else "FAIL"
    head = "| model | rows | MAPE | RMSE (ms) | within ±5 % | within ±10 % | Kendall τ | Spearman ρ |"
    rule = "|---|---|---|---|---|---|---|---|"
    lines = [f"# Latency predictor on `{meta.hardware}`", "",
             f"**Model selection** ({sel['folds']}-fold cross-validation over {sel['rows']} training architectures, "
             f"folds by arch_id hash): {sel['rule']}. Chosen: **{_label(sel['chosen'], sel)}**. Quality gate on its "
             f"cross-validated MAPE {val['mape']:.2%} <= {gate:.0%}: {verdict}.", "", head, rule]  # fmt: skip
    lines += [_metric_row(f"{_label(k, sel)} (cross-validated)", v) for k, v in sel["cv"].items()]
    for k, d in sel["versus"].items():
        lines.append(f"\n{CANDIDATES[k]} minus {CANDIDATES[d['against']]}, relative error: {d['mean']:+.2%} "
                     f"(95 % CI [{d['lo']:+.2%}, {d['hi']:+.2%}], {d['n']} architectures).")  # fmt: skip
    lines += ["", f"**{EVAL_SETS['test']}**, reported only, never used to decide:", "", head, rule]
    lines += [_metric_row(NAMES[k], v) for k, v in {"predictor": meta.test, **meta.baselines}.items()]
    lines += ["", "**Out of distribution** (the shipped predictor, and the (edge group, op) lookup table on the "
              "same rows):", "",
              "| set | rows | predictor MAPE | lookup table (edge group, op) MAPE | predictor Kendall τ |",
              "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {EVAL_SETS['test']} | {meta.test['n']} | {meta.test['mape']:.2%} | "
              f"{meta.baselines['lut_op']['mape']:.2%} | {_num(meta.test['kendall_tau'])} |"]  # fmt: skip
    for name, sets in meta.ood.items():
        label = EVAL_SETS.get(name) or f"architectures derived by search {name.removeprefix('derived-')}"
        p, lut = sets["predictor"], sets.get("lut_op", {}).get("mape")
        lines.append(f"| {label} | {p['n']} | {p['mape']:.2%} | {_pct(lut)} | {_num(p['kendall_tau'])} |")
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
