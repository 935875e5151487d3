"""Stage 3 -- ``lanas search``: one Ray Tune sweep over target x lambda x seed.

Each trial runs :func:`lanas.search.search` with the frozen, quality-gated predictor
of its target (stage 2). lambda = 0 ignores latency, so it is the same search for every
target: it runs once per seed and serves them all. The trial's ``on_epoch`` hook reports the epoch's metrics to Tune with a
checkpoint, so a failed trial is retried from its last epoch (``FailureConfig``) and an
interrupted sweep continues with ``--resume`` (``Tuner.restore``). Tune's own outputs
(result.json, progress.csv, TensorBoard events) stay under ``search/tune/``; the
derived genotypes are collected in ``search/results.jsonl``.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lanas.data import load_splits, loader
from lanas.genotype import Genotype
from lanas.predictor import LatencyPredictor
from lanas.search import build_supernet, search
from pipeline.config import RunConfig
from pipeline.errors import PipelineError
from pipeline.fanout import check_resources
from pipeline.predictor_store import load_all
from pipeline.rundir import RunDir, write_jsonl

EXPERIMENT = "sweep"


def plan(cfg: RunConfig) -> list[dict[str, Any]]:
    """The trials of the sweep: (target spec, lambda, seed); lambda = 0 once per seed, target None."""
    out = []
    for seed in cfg.search.seeds:
        for lam in cfg.search.lambdas:
            specs = [None] if lam == 0 else [t.spec for t in cfg.targets]
            out += [{"target": spec, "lam": float(lam), "seed": int(seed)} for spec in specs]
    return out


def trial_name(trial: dict[str, Any]) -> str:
    where = f"{trial['target']}," if trial["target"] else ""
    return f"search[{where}lam={trial['lam']:g},seed={trial['seed']}]"


def _trainable(config: dict[str, Any], cfg: RunConfig, trials: list[dict[str, Any]],
               predictors: dict[str, tuple[dict, tuple[int, ...], float]]) -> None:
    """One Tune trial: a thin wrapper around lanas.search.search."""
    import logging

    from ray import tune

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no "Checkpoint successfully created" per epoch
    threads = max(1, int(cfg.search.resources.num_cpus))
    torch.set_num_threads(threads)
    trial = trials[int(config["trial"])]
    lam, seed = trial["lam"], trial["seed"]
    device = "cuda" if cfg.search.resources.num_gpus > 0 and torch.cuda.is_available() else "cpu"
    # lambda = 0 reports the first target's predicted latency; it does not steer the search
    weights, hidden, reference_ms = predictors[trial["target"] or cfg.targets[0].spec]
    predictor = LatencyPredictor.for_space(cfg.space, hidden)
    predictor.load_state_dict(weights)
    s = cfg.search.settings
    splits = load_splits(cfg.data)
    train, val = loader(splits.train, s.batch_size, True, seed), loader(splits.val, s.batch_size, True, seed + 1)
    torch.manual_seed(seed)
    net = build_supernet(cfg.space, cfg.macro(), s)
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / "search_state.pt", map_location="cpu", weights_only=True)

    def on_epoch(metrics: dict[str, Any], snapshot: dict[str, Any]) -> None:
        report = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        report["predicted_latency_ms"] = metrics["predicted_latency"] * reference_ms
        report["seed"] = seed
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(snapshot, Path(tmp) / "search_state.pt")
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))

    search(net, predictor, train, val, s, lam, device=device, on_epoch=on_epoch, state=state, seed=seed)


def _tuner(run: RunDir, trials: list[dict[str, Any]], stored: dict, resume: bool, progress: bool):
    from ray import tune

    cfg = run.config
    storage = (run.stage("search") / "tune").resolve()
    predictors = {spec: (p.model.state_dict(), p.meta.hidden, p.reference_ms) for spec, p in stored.items()}
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, cfg=cfg, trials=trials, predictors=predictors),
        cfg.search.resources.as_bundle())
    path = storage / EXPERIMENT
    if tune.Tuner.can_restore(str(path)):
        if not resume:
            raise PipelineError(f"an interrupted sweep exists in {path}; pass --resume to continue it")
        print(f"[search] resuming the sweep in {path}", flush=True)
        return tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(list(range(len(trials))))},
        tune_config=tune.TuneConfig(trial_name_creator=lambda t: trial_name(trials[t.config["trial"]]),
                                    trial_dirname_creator=lambda t: f"trial{t.config['trial']:03d}"),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=str(storage), verbose=1 if progress else 0,
            failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )


def run_search(run: RunDir, resume: bool = False, force_predictor: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    cfg = run.config
    stored = load_all(run, force=force_predictor)
    check_resources(*cfg.resource_asks()["search"])
    trials = plan(cfg)
    print(f"[search] {len(trials)} trials: targets {[t.spec for t in cfg.targets]} x lambda in "
          f"{list(cfg.search.lambdas)} x seeds {list(cfg.search.seeds)} (lambda = 0 once per seed, shared); "
          f"mode {cfg.search.settings.mode}, {cfg.search.settings.epochs} epochs each", flush=True)
    t0 = time.perf_counter()
    # a checkpoint per epoch is deliberate (resume from the last epoch); silence Tune's frequency warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    results = _tuner(run, trials, stored, resume, progress).fit()
    rows, errors = [], []
    for r in results:
        m = r.metrics or {}
        trial = trials[int((r.config or {}).get("trial", -1))]
        if r.error is not None or "genotype" not in m or m.get("epoch") != cfg.search.settings.epochs:
            errors.append(f"{trial_name(trial)}: {str(r.error).splitlines()[0] if r.error else 'did not finish'}")
            continue
        g = Genotype.from_json(m["genotype"], cfg.space.ops)
        hardware = stored[trial["target"]].meta.hardware if trial["target"] else None
        rows.append({**trial, "hardware": hardware, "arch_id": g.arch_id, "genotype": g.to_json(),
                     "val_acc": m.get("val_acc"), "train_acc": m.get("train_acc"), "latency_term": m.get("latency_term"),
                     "predicted_latency_ratio": m.get("predicted_latency"), "predicted_latency_ms": m.get("predicted_latency_ms"),
                     "trial_path": r.path})
    if errors:
        raise PipelineError(f"{len(errors)} search trial(s) failed after retries: {'; '.join(errors)}; "
                            "fix the cause and re-run with --resume")
    rows.sort(key=lambda r: (r["target"] or "", r["lam"], r["seed"]))
    write_jsonl(run.stage("search") / "results.jsonl", rows)
    for r in rows:
        print(f"[search] {trial_name(r)}: predicted {r['predicted_latency_ms']:.3f} ms"
              f"{' on ' + r['target'] if r['target'] else ''}, val acc {r['val_acc']:.3f}, arch {r['arch_id'][:10]}",
              flush=True)
    run.mark_done("search", {"trials": len(rows), "wall_s": time.perf_counter() - t0})
    return rows


