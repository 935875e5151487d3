"""Stage 3 as ``lanas search`` runs it: the Tune sweep of the trials ``results.jsonl`` lacks, round by round."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

from ..closed_loop import measure_derived, record_derived, results_path
from ..config import RunConfig
from ..errors import PipelineError
from ..fanout import check_resources
from ..fit.stage import run_fit
from ..predictor_store import StoredPredictor, load_all
from ..records import Trial, TrialResult
from ..rundir import RunDir, read_jsonl, write_jsonl
from ..staleness import mark_done
from .penalties import check_budgets, penalties
from .plan import extension_name, method_of, plan, random_budget, row_order, trial_key, trial_name
from .results import collect, print_row
from .trainable import run_trial

CHECKPOINTS_KEPT = 2  # per trial: the last epoch's, and the one before in case the last was cut mid-write


EXPERIMENT = "sweep"  # Tune experiment of the first sweep; later extensions get a suffix


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


def _tuner(run: RunDir, trials: list[Trial], stored: dict, resume: bool, verbose: bool, experiment: str):
    from ray import tune

    cfg = run.config
    storage = (run.stage("search") / "tune").resolve()
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, cfg=cfg, penalties=penalties(run, stored)), cfg.search.resources.as_bundle()
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
        param_space={"trial": tune.grid_search([{**t, "index": i} for i, t in enumerate(trials)])},
        tune_config=tune.TuneConfig(
            trial_name_creator=lambda t: trial_name(t.config["trial"]),
            trial_dirname_creator=lambda t: f"trial{t.config['trial']['index']:03d}",
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


def _sweep(
    run: RunDir, stored: dict[str, StoredPredictor], results_file: Path, experiment: str, resume: bool, verbose: bool
) -> list[TrialResult]:
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
    name = experiment if not kept else f"{experiment}-{extension_name(trials)}"
    new = _run_trials(run, trials, kept, stored, resume, verbose, name)
    rows = sorted(kept + new, key=row_order)
    results_file.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(results_file, rows)
    for r in rows:
        print_row(r)
    return rows


def _run_trials(
    run: RunDir,
    trials: list[Trial],
    kept: list[TrialResult],
    stored: dict[str, StoredPredictor],
    resume: bool,
    verbose: bool,
    name: str,
) -> list[TrialResult]:
    """The gradient trials in one Tune run, then the random ones in another: the LA-DNAS
    trials' time is the random trials' budget (:func:`random_budget`). Their rows."""
    cfg = run.config
    gradient = [t for t in trials if method_of(t) != "random"]
    new = []
    if gradient:
        new = collect(_tuner(run, gradient, stored, resume, verbose, name).fit(), gradient, stored, cfg)
    randoms = [{**t, "budget_s": random_budget(cfg, kept + new, t["seed"])} for t in trials if t not in gradient]
    if randoms:
        budgets = ", ".join(f"seed {t['seed']} {t['budget_s']:.0f} s" for t in randoms)
        print(f"[search] random search: {budgets} of proxy training ({cfg.search.random_epochs} epochs per "
              "candidate, the LA-DNAS sweep's time unless search.random_budget_s is set)", flush=True)  # fmt: skip
        new += collect(_tuner(run, randoms, stored, resume, verbose, f"{name}-random").fit(), randoms, stored, cfg)
    return new


def run_search(
    run: RunDir, resume: bool = False, force_predictor: bool = False, progress: bool = True, verbose: bool = False
) -> list[TrialResult]:
    """The sweep, ``search.rounds`` + 1 times: after each round its derived architectures
    are measured on every target (stage-1 code, into the stage-1 dataset, sampler
    ``derived``), the predictor that searched is scored on them (``search/rounds.jsonl``,
    and the ``derived`` line of ``fit/metrics.md``), and before the next round every
    predictor is refitted with them. A round whose derived architectures the stored
    predictors were already trained on is done; an interrupted loop continues there."""

    cfg = run.config
    t0 = time.perf_counter()
    rows: list[TrialResult] = []
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
