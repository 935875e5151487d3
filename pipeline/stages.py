"""The five stages, wired once: what runs each, whether it needs Ray, and its help line.

``lanas <stage>`` and ``lanas reproduce`` both run a stage through this table; each
stage marks itself done (``<stage>/DONE.json``) when it completes, and ``reproduce``
skips the stages that are done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pipeline.rundir import STAGES as NAMES
from pipeline.rundir import RunDir


@dataclass(frozen=True)
class Options:
    """What the command line passes to every stage."""

    progress: bool = True  # progress bars (off with --quiet)
    resume: bool = False  # search: continue an interrupted sweep
    force_predictor: bool = False  # search: accept a predictor that fails its quality gate
    verbose: bool = False  # Ray's own console output too: Tune's trial tables, worker logs, library warnings


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[RunDir, Options], Any]
    needs_ray: bool
    help: str


def _measure(run: RunDir, o: Options) -> Any:
    from pipeline.measure import run_measure

    return run_measure(run, progress=o.progress)


def _fit(run: RunDir, o: Options) -> Any:
    from pipeline.fit import run_fit

    return run_fit(run)


def _search(run: RunDir, o: Options) -> Any:
    from pipeline.search import run_search

    return run_search(run, resume=o.resume, force_predictor=o.force_predictor, progress=o.progress, verbose=o.verbose)


def _evaluate(run: RunDir, o: Options) -> Any:
    from pipeline.evaluate import run_evaluate

    return run_evaluate(run, progress=o.progress)


def _report(run: RunDir, o: Options) -> Any:
    from pipeline.report import run_report

    return run_report(run)


STAGES = (
    Stage("measure", _measure, True, "stage 1: measure the latency of sampled (or given) architectures into Parquet"),
    Stage("fit", _fit, True, "stage 2: fit the latency predictors with Ray Train, against baselines"),
    Stage(
        "search", _search, True, "stage 3: Ray Tune sweep of lambda (and latency budgets) over differentiable searches"
    ),
    Stage("evaluate", _evaluate, True, "stage 4: train derived architectures from scratch, measure real latency"),
    Stage("report", _report, False, "stage 5: Pareto front, hypervolume, plots and report.md"),
)
BY_NAME = {s.name: s for s in STAGES}
assert tuple(BY_NAME) == NAMES, "the stage table and the run directory's stage names must agree"
