"""The closed loop's rounds (``search.rounds``): each round's derived architectures are measured
on every target into the stage-1 dataset (measure's public functions), and the predictors
that searched it are scored on them, in ``search/rounds.jsonl`` (owned here) and each
predictor's metadata; before the next round :func:`pipeline.fit.run_fit` refits with them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from lanas.genotype import Genotype
from lanas.quality import regression_metrics

from . import predictor_store
from .fit.render import finish, write_metrics_md
from .measure import measure_into, missing, probe_same_hardware
from .predictor_store import StoredPredictor
from .records import LATENCY_RATIO, TrialResult
from .rows import dataset_dir, usable_rows
from .rundir import RunDir, read_jsonl, write_jsonl


def results_path(run: RunDir, r: int) -> Path:
    """Round ``r``'s results: the last round's are ``search/results.jsonl`` (what evaluate reads)."""
    last = r == run.config.search.rounds
    return run.path / "search" / ("results.jsonl" if last else f"round{r}/results.jsonl")


def measure_derived(run: RunDir, r: int, rows: list[TrialResult], progress: bool) -> None:
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


def record_derived(run: RunDir, r: int, rows: list[TrialResult], stored: dict[str, StoredPredictor]) -> None:
    """Score the predictors that searched round ``r`` on what it derived: ``search/rounds.jsonl``
    (one line per round and target) and the ``derived-round<r>`` set of each predictor's metadata."""

    cfg = run.config
    wanted = {x["arch_id"] for x in rows}
    log = run.path / "search" / "rounds.jsonl"
    lines = [x for x in (read_jsonl(log) if log.is_file() else []) if x["round"] != r]
    for t in cfg.targets:
        p = stored[t.spec]
        got = [x for x in usable_rows(run, t, p.meta.hardware, ["status", LATENCY_RATIO, "encoding", "sampler",
               "round"]) if x["arch_id"] in wanted]  # fmt: skip
        seen = sum(not (x["sampler"] == "derived" and x["round"] == r) for x in got)  # measured before this round
        if not got:
            continue
        pred = p.predict_ratio(torch.tensor([x["encoding"] for x in got], dtype=torch.float32)).numpy()
        m = regression_metrics(pred, [x[LATENCY_RATIO] for x in got], p.reference_ms)
        meta = dataclasses.replace(p.meta, ood={**p.meta.ood, f"derived-round{r}": {"predictor": m}})
        predictor_store.save_meta(predictor_store.folder(run, meta.hardware), meta)
        write_metrics_md(run, meta)
        lines.append({"round": r, "target": t.spec, "measured_before": seen, **m, **_standing(meta)})
        print(f"[search] round {r}: {t.spec} predictor off by {m['mape']:.2%} (mean |predicted/measured - 1|) on "
              f"the {m['n']} architectures it derived ({seen} of them measured before)", flush=True)  # fmt: skip
    write_jsonl(log, sorted(lines, key=lambda x: (x["round"], x["target"])))
    finish(run)
