"""Stage 3 -- ``lanas search``: one Ray Tune sweep over target x (lambda or budget) x seed.

Each trial runs :func:`lanas.search.search` with the frozen, quality-gated predictor of
its target (stage 2). lambda = 0 ignores latency, so it is the same search for every
target: it runs once per seed and serves them all. A latency budget
(``search.budgets_ms``, ``--budget-ms``) is a trial of its own that adapts lambda until
the derived architecture is predicted inside the budget (:mod:`lanas.budget`); a budget
no architecture of the space can meet is refused before anything runs. The stage is
incremental: trials already in ``results.jsonl`` are kept and not run again, so budgets
can be added to a finished run. The trial's ``on_epoch`` hook reports the epoch's
metrics to Tune with a checkpoint, so a failed trial is retried from its last epoch
(``FailureConfig``) and an interrupted sweep continues with ``--resume``
(``Tuner.restore``) from the state Tune last saved: a trial whose last report came after
that save re-runs its last epoch. results.jsonl holds each trial once, with the epoch it
last resumed from (``resumed_from_epoch``, 0 if it ran through). Tune's result.json is
not a complete history after a restore: Tune copies it back from the storage copy, which
can lag the trial's last reports, so epochs before the restore may be missing or listed
twice. Tune's own outputs (result.json, progress.csv, TensorBoard events) stay under
``search/tune/``; the derived genotypes are collected in ``search/results.jsonl``.

After the sweep, its derived architectures are measured on every target into the
stage-1 dataset and the predictors scored on them (``search/rounds.jsonl``). With
``search.rounds: R`` this is a closed loop: the predictors are refitted with those rows
and the sweep runs again, R more times (earlier rounds in ``search/round<r>/``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lanas import penalty
from lanas.budget import Budget, reachable
from lanas.data import load_splits, loader
from lanas.genotype import Genotype
from lanas.penalty import GRADIENT_METHODS
from lanas.penalty import METHODS as METHOD_ORDER
from lanas.predictor import LatencyPredictor
from lanas.quality import regression_metrics
from lanas.random_search import candidate_pool, pick, score_candidate, score_within_budget
from lanas.search import build_supernet, search
from lanas.target import Target
from lanas.train import TrainSettings
from pipeline import predictor_store
from pipeline.config import RunConfig
from pipeline.errors import PipelineError
from pipeline.fanout import check_resources
from pipeline.fit import arrays, finish, load_rows, run_fit, write_metrics_md
from pipeline.measure import measure_into, missing, probe_same_hardware
from pipeline.predictor_store import StoredPredictor, load_all
from pipeline.rows import dataset_dir, usable_rows
from pipeline.rundir import RunDir, read_jsonl, write_jsonl
from pipeline.staleness import mark_done

CHECKPOINTS_KEPT = 2  # per trial: the last epoch's, and the one before in case the last was cut mid-write
EXPERIMENT = "sweep"  # Tune experiment of the first sweep; later extensions get a suffix


def plan(cfg: RunConfig) -> list[dict[str, Any]]:
    """The trials of the sweep, per seed: lambda = 0 once (target None: it ignores latency,
    so it is the same plain search for every gradient method and target); per lambda > 0
    and method, one trial per target (``ladnas``, ``lut``) or one for all (``flops``); one
    ``random`` trial (its supernet serves every lambda and target); then (target, budget)
    trials of ``ladnas`` with lambda starting at 0."""
    out = []
    methods = cfg.search.methods
    for seed in cfg.search.seeds:
        for lam in cfg.search.lambdas:
            for method in [m for m in methods if m in GRADIENT_METHODS] if lam else ["ladnas"]:
                specs = [None] if lam == 0 or method == "flops" else [t.spec for t in cfg.targets]
                out += [{"method": method, "target": spec, "lam": float(lam), "seed": int(seed), "budget_ms": None}
                        for spec in specs]  # fmt: skip
        if "random" in methods:
            out.append({"method": "random", "target": None, "lam": None, "seed": int(seed), "budget_ms": None})
        out += [{"method": "ladnas", "target": spec, "lam": 0.0, "seed": int(seed), "budget_ms": t}
                for spec, t in cfg.search.budget_list()]  # fmt: skip
    return out


def method_of(row: dict[str, Any]) -> str:
    """A trial's or row's method (rows written before methods existed are ``ladnas``)."""
    return row.get("method") or "ladnas"


def trial_key(trial: dict[str, Any]) -> tuple:
    """What identifies a trial (a budget trial's final lambda is a result, not a key; every
    row a random trial picked shares the trial's key)."""
    method = method_of(trial)
    if method == "random":
        return ("random", trial["seed"])
    if trial.get("budget_ms") is not None:
        return (trial["target"], "budget", float(trial["budget_ms"]), trial["seed"])
    key = (trial["target"] or "", "lam", float(trial["lam"]), trial["seed"])
    return key if method == "ladnas" else (method, *key)


def trial_name(trial: dict[str, Any]) -> str:
    method = method_of(trial)
    prefix = "" if method == "ladnas" else f"{method},"
    if method == "random" and trial["lam"] is None:
        return f"search[random,seed={trial['seed']}]"
    where = f"{trial['target']}," if trial["target"] else ""
    what = f"budget={trial['budget_ms']:g}ms" if trial.get("budget_ms") is not None else f"lam={trial['lam']:g}"
    return f"search[{prefix}{where}{what},seed={trial['seed']}]"


def penalty_key(trial: dict[str, Any], cfg: RunConfig) -> str:
    """The penalty model a gradient trial minimises: ``<method>:<target spec>`` (lambda = 0
    reports the first target's predicted latency; it does not steer the search)."""
    method = method_of(trial)
    if method == "flops":
        return "flops:"
    return f"{method if trial['lam'] else 'ladnas'}:{trial['target'] or cfg.targets[0].spec}"


RANDOM_STATE = "random_scored.json"  # a random trial's checkpoint: the candidates it has scored


def _restored() -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """What the trial's last checkpoint holds: a gradient trial's search state, or the
    candidates a random trial has scored (None where there is none)."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, None
    with checkpoint.as_directory() as d:
        if (Path(d) / RANDOM_STATE).is_file():
            return None, json.loads((Path(d) / RANDOM_STATE).read_text())
        return torch.load(Path(d) / "search_state.pt", map_location="cpu", weights_only=True), None


def _report(metrics: dict[str, Any], files: dict[str, Any]) -> None:
    """Report to Tune with a checkpoint of ``files`` (name -> tensor dict, or JSON-able)."""
    from ray import tune

    with tempfile.TemporaryDirectory() as tmp:
        for name, obj in files.items():
            if name.endswith(".pt"):
                torch.save(obj, Path(tmp) / name)
            else:
                (Path(tmp) / name).write_text(json.dumps(obj))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _trainable(config: dict[str, Any], cfg: RunConfig, trials: list[dict[str, Any]], penalties: dict) -> None:
    """One Tune trial: a thin wrapper around lanas.search.search (lanas.random_search for
    the random method). ``penalties``: key -> (state_dict, hidden, reference_ms, unit)."""
    import logging

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no "Checkpoint successfully created" per epoch
    torch.set_num_threads(max(1, int(cfg.search.resources.num_cpus)))
    trial = trials[int(config["trial"])]
    device = "cuda" if cfg.search.resources.num_gpus > 0 and torch.cuda.is_available() else "cpu"
    state, scored = _restored()
    if method_of(trial) == "random":
        return _random_trial(trial, cfg, penalties, device, scored)
    seed, s = trial["seed"], cfg.search.settings
    splits = load_splits(cfg.data)
    train, val = loader(splits.train, s.batch_size, True, seed), loader(splits.val, s.batch_size, True, seed + 1)
    torch.manual_seed(seed)
    net = build_supernet(cfg.space, cfg.macro(), s)
    resumed_from = 0 if state is None else int(state["epoch"])
    key = penalty_key(trial, cfg)
    reference, unit = penalties[key][2], penalties[key][3]

    def on_epoch(metrics: dict[str, Any], snapshot: dict[str, Any]) -> None:
        report = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        report[f"predicted_{unit}"] = metrics["predicted_latency_ratio"] * reference
        _report({**report, "seed": seed, "resumed_from_epoch": resumed_from}, {"search_state.pt": snapshot})

    budget = None if trial["budget_ms"] is None else Budget(trial["budget_ms"] / reference, cfg.search.budget)
    search(net, LatencyPredictor.from_state(*penalties[key][:2]), train, val, s, trial["lam"], device=device,
           on_epoch=on_epoch, state=state, seed=seed, budget=budget)  # fmt: skip


def _random_trial(
    trial: dict[str, Any], cfg: RunConfig, penalties: dict, device: str, scored: list[dict[str, Any]] | None
) -> None:
    """A random trial: candidates of ``search.settings``' network size trained from scratch for
    ``random_epochs`` on the train split, scored on val, within the trial's ``budget_s``;
    checkpointed after each candidate; then the picks per target and lambda."""
    from ray import tune

    seed, s = trial["seed"], cfg.search.settings
    splits = load_splits(cfg.data)
    macro = dataclasses.replace(cfg.macro(), layers=s.layers, channels=s.channels)
    proxy = TrainSettings(epochs=cfg.search.random_epochs, batch_size=s.batch_size, lr=cfg.evaluate.train.lr)

    def score(g: Genotype) -> dict[str, Any]:
        torch.manual_seed(seed)
        train, val = loader(splits.train, s.batch_size, True, seed), loader(splits.val, s.batch_size, False)
        return score_candidate(g, macro, train, val, proxy, device)

    def on_candidate(done: list[dict[str, Any]]) -> None:
        _report({"done": False, "seed": seed, "candidates_scored": len(done)}, {RANDOM_STATE: done})

    pool = candidate_pool(cfg.space, cfg.search.random_candidates, seed)
    scored = score_within_budget(pool, score, trial["budget_s"], scored, on_candidate)
    ladnas = {k.split(":", 1)[1]: v for k, v in penalties.items() if k.startswith("ladnas:")}
    picks = pick(scored, cfg.space, {k: LatencyPredictor.from_state(*v[:2]) for k, v in ladnas.items()},
                 list(cfg.search.lambdas))  # fmt: skip
    for p in picks:
        p["predicted_latency_ms"] = p["predicted_latency_ratio"] * ladnas[p["target"] or cfg.targets[0].spec][2]
    tune.report({"done": True, "seed": seed, "picks": json.dumps(picks), "epoch": cfg.search.random_epochs})


def penalties(run: RunDir, stored: dict[str, StoredPredictor]) -> dict[str, tuple[dict, tuple[int, ...], float, str]]:
    """Key -> (state_dict, hidden, reference, unit: ``latency_ms`` or ``mflops``) of every penalty model the sweep
    needs: each target's stored predictor (``ladnas:<spec>``), its lookup table fitted on
    the predictor's training rows (``lut:<spec>``), the FLOPs table (``flops:``)."""

    cfg = run.config
    out = {
        f"ladnas:{spec}": (p.model.state_dict(), p.meta.hidden, p.reference_ms, "latency_ms")
        for spec, p in stored.items()
    }
    if "lut" in cfg.search.methods:
        for t in cfg.targets:
            x, y = arrays(load_rows(run, t, stored[t.spec].meta.hardware)[0]["train"])
            out[f"lut:{t.spec}"] = (
                penalty.lut_table(cfg.space, x, y).state_dict(),
                (),
                stored[t.spec].reference_ms,
                "latency_ms",
            )
    if "flops" in cfg.search.methods:
        table, worst = penalty.flops_table(cfg.space, cfg.macro(), cfg.data.resolution)
        print(f"[search] FLOPs table of the deployed network: median {float(table.typical):.3g} MFLOPs, "
              f"exact to {worst:.1e}", flush=True)  # fmt: skip
        out["flops:"] = (table.state_dict(), (), 1.0, "mflops")
    return out


def loggers(names: tuple[str, ...], mlruns: Path, experiment: str) -> list:
    """Tune's logger callbacks for ``search.loggers`` (Tune's result.json always)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    out = [JsonLoggerCallback()]
    if "csv" in names:
        out.append(CSVLoggerCallback())
    if "tensorboard" in names:
        out.append(TBXLoggerCallback())
    if "mlflow" in names:
        if importlib.util.find_spec("mlflow") is None:
            raise PipelineError("search.loggers has mlflow but MLflow is not installed: pip install 'lanas[mlflow]'")
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        out.append(MLflowLoggerCallback(tracking_uri=mlruns.resolve().as_uri(), experiment_name=experiment))
    return out


def _tuner(run: RunDir, trials: list[dict[str, Any]], stored: dict, resume: bool, verbose: bool, experiment: str):
    from ray import tune

    cfg = run.config
    storage = (run.stage("search") / "tune").resolve()
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, cfg=cfg, trials=trials, penalties=penalties(run, stored)),
        cfg.search.resources.as_bundle(),
    )
    path = storage / experiment
    # Tune's new console output prints its experiment box even at verbose=0; the classic one prints nothing
    os.environ["RAY_AIR_NEW_OUTPUT"] = "1" if verbose else "0"
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # the loggers are search.loggers'
    callbacks = loggers(cfg.search.loggers, run.stage("search") / "mlruns", cfg.name)
    if tune.Tuner.can_restore(str(path)):
        if not resume:
            raise PipelineError(f"an interrupted sweep exists in {path}; pass --resume to continue it")
        print(f"[search] resuming the sweep in {path}", flush=True)
        return tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(list(range(len(trials))))},
        tune_config=tune.TuneConfig(
            trial_name_creator=lambda t: trial_name(trials[t.config["trial"]]),
            trial_dirname_creator=lambda t: f"trial{t.config['trial']:03d}",
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=experiment,
            storage_path=str(storage),
            verbose=1 if verbose else 0,
            failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures),
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        ),
    )


def measured_ratios(run: RunDir, target: Target, hardware: str) -> list[float]:
    """The usable latency ratios stage 1 measured on ``target`` at this run's setting."""
    return [r["latency_ratio"] for r in usable_rows(run, target, hardware, columns=["status", "latency_ratio"])]


def check_budgets(run: RunDir, stored: dict[str, StoredPredictor]) -> None:
    """Refuse a budget that no architecture is known to meet inside the acceptance window
    (below the fastest corner architecture's prediction and every measured latency), or
    one that every architecture meets (then a lambda = 0 search is the answer)."""
    cfg = run.config
    window = cfg.search.budget.window
    reach: dict[str, tuple[float, float]] = {}
    for spec, t in cfg.search.budget_list():
        p = stored[spec]
        if spec not in reach:
            target = next(t for t in cfg.targets if t.spec == spec)
            lo, hi = reachable(p.predict_ratio, cfg.space, measured_ratios(run, target, p.meta.hardware))
            reach[spec] = (lo * p.reference_ms, hi * p.reference_ms)
        fastest, slowest = reach[spec]
        if t * window[1] < fastest:
            raise PipelineError(
                f"budget {t:g} ms on {spec} is below what the search space reaches there: its fastest known "
                f"architecture takes {fastest:.4g} ms, so the smallest budget is {fastest / window[1]:.4g} ms "
                f"(the search aims at {window[0]:g}-{window[1]:g} x the budget)"
            )
        if t * window[0] > slowest:
            raise PipelineError(
                f"budget {t:g} ms on {spec} is above the slowest known architecture there ({slowest:.4g} ms): "
                "every architecture meets it; search with lambda = 0 instead"
            )


def _row(
    trial: dict[str, Any], m: dict[str, Any], stored: dict[str, StoredPredictor], cfg: RunConfig, path: str
) -> dict[str, Any]:
    """A results.jsonl row of one finished trial (a budget trial's lambda: its final multiplier)."""
    g = Genotype.from_json(m["genotype"], cfg.space.ops)
    ms = m.get("predicted_latency_ms")
    budget = trial["budget_ms"]
    return {
        **trial,
        "method": method_of(trial),
        "lam": float(m["lam"]),
        "hardware": stored[trial["target"]].meta.hardware if trial["target"] else None,
        "arch_id": g.arch_id,
        "genotype": g.to_json(),
        "val_acc": m.get("val_acc"),
        "train_acc": m.get("train_acc"),
        "latency_term": m.get("latency_term"),
        "predicted_latency_ratio": m.get("predicted_latency_ratio"),
        "predicted_latency_ms": ms,
        "predicted_mflops": m.get("predicted_mflops"),
        "epochs": m.get("epoch"),
        "lam_updates": m.get("lam_updates"),
        "resumed_from_epoch": m.get("resumed_from_epoch"),
        "in_window": None if budget is None else bool(Budget(budget, cfg.search.budget).inside(ms)),
        "search_s": m.get("time_total_s"),
        "trial_path": path,
    }


def _random_rows(
    trial: dict[str, Any], m: dict[str, Any], stored: dict[str, StoredPredictor], cfg: RunConfig, path: str
) -> list[dict[str, Any]]:
    """The rows of a random trial: one per (target, lambda) pick (lambda = 0 once, target None);
    ``val_acc`` is the proxy's validation accuracy (``random_epochs`` from scratch)."""
    out = []
    for p in json.loads(m["picks"]):
        g = Genotype.from_json(p["genotype"], cfg.space.ops)
        out.append({
            **trial, "target": p["target"], "lam": p["lam"],
            "hardware": stored[p["target"]].meta.hardware if p["target"] else None,
            "arch_id": g.arch_id, "genotype": g.to_json(), "val_acc": p["proxy_val_acc"],
            "proxy_val_ce": p["proxy_val_ce"], "latency_term": p["latency_term"],
            "predicted_latency_ratio": p["predicted_latency_ratio"], "predicted_latency_ms": p["predicted_latency_ms"],
            "epochs": m.get("epoch"), "candidates": p["candidates"], "proxy_s": p["proxy_s"],
            "budget_s": trial["budget_s"], "search_s": m.get("time_total_s"), "trial_path": path,
        })  # fmt: skip
    return out


def _collect(
    results, trials: list[dict[str, Any]], stored: dict[str, StoredPredictor], cfg: RunConfig
) -> list[dict[str, Any]]:
    """The rows of a finished Tune sweep; one line naming every trial that did not finish."""
    rows, errors = [], []
    for r in results:
        m = r.metrics or {}
        trial = trials[int((r.config or {}).get("trial", -1))]
        finished = "picks" in m if method_of(trial) == "random" else "genotype" in m
        if r.error is not None or not finished or not m.get("done"):
            errors.append(f"{trial_name(trial)}: {str(r.error).splitlines()[0] if r.error else 'did not finish'}")
            continue
        if method_of(trial) == "random":
            rows += _random_rows(trial, m, stored, cfg, r.path)
        else:
            rows.append(_row(trial, m, stored, cfg, r.path))
    if errors:
        raise PipelineError(
            f"{len(errors)} search trial(s) failed after retries: {'; '.join(errors)}; "
            "fix the cause and re-run with --resume"
        )
    return rows


def _announce(cfg: RunConfig, todo: int, kept: int) -> None:
    budgets = [f"{s}={t:g}ms" for s, t in cfg.search.budget_list()]
    methods = cfg.search.methods
    print(
        f"[search] {todo} trials ({kept} already done): targets {[t.spec for t in cfg.targets]} x lambda in "
        f"{list(cfg.search.lambdas)} x seeds {list(cfg.search.seeds)} (lambda = 0 once per seed, shared)"
        + (f" x methods {list(methods)}" if methods != ("ladnas",) else "")
        + (f", budgets {budgets}" if budgets else "")
        + f"; mode {cfg.search.settings.mode}, {cfg.search.settings.epochs} epochs each",
        flush=True,
    )


def _print_row(r: dict[str, Any]) -> None:
    where = f" on {r['target']}" if r["target"] else ""
    budget = ""
    if r.get("budget_ms"):
        window = "inside" if r["in_window"] else "OUTSIDE"
        budget = f", budget {r['budget_ms']:g} ms ({window} its window; lambda ended at {r['lam']:.3g})"
    cost = (f"predicted {r['predicted_latency_ms']:.3f} ms{where}" if r.get("predicted_mflops") is None
            else f"expected {r['predicted_mflops']:.3g} MFLOPs")  # fmt: skip
    acc = "proxy val acc" if method_of(r) == "random" else "val acc"
    print(f"[search] {trial_name(r)}: {cost}{budget}, {acc} {r['val_acc']:.3f}, arch {r['arch_id'][:10]}",
          flush=True)  # fmt: skip


def _sweep(
    run: RunDir, stored: dict[str, StoredPredictor], results_file: Path, experiment: str, resume: bool, verbose: bool
) -> list[dict[str, Any]]:
    """One Tune sweep of the trials of ``plan`` that ``results_file`` lacks; returns all its rows."""
    cfg = run.config
    check_budgets(run, stored)
    kept = read_jsonl(results_file) if results_file.is_file() else []
    done = {trial_key(r) for r in kept}
    trials = [t for t in plan(cfg) if trial_key(t) not in done]
    if not trials:
        print(f"[search] all {len(kept)} trials of this config are in {results_file}; nothing to run", flush=True)
        return kept
    check_resources(*cfg.resource_asks()["search"])
    _announce(cfg, len(trials), len(kept))
    if kept:  # the sweep grows: what was searched, evaluated and reported is incomplete until it finishes
        for stage in ("search", "evaluate", "report"):
            run.clear_done(stage)
    # a checkpoint per epoch is deliberate (resume from the last epoch); silence Tune's frequency warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    name = experiment if not kept else f"{experiment}-{_extension(trials)}"
    new = _run_trials(run, trials, kept, stored, resume, verbose, name)
    rows = sorted(kept + new, key=_order)
    results_file.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(results_file, rows)
    for r in rows:
        _print_row(r)
    return rows


def _run_trials(
    run: RunDir,
    trials: list[dict[str, Any]],
    kept: list[dict[str, Any]],
    stored: dict[str, StoredPredictor],
    resume: bool,
    verbose: bool,
    name: str,
) -> list[dict[str, Any]]:
    """The gradient trials in one Tune run, then the random ones in another: the LA-DNAS
    trials' time is the random trials' budget (:func:`random_budget`). Their rows."""
    cfg = run.config
    gradient = [t for t in trials if method_of(t) != "random"]
    new = []
    if gradient:
        new = _collect(_tuner(run, gradient, stored, resume, verbose, name).fit(), gradient, stored, cfg)
    randoms = [{**t, "budget_s": random_budget(cfg, kept + new, t["seed"])} for t in trials if t not in gradient]
    if randoms:
        budgets = ", ".join(f"seed {t['seed']} {t['budget_s']:.0f} s" for t in randoms)
        print(f"[search] random search: {budgets} of proxy training ({cfg.search.random_epochs} epochs per "
              "candidate, the LA-DNAS sweep's time unless search.random_budget_s is set)", flush=True)  # fmt: skip
        new += _collect(_tuner(run, randoms, stored, resume, verbose, f"{name}-random").fit(), randoms, stored, cfg)
    return new


def random_budget(cfg: RunConfig, rows: list[dict[str, Any]], seed: int) -> float:
    """A random trial's seconds of proxy training: ``search.random_budget_s``, or if 0 the
    time of the seed's LA-DNAS sweep (its lambda = 0 and lambda > 0 trials, summed: each
    ran on the same resources a random trial gets)."""
    if cfg.search.random_budget_s > 0:
        return cfg.search.random_budget_s
    times = [r.get("search_s") for r in rows
             if method_of(r) == "ladnas" and r["seed"] == seed and r.get("budget_ms") is None]  # fmt: skip
    if not times or any(t is None for t in times):
        raise PipelineError(
            f"search.random_budget_s is 0 but seed {seed}'s LA-DNAS trials have no recorded time to match; "
            "set random_budget_s to the seconds a random search may take"
        )
    return float(sum(times))


def _order(r: dict[str, Any]) -> tuple:
    return (METHOD_ORDER.index(method_of(r)), r["target"] or "", r.get("budget_ms") or 0.0, r["lam"], r["seed"])


def results_path(run: RunDir, r: int) -> Path:
    """Round ``r``'s results: the last round's are ``search/results.jsonl`` (what evaluate reads)."""
    last = r == run.config.search.rounds
    return run.path / "search" / ("results.jsonl" if last else f"round{r}/results.jsonl")


def run_search(
    run: RunDir, resume: bool = False, force_predictor: bool = False, progress: bool = True, verbose: bool = False
) -> list[dict[str, Any]]:
    """The sweep, ``search.rounds`` + 1 times: after each round its derived architectures
    are measured on every target (stage-1 code, into the stage-1 dataset, sampler
    ``derived``), the predictor that searched is scored on them (``search/rounds.jsonl``,
    and the ``derived`` line of ``fit/metrics.md``), and before the next round every
    predictor is refitted with them. A round whose derived architectures the stored
    predictors were already trained on is done; an interrupted loop continues there."""

    cfg = run.config
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for r in range(cfg.search.rounds + 1):
        stored = load_all(run, force=force_predictor)
        served = min(p.meta.round for p in stored.values())
        if served > r and results_path(run, r).is_file():  # searched, and the predictors learnt from it
            continue
        if served < r:
            print(f"[search] round {r}: refitting the predictors with the derived architectures of rounds < {r}")
            run_fit(run)
            stored = load_all(run, force=force_predictor)
        if cfg.search.rounds:
            print(f"[search] round {r} of {cfg.search.rounds} (closed loop)", flush=True)
        experiment = EXPERIMENT if r == cfg.search.rounds else f"round{r}-{EXPERIMENT}"
        rows = _sweep(run, stored, results_path(run, r), experiment, resume, verbose)
        measure_derived(run, r, rows, progress)
        record_derived(run, r, rows, stored)
    rows = read_jsonl(results_path(run, cfg.search.rounds))
    mark_done(run, "search", {"trials": len(rows), "rounds": cfg.search.rounds, "wall_s": time.perf_counter() - t0})
    return rows


def _extension(todo: list[dict[str, Any]]) -> str:
    """An extension of a sweep is named by the trials it adds, so an interrupted extension resumes under that name."""
    return hashlib.sha1(json.dumps(sorted(map(str, map(trial_key, todo)))).encode()).hexdigest()[:8]


def measure_derived(run: RunDir, r: int, rows: list[dict[str, Any]], progress: bool) -> None:
    """Measure round ``r``'s derived architectures on every target into the stage-1 dataset (once)."""
    cfg = run.config
    genotypes = list({x["arch_id"]: Genotype.from_json(x["genotype"], cfg.space.ops) for x in rows}.values())
    todo = missing(
        dataset_dir(run), cfg, cfg.targets, {t.spec: run.hardware_id(t.spec) for t in cfg.targets}, genotypes
    )
    if any(todo.values()):  # the cluster is asked for its hardware only when there is something to time
        probe_same_hardware(run, cfg.targets)
        print(f"[search] measuring the {len(genotypes)} architectures round {r} derived, on every target", flush=True)
        origins = {g.arch_id: ("derived", r) for g in genotypes}
        measure_into(run, dataset_dir(run), todo, cfg.measure.max_in_flight, progress, "search.measure", origins)


def _standing(meta: predictor_store.PredictorMeta) -> dict[str, Any]:
    """What a round's line records of the predictor that searched it, beside its derived error."""
    best = meta.best_baseline()
    return {
        "hardware": meta.hardware,
        "model": meta.selection.get("chosen"),
        "train_rows": meta.rows.get("train"),
        "cv_mape": meta.val.get("mape"),
        "test_mape": meta.test.get("mape"),
        "published_mape": meta.ood.get("published", {}).get("predictor", {}).get("mape"),
        "coverage_test_mape": meta.ood.get("test_coverage", {}).get("predictor", {}).get("mape"),
        "best_baseline": best,
        "best_baseline_test_mape": meta.baselines[best]["mape"] if best else None,
    }


def record_derived(run: RunDir, r: int, rows: list[dict[str, Any]], stored: dict[str, StoredPredictor]) -> None:
    """Score the predictors that searched round ``r`` on what it derived: ``search/rounds.jsonl``
    (one line per round and target) and the ``derived-round<r>`` set of each predictor's metadata."""

    cfg = run.config
    wanted = {x["arch_id"] for x in rows}
    log = run.path / "search" / "rounds.jsonl"
    lines = [x for x in (read_jsonl(log) if log.is_file() else []) if x["round"] != r]
    for t in cfg.targets:
        p = stored[t.spec]
        got = [x for x in usable_rows(run, t, p.meta.hardware, ["status", "latency_ratio", "encoding", "sampler",
               "round"]) if x["arch_id"] in wanted]  # fmt: skip
        seen = sum(not (x["sampler"] == "derived" and x["round"] == r) for x in got)  # measured before this round
        if not got:
            continue
        pred = p.predict_ratio(torch.tensor([x["encoding"] for x in got], dtype=torch.float32)).numpy()
        m = regression_metrics(pred, [x["latency_ratio"] for x in got], p.reference_ms)
        meta = dataclasses.replace(p.meta, ood={**p.meta.ood, f"derived-round{r}": {"predictor": m}})
        predictor_store.save_meta(predictor_store.folder(run, meta.hardware), meta)
        write_metrics_md(run, meta)
        lines.append({"round": r, "target": t.spec, "measured_before": seen, **m, **_standing(meta)})
        print(f"[search] round {r}: {t.spec} predictor off by {m['mape']:.2%} (mean |predicted/measured - 1|) on "
              f"the {m['n']} architectures it derived ({seen} of them measured before)", flush=True)  # fmt: skip
    write_jsonl(log, sorted(lines, key=lambda x: (x["round"], x["target"])))
    finish(run)
