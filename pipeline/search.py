"""Stage 3 -- ``lanas search``: a Ray Tune sweep over lambda (and seeds).

Each trial runs :func:`lanas.search.search` with the frozen, quality-gated predictor
of stage 2; its ``on_epoch`` hook reports the epoch's metrics to Tune with a
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
from pipeline.fit import load_checked
from pipeline.rundir import RunDir, write_jsonl

EXPERIMENT = "sweep"


def trial_name(lam: float, seed: int) -> str:
    return f"search[lam={lam:g},seed={seed}]"


def _trainable(config: dict[str, Any], cfg: RunConfig, predictor_state: dict, predictor_meta: dict) -> None:
    """One Tune trial: a thin wrapper around lanas.search.search."""
    from ray import tune

    threads = max(1, int(cfg.search.resources.num_cpus))
    torch.set_num_threads(threads)
    lam, seed = float(config["lam"]), int(config["seed"])
    device = "cuda" if cfg.search.resources.num_gpus > 0 and torch.cuda.is_available() else "cpu"
    predictor = LatencyPredictor.for_space(cfg.space, tuple(predictor_meta["hidden"]))
    predictor.load_state_dict(predictor_state)
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
    reference_ms = float(predictor_meta["reference_ms"])

    def on_epoch(metrics: dict[str, Any], snapshot: dict[str, Any]) -> None:
        report = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        report["predicted_latency_ms"] = metrics["predicted_latency"] * reference_ms
        report["seed"] = seed
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(snapshot, Path(tmp) / "search_state.pt")
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))

    search(net, predictor, train, val, s, lam, device=device, on_epoch=on_epoch, state=state)


def _tuner(run: RunDir, stored, resume: bool, progress: bool):
    from ray import tune

    cfg = run.config
    storage = (run.stage("search") / "tune").resolve()
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, cfg=cfg, predictor_state=stored.model.state_dict(), predictor_meta=stored.meta),
        cfg.search.resources.as_bundle())
    path = storage / EXPERIMENT
    if tune.Tuner.can_restore(str(path)):
        if not resume:
            raise PipelineError(f"an interrupted sweep exists in {path}; pass --resume to continue it")
        print(f"[search] resuming the sweep in {path}", flush=True)
        return tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space={"lam": tune.grid_search(list(cfg.search.lambdas)), "seed": tune.grid_search(list(cfg.search.seeds))},
        tune_config=tune.TuneConfig(trial_name_creator=lambda t: trial_name(t.config["lam"], t.config["seed"]),
                                    trial_dirname_creator=lambda t: f"lam={t.config['lam']:g}_seed={t.config['seed']}"),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=str(storage), verbose=1 if progress else 0,
            failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )


def run_search(run: RunDir, resume: bool = False, force_predictor: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    cfg = run.config
    stored = load_checked(run, force=force_predictor)
    n = len(cfg.search.lambdas) * len(cfg.search.seeds)
    print(f"[search] {n} trials (lambda in {list(cfg.search.lambdas)}, seeds {list(cfg.search.seeds)}), "
          f"mode {cfg.search.settings.mode}, {cfg.search.settings.epochs} epochs each", flush=True)
    t0 = time.perf_counter()
    # a checkpoint per epoch is deliberate (resume from the last epoch); silence Tune's frequency warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    results = _tuner(run, stored, resume, progress).fit()
    rows, errors = [], []
    for r in results:
        m = r.metrics or {}
        cfg_t = r.config or {}
        if r.error is not None or "genotype" not in m or m.get("epoch") != cfg.search.settings.epochs:
            errors.append(f"{trial_name(cfg_t.get('lam', float('nan')), cfg_t.get('seed', -1))}: "
                          f"{str(r.error).splitlines()[0] if r.error else 'did not finish'}")
            continue
        g = Genotype.from_json(m["genotype"], cfg.space.ops)
        rows.append({"lam": float(cfg_t["lam"]), "seed": int(cfg_t["seed"]), "arch_id": g.arch_id, "genotype": g.to_json(),
                     "val_acc": m.get("val_acc"), "train_acc": m.get("train_acc"), "latency_term": m.get("latency_term"),
                     "predicted_latency_ratio": m.get("predicted_latency"), "predicted_latency_ms": m.get("predicted_latency_ms"),
                     "trial_path": r.path})
    if errors:
        raise PipelineError(f"{len(errors)} search trial(s) failed after retries: {'; '.join(errors)}; "
                            "fix the cause and re-run with --resume")
    rows.sort(key=lambda r: (r["lam"], r["seed"]))
    write_jsonl(run.stage("search") / "results.jsonl", rows)
    for r in rows:
        print(f"[search] lambda={r['lam']:g} seed={r['seed']}: predicted {r['predicted_latency_ms']:.3f} ms, "
              f"val acc {r['val_acc']:.3f}, arch {r['arch_id'][:10]}", flush=True)
    run.mark_done("search", {"trials": len(rows), "wall_s": time.perf_counter() - t0})
    return rows


