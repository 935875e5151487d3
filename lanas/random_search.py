"""Random search as users run it: the peer LA-DNAS has to beat.

Candidates are drawn across the latency range (half uniform, half coverage-sampled: a
few ops dominate each cell, which reaches the fast and the slow ends that uniform
samples miss), each is trained from scratch for a few epochs (the proxy) and scored on
the validation split, until a wall-clock budget is spent. Then, per latency predictor
and lambda, the candidate that minimises the objective LA-DNAS minimises,
``validation CE + lambda * latency_term``, is the pick: a larger lambda picks a faster
architecture. No Ray here: ``on_candidate`` is the hook the pipeline checkpoints with,
and ``scored`` resumes a search.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import DataLoader

from lanas.encoding import encode_genotype
from lanas.genotype import Genotype
from lanas.network import MacroSettings, Network
from lanas.predictor import LatencyPredictor
from lanas.space import LATENCY_RANGE, SearchSpace, sample_mixed
from lanas.train import TrainSettings, accuracy_and_loss, train_network

POOL_SEED = 30_011  # the candidates of a random search with seed s come from stream s + this


def candidate_pool(space: SearchSpace, n: int, seed: int) -> list[Genotype]:
    """``n`` distinct genotypes, uniform and coverage samples alternating (so a search
    cut short by its budget has scored both kinds). A smaller ``n`` gives a prefix of a
    larger one's pool: both kinds are drawn ``ceil(n / 2)`` deep before the cut."""
    drawn = sample_mixed(space, 2 * ((n + 1) // 2), seed + POOL_SEED, LATENCY_RANGE)
    uniform = [g for g, kind in drawn if kind == "uniform"]
    coverage = [g for g, kind in drawn if kind == "coverage"]
    out = [g for pair in zip(uniform, coverage) for g in pair]
    return (out + uniform[len(coverage) :] + coverage[len(uniform) :])[:n]


def score_candidate(
    genotype: Genotype, macro: MacroSettings, train: DataLoader, val: DataLoader, settings: TrainSettings, device: str
) -> dict[str, Any]:
    """Train ``genotype``'s network from scratch with ``settings``; its validation CE and accuracy."""
    t0 = time.perf_counter()
    net = Network(genotype, macro)
    train_network(net, train, settings, device)
    acc, ce = accuracy_and_loss(net, val, device)
    return {"genotype": genotype.to_json(), "val_ce": ce, "val_acc": acc, "train_s": time.perf_counter() - t0}


def score_within_budget(
    pool: Sequence[Genotype],
    score: Callable[[Genotype], dict[str, Any]],
    budget_s: float,
    scored: list[dict[str, Any]] | None = None,
    on_candidate: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Score ``pool`` in order until the budget is spent: a candidate starts only if the
    slowest one so far would still end inside it (the first always runs). ``scored``:
    what an interrupted search had scored (its time counts)."""
    scored = list(scored or [])
    for g in pool[len(scored) :]:
        spent = sum(s["train_s"] for s in scored)
        if scored and spent + max(s["train_s"] for s in scored) > budget_s:
            break
        scored.append(score(g))
        if on_candidate is not None:
            on_candidate(scored)
    return scored


def pick(
    scored: list[dict[str, Any]], space: SearchSpace, predictors: dict[str, LatencyPredictor], lams: list[float]
) -> list[dict[str, Any]]:
    """Per predictor (key: its target) and lambda, the scored candidate minimising
    ``val_ce + lambda * latency_term``; lambda = 0 does not depend on the target: picked
    once (target None)."""
    genotypes = [Genotype.from_json(s["genotype"], space.ops) for s in scored]
    x = torch.stack([encode_genotype(g, space) for g in genotypes])
    ce = torch.tensor([s["val_ce"] for s in scored])
    picks = []
    for n, (key, predictor) in enumerate(predictors.items()):
        predictor.eval()
        with torch.no_grad():
            term = predictor.latency_term(x.to(predictor.typical.device)).cpu()
        for lam in lams:
            if lam == 0 and n:
                continue
            i = int(torch.argmin(ce + lam * term))
            picks.append({
                "target": key if lam > 0 else None, "lam": float(lam), "genotype": scored[i]["genotype"],
                "proxy_val_ce": scored[i]["val_ce"], "proxy_val_acc": scored[i]["val_acc"],
                "latency_term": float(term[i]), "predicted_latency_ratio": float(term[i] * predictor.typical.cpu()),
                "candidates": len(scored), "proxy_s": sum(s["train_s"] for s in scored),
            })  # fmt: skip
    return picks
