"""The Ray Train job: one ``TorchTrainer`` fits every target's MLP for every fold and on all rows."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lanas.predictor import LatencyPredictor, PredictorSettings, train_predictor
from lanas.space import SearchSpace

from ..errors import PipelineError
from ..fanout import check_resources
from ..rundir import RunDir
from .data import arrays

REPORTS_PER_FIT = 5  # progress reports to Ray Train per predictor (besides the final one)


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
