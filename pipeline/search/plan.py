"""The sweep's trials (method, target, lambda or budget, seed), their keys and names, and the
penalty models they minimise as those travel to the Tune workers."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from lanas.penalty import GRADIENT_METHODS
from lanas.penalty import METHODS as METHOD_ORDER
from lanas.predictor import LatencyPredictor

from ..config import RunConfig
from ..errors import PipelineError
from ..records import Trial, TrialResult


def plan(cfg: RunConfig) -> list[Trial]:
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


def method_of(row: Trial) -> str:
    """A trial's or row's method (rows written before methods existed are ``ladnas``)."""
    return row.get("method") or "ladnas"


def trial_key(trial: Trial) -> tuple:
    """What identifies a trial (a budget trial's final lambda is a result, not a key; every
    row a random trial picked shares the trial's key)."""
    method = method_of(trial)
    if method == "random":
        return ("random", trial["seed"])
    if trial.get("budget_ms") is not None:
        return (trial["target"], "budget", float(trial["budget_ms"]), trial["seed"])
    key = (trial["target"] or "", "lam", float(trial["lam"]), trial["seed"])
    return key if method == "ladnas" else (method, *key)


def trial_name(trial: Trial) -> str:
    method = method_of(trial)
    prefix = "" if method == "ladnas" else f"{method},"
    if method == "random" and trial["lam"] is None:
        return f"search[random,seed={trial['seed']}]"
    where = f"{trial['target']}," if trial["target"] else ""
    what = f"budget={trial['budget_ms']:g}ms" if trial.get("budget_ms") is not None else f"lam={trial['lam']:g}"
    return f"search[{prefix}{where}{what},seed={trial['seed']}]"


def penalty_key(trial: Trial, cfg: RunConfig) -> str:
    """The penalty model a gradient trial minimises: ``<method>:<target spec>`` (lambda = 0
    reports the first target's predicted latency; it does not steer the search)."""
    method = method_of(trial)
    if method == "flops":
        return "flops:"
    return f"{method if trial['lam'] else 'ladnas'}:{trial['target'] or cfg.targets[0].spec}"


def random_budget(cfg: RunConfig, rows: list[TrialResult], seed: int) -> float:
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


def row_order(r: TrialResult) -> tuple:
    return (METHOD_ORDER.index(method_of(r)), r["target"] or "", r.get("budget_ms") or 0.0, r["lam"], r["seed"])


def extension_name(todo: list[Trial]) -> str:
    """An extension of a sweep is named by the trials it adds, so an interrupted extension resumes under that name."""
    return hashlib.sha1(json.dumps(sorted(map(str, map(trial_key, todo)))).encode()).hexdigest()[:8]


@dataclasses.dataclass(frozen=True)
class PenaltyModel:
    """A model a trial minimises, as it travels to the Tune workers: the predictor's weights
    and hidden sizes, its reference (ms per unit ratio; 1 for FLOPs) and what it predicts."""

    state: dict
    hidden: tuple[int, ...]
    reference: float
    unit: str  # latency_ms or mflops

    def model(self) -> LatencyPredictor:
        return LatencyPredictor.from_state(self.state, self.hidden)
