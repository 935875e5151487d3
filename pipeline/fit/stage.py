"""Stage 2 as ``lanas fit`` runs it: rows, the Ray Train job, selection, scores, files."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from lanas import penalty
from lanas.encoding import LAYOUT_VERSION
from lanas.predictor import LatencyPredictor
from lanas.target import Target

from .. import dataset as ds
from ..errors import PipelineError
from ..measure import select_targets
from ..predictor_store import PredictorMeta
from ..rows import dataset_dir
from ..rundir import RunDir
from .data import EVAL_SETS, load_rows, predictor_round
from .render import finish, write_outputs
from .select import score, select
from .train import train_with_ray


def run_fit(run: RunDir, target: str | None = None) -> dict[str, Any]:
    """Fit the predictor of every target of the run (or of the one named ``target``)."""
    t0 = time.perf_counter()
    cfg = run.config
    targets = select_targets(cfg, target, run.hardware_ids())
    ds.check_dataset(dataset_dir(run))
    if not ds.hardware_partitions(dataset_dir(run)):
        raise PipelineError(f"the latency dataset {dataset_dir(run)} is empty (run `lanas measure` first)")
    ids = {t.spec: run.hardware_id(t.spec) for t in targets}
    splits, dropped = {}, {}
    for t in targets:
        splits[t.spec], dropped[t.spec] = load_rows(run, t, ids[t.spec])
        _print_rows(ids[t.spec], splits[t.spec], dropped[t.spec])
    print(
        f"[fit] one Ray Train job, {cfg.fit.num_workers} worker(s), {len(targets)} target(s) x "
        f"({cfg.fit.folds} cross-validation folds + 1 final fit)",
        flush=True,
    )
    t1 = time.perf_counter()
    models, train_metrics = train_with_ray(run, splits)
    print(f"[fit] Ray Train job {time.perf_counter() - t1:.1f} s", flush=True)
    summary: dict[str, Any] = {"targets": {}}
    flops = penalty.flops_table(cfg.space, cfg.macro(), cfg.data.resolution)[0]  # once: every target, same networks
    for t in targets:
        meta = _export(run, t, ids[t.spec], models[t.spec], splits[t.spec], dropped[t.spec], train_metrics, flops)
        summary["targets"][t.spec] = {"hardware": ids[t.spec], "test": meta.test, "chosen": meta.selection["chosen"]}
    summary["wall_s"] = time.perf_counter() - t0
    finish(run, summary)
    return summary


def _print_rows(hw: str, splits: dict[str, Any], dropped: dict[str, int]) -> None:
    train = splits["train"]
    origin = ", ".join(f"{n} {k}" for k, n in train["sampler"].value_counts().items())
    held = ", ".join(f"{name} {len(splits[name])}" for name in EVAL_SETS if len(splits[name]))
    d = dropped
    print(
        f"[fit] {hw}: {len(train)} training architectures ({origin}); held out: {held}"
        + (
            f"; dropped {d['failed']} failed and {d['nan_zero_or_negative']} NaN/zero/negative rows"
            if any(d.values())
            else ""
        ),
        flush=True,
    )


def _export(
    run: RunDir,
    target: Target,
    hw: str,
    mlp: tuple[LatencyPredictor, np.ndarray],
    splits: dict[str, Any],
    dropped: dict[str, int],
    train_metrics: dict[str, Any],
    flops: LatencyPredictor,
) -> PredictorMeta:
    """Choose, score and write one target's predictor to ``fit/<hw>/``."""
    cfg = run.config
    reference_ms = float(statistics.median(np.concatenate([f["ref_latency_ms"].to_numpy() for f in splits.values()])))
    model, selection = select(run, mlp, splits["train"], reference_ms)
    scores, versus, points = score(run, model, splits, reference_ms, flops)
    prefix = f"{target.spec}/"
    meta = PredictorMeta(
        layout_version=LAYOUT_VERSION, ops=cfg.space.ops, target=target, hardware=hw, macro=cfg.macro(),
        resolution=cfg.data.resolution, hidden=model.hidden, reference_ms=reference_ms,
        rows={k: len(v) for k, v in splits.items()}, dropped=dropped, test=scores["test"]["predictor"],
        val=selection["cv"][selection["chosen"]],
        baselines={k: v for k, v in scores["test"].items() if k != "predictor"},
        versus_best_baseline={k: v for k, v in versus.items() if k != "best"},
        train_metrics={k[len(prefix):]: float(v) for k, v in train_metrics.items()
                       if k.startswith(prefix) and isinstance(v, (int, float))},
        selection=selection, ood={k: v for k, v in scores.items() if k != "test"},
        round=predictor_round(splits["train"]),
    )  # fmt: skip
    write_outputs(run, model, meta, versus, points)
    return meta
