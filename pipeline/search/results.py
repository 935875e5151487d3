"""A finished trial's rows of ``search/results.jsonl``, and their console line."""

from __future__ import annotations

import json
from typing import Any

from lanas.budget import Budget
from lanas.genotype import Genotype

from ..config import RunConfig
from ..errors import PipelineError
from ..predictor_store import StoredPredictor
from ..records import PREDICTED_MS, Trial, TrialResult
from .plan import method_of, trial_name


def _row(trial: Trial, m: dict[str, Any], stored: dict[str, StoredPredictor], cfg: RunConfig, path: str) -> TrialResult:
    """A results.jsonl row of one finished trial (a budget trial's lambda: its final multiplier)."""
    g = Genotype.from_json(m["genotype"], cfg.space.ops)
    ms = m.get(PREDICTED_MS)
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
        PREDICTED_MS: ms,
        "predicted_mflops": m.get("predicted_mflops"),
        "epochs": m.get("epoch"),
        "lam_updates": m.get("lam_updates"),
        "resumed_from_epoch": m.get("resumed_from_epoch"),
        "in_window": None if budget is None else bool(Budget(budget, cfg.search.budget).inside(ms)),
        "search_s": m.get("time_total_s"),
        "trial_path": path,
    }


def _random_rows(
    trial: Trial, m: dict[str, Any], stored: dict[str, StoredPredictor], cfg: RunConfig, path: str
) -> list[TrialResult]:
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
            "predicted_latency_ratio": p["predicted_latency_ratio"], PREDICTED_MS: p[PREDICTED_MS],
            "epochs": m.get("epoch"), "candidates": p["candidates"], "proxy_s": p["proxy_s"],
            "budget_s": trial["budget_s"], "search_s": m.get("time_total_s"), "trial_path": path,
        })  # fmt: skip
    return out


def collect(results, trials: list[Trial], stored: dict[str, StoredPredictor], cfg: RunConfig) -> list[TrialResult]:
    """The rows of a finished Tune sweep; one line naming every trial that did not finish."""
    rows, errors = [], []
    for r in results:
        m = r.metrics or {}
        trial = trials[int(((r.config or {}).get("trial") or {}).get("index", -1))]
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


def print_row(r: TrialResult) -> None:
    where = f" on {r['target']}" if r["target"] else ""
    budget = ""
    if r.get("budget_ms"):
        window = "inside" if r["in_window"] else "OUTSIDE"
        budget = f", budget {r['budget_ms']:g} ms ({window} its window; lambda ended at {r['lam']:.3g})"
    cost = (f"predicted {r[PREDICTED_MS]:.3f} ms{where}" if r.get("predicted_mflops") is None
            else f"expected {r['predicted_mflops']:.3g} MFLOPs")  # fmt: skip
    acc = "proxy val acc" if method_of(r) == "random" else "val acc"
    print(f"[search] {trial_name(r)}: {cost}{budget}, {acc} {r['val_acc']:.3f}, arch {r['arch_id'][:10]}",
          flush=True)  # fmt: skip
