"""One Ray Tune trial: a thin wrapper around :func:`lanas.search.search` (or random search), checkpointed per epoch."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from lanas.budget import Budget
from lanas.data import load_splits, loader
from lanas.genotype import Genotype
from lanas.random_search import candidate_pool, pick, score_candidate, score_within_budget
from lanas.search import build_supernet, search
from lanas.train import TrainSettings

from ..config import RunConfig
from ..records import PREDICTED_MS, Trial
from .plan import PenaltyModel, method_of, penalty_key

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


def run_trial(config: dict[str, Any], cfg: RunConfig, penalties: dict[str, PenaltyModel]) -> None:
    """One Tune trial: a thin wrapper around lanas.search.search (lanas.random_search for
    the random method). ``config["trial"]``: the trial of :func:`.plan.plan` (Tune's grid
    parameter, with its ``index``); ``penalties``: the models by :func:`.plan.penalty_key`."""
    import logging

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no "Checkpoint successfully created" per epoch
    torch.set_num_threads(max(1, int(cfg.search.resources.num_cpus)))
    trial = {k: v for k, v in config["trial"].items() if k != "index"}
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
    reference, unit = penalties[key].reference, penalties[key].unit

    def on_epoch(metrics: dict[str, Any], snapshot: dict[str, Any]) -> None:
        report = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        report[f"predicted_{unit}"] = metrics["predicted_latency_ratio"] * reference
        _report({**report, "seed": seed, "resumed_from_epoch": resumed_from}, {"search_state.pt": snapshot})

    budget = None if trial["budget_ms"] is None else Budget(trial["budget_ms"] / reference, cfg.search.budget)
    search(net, penalties[key].model(), train, val, s, trial["lam"], device=device,
           on_epoch=on_epoch, state=state, seed=seed, budget=budget)  # fmt: skip


def _random_trial(
    trial: Trial, cfg: RunConfig, penalties: dict[str, PenaltyModel], device: str, scored: list[dict[str, Any]] | None
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
    picks = pick(scored, cfg.space, {k: v.model() for k, v in ladnas.items()},
                 list(cfg.search.lambdas))  # fmt: skip
    for p in picks:
        p[PREDICTED_MS] = p["predicted_latency_ratio"] * ladnas[p["target"] or cfg.targets[0].spec].reference
    tune.report({"done": True, "seed": seed, "picks": json.dumps(picks), "epoch": cfg.search.random_epochs})
