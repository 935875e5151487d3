"""The five stages, wired once: what runs each, whether it needs Ray, and its help line.

``lanas <stage>`` and ``lanas reproduce`` both run a stage through this table; each
stage marks itself done (``<stage>/DONE.json``) when it completes, and ``reproduce``
skips the stages that are done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .rundir import STAGES as NAMES
from .rundir import RunDir


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
    from .measure import run_measure

    return run_measure(run, progress=o.progress)


def _fit(run: RunDir, o: Options) -> Any:
    from .fit.stage import run_fit

    return run_fit(run)


def _search(run: RunDir, o: Options) -> Any:
    from .search.stage import run_search

    return run_search(run, resume=o.resume, force_predictor=o.force_predictor, progress=o.progress, verbose=o.verbose)


def _evaluate(run: RunDir, o: Options) -> Any:
    from .evaluate import run_evaluate

    return run_evaluate(run, progress=o.progress)


def _report(run: RunDir, o: Options) -> Any:
    from .report.stage import run_report

    return run_report(run)


def _nb201(name: str, **options: Callable[[Options], Any]) -> Callable[[RunDir, Options], Any]:
    """``pipeline.nb201_stages.<name>(run, **options)``, imported when it runs."""

    def run_stage(run: RunDir, o: Options) -> Any:
        from . import nb201_stages

        return getattr(nb201_stages, name)(run, **{k: get(o) for k, get in options.items()})

    return run_stage


# what each stage runs, per space (space.name): the one place that knows a space's stages
RUNNERS: dict[str, dict[str, Callable[[RunDir, Options], Any]]] = {
    "darts": {"measure": _measure, "fit": _fit, "search": _search, "evaluate": _evaluate, "report": _report},
    "nb201": {
        "measure": _nb201("run_import"),  # its latencies are tables: imported, not timed
        "fit": _nb201("run_space_latency"),  # each searched device's latency of the whole space
        "search": _nb201("run_search", verbose=lambda o: o.verbose),
        "evaluate": _nb201("run_lookup"),  # accuracy and latency looked up
        "report": _nb201("run_report"),  # with the true front of the whole space
    },
}


def _dispatch(name: str) -> Callable[[RunDir, Options], Any]:
    return lambda run, o: RUNNERS[run.config.space.name][name](run, o)


STAGES = (
    Stage(
        "measure",
        _dispatch("measure"),
        True,
        "stage 1: measure the latency of sampled (or given) architectures into Parquet (nb201: import tables)",
    ),
    Stage(
        "fit",
        _dispatch("fit"),
        True,
        "stage 2: fit the latency predictors with Ray Train, against baselines (nb201: latency of the whole space)",
    ),
    Stage(
        "search",
        _dispatch("search"),
        True,
        "stage 3: Ray Tune sweep of lambda (and latency budgets) over differentiable searches",
    ),
    Stage(
        "evaluate",
        _dispatch("evaluate"),
        True,
        "stage 4: train derived architectures from scratch, measure real latency (nb201: look both up)",
    ),
    Stage("report", _dispatch("report"), False, "stage 5: Pareto front, hypervolume, plots and report.md"),
)
BY_NAME = {s.name: s for s in STAGES}
assert tuple(BY_NAME) == NAMES, "the stage table and the run directory's stage names must agree"
