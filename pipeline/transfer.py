"""``lanas fit --target NEW --transfer-from SRC [--samples K]``: NEW's predictor from K of
its measured architectures and SRC's predictor (:mod:`lanas.transfer`), and the pick of
which K to measure (``lanas measure --select diverse``).

SRC is another target of the run (spec or hardware id) or a predictor folder
(``<run>/fit/<hardware>``) of another run with the same search space, encoding layout
and network. The K architectures are the diverse pick among NEW's measured rows (all of
them by default); the rest are NEW's test set. Before fitting, the network's costs
(FLOPs, ATen operators, modules) and, for a compiled runtime, the nodes and reorders of
the graph NEW's runtime builds are counted on random architectures
(:mod:`lanas.costs`: seconds, nothing timed). The leave-one-out MAPE of the transfer is
the validation figure the quality gate reads, and ``predictor.json`` records where the
predictor came from (``transferred_from``), which the report shows.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from lanas import quality
from lanas.costs import graph_costs, op_costs
from lanas.encoding import encode_genotype
from lanas.genotype import Genotype
from lanas.runtimes import RuntimeMissing
from lanas.transfer import Prior, fit_transfer, in_current_layout, predict_np, select_diverse, table_np, transferred

from . import predictor_store
from .errors import PipelineError
from .measure import select_targets
from .predictor_store import PredictorMeta, StoredPredictor
from .records import LATENCY_RATIO
from .rows import usable_rows
from .rundir import RunDir, write_atomic

TYPICAL_POOL = 1024  # random architectures whose median prediction is the transferred predictor's typical latency
TYPICAL_SEED_OFFSET = 40_000
DIVERSE_POOL = 4096  # random architectures `measure --select diverse` picks from


def source_predictor(run: RunDir, source: str) -> tuple[str, StoredPredictor]:
    """(name, predictor) of ``source``: a target of this run, or a predictor folder; a
    predictor fitted on an older table layout comes on the current one
    (:func:`lanas.transfer.in_current_layout`), so the transfer sees every feature."""
    path = Path(source)
    if (path / predictor_store.META).is_file():
        name, src = str(path), predictor_store.load(path, run.config)  # space, layout and network must match
    else:
        (target,) = select_targets(run.config, source, run.hardware_ids())
        name, src = target.spec, predictor_store.load_for(run, target, gate=False)
    return name, dataclasses.replace(src, model=in_current_layout(src.model, run.config.space))


def _check_samples(k: int, n: int, spec: str) -> None:
    if k < 3 or k > n:
        raise PipelineError(
            f"--samples {k}: {n} architectures are measured on {spec} and a transfer needs 3 to {n}; "
            f"measure more with `lanas measure --target {spec} --num-archs N --select diverse`"
        )


def _typical_pool(run: RunDir) -> torch.Tensor:
    cfg = run.config
    genotypes = cfg.space.sample_unique(TYPICAL_POOL, cfg.seed + TYPICAL_SEED_OFFSET)
    return torch.stack([encode_genotype(g, cfg.space) for g in genotypes])


def _save(run: RunDir, model, meta: PredictorMeta) -> None:
    where = predictor_store.folder(run, meta.hardware)
    predictor_store.save(where, model, meta)
    summary = {"hardware": meta.hardware, "rows": meta.rows, "val": meta.val, "test": meta.test}
    write_atomic(where / "metrics.json", json.dumps({**summary, "transferred_from": meta.transferred_from}, indent=2))


def _prior(run: RunDir, new, src: StoredPredictor) -> Prior:
    """The prior over SRC's table features for target ``new``."""
    cfg = run.config

    def progress(done: int, total: int) -> None:
        if done == 1 or done % 20 == 0 or done == total:
            print(f"[costs] {new.spec}: graph nodes as {new.runtime} builds them, {done}/{total} archs", flush=True)

    try:
        graph = graph_costs(
            cfg.space, cfg.macro(), cfg.data.resolution, new, lambda e: table_np(src.model, e, False), progress=progress
        )
    except RuntimeMissing as exc:
        raise PipelineError(f"transfer to {new.spec}: {exc}") from None
    return Prior.for_predictor(src.model, cfg.space, op_costs(cfg.space, cfg.macro(), cfg.data.resolution), graph)


def run_transfer(run: RunDir, target: str, source: str, samples: int | None = None) -> PredictorMeta:
    cfg = run.config
    (new,) = select_targets(cfg, target, run.hardware_ids())
    hw = run.hardware_id(new.spec)
    src_name, src = source_predictor(run, source)
    if src.meta.hardware == hw:
        raise PipelineError(f"--transfer-from {source}: that is {new.spec}'s own predictor")
    rows = usable_rows(run, new, hw)
    k = len(rows) if samples is None else samples
    _check_samples(k, len(rows), new.spec)
    x = torch.tensor(np.stack([r["encoding"] for r in rows]), dtype=torch.float32)
    y = np.array([r[LATENCY_RATIO] for r in rows])
    s, groups = predict_np(src.model)(x), table_np(src.model, x)
    prior = _prior(run, new, src)
    pick = np.array(select_diverse(s, groups, k, prior)) if k < len(rows) else np.arange(len(rows))
    rest = np.setdiff1d(np.arange(len(rows)), pick)
    fit, loo = fit_transfer(s[pick], groups[pick], y[pick], prior)
    name = fit.model
    try:
        model = transferred(src.model, fit, _typical_pool(run))
    except ValueError as exc:
        raise PipelineError(f"transfer from {src_name} to {new.spec}: {exc}") from None
    ref_ms = float(statistics.median(r["ref_latency_ms"] for r in rows))
    test = quality.regression_metrics(fit.predict(s[rest], groups[rest]), y[rest], ref_ms) if len(rest) >= 2 else {}
    origin = {"source": src_name, "hardware": src.meta.hardware, "samples": int(k), "model": name,
              "loo_mape": {name: loo}, "costs": list(prior.names)}  # fmt: skip
    meta = PredictorMeta(
        layout_version=src.meta.layout_version, ops=cfg.space.ops, target=new, hardware=hw, macro=cfg.macro(),
        resolution=cfg.data.resolution, hidden=src.meta.hidden, reference_ms=ref_ms,
        rows={"train": int(k), "val": 0, "test": int(len(rest))}, test=test, val={"mape": loo},
        transferred_from=origin,
    )  # fmt: skip
    _save(run, model, meta)
    tested = f"; test on the other {len(rest)}: MAPE {test['mape']:.2%}, Kendall tau {test['kendall_tau']:.3f}"
    print(
        f"[fit] {hw}: transferred from {src_name} ({src.meta.hardware}) with {k} samples: model {name}"
        f"{' (the source was dropped: its fitted scale came out negative)' if name == 'costs' else ''}, "
        f"leave-one-out MAPE {loo:.2%}" + (tested if test else ""),
        flush=True,
    )
    return meta


def default_source(run: RunDir, target: str) -> str:
    """The first other target of the run whose predictor is fitted."""
    (new,) = select_targets(run.config, target, run.hardware_ids())
    for t in run.config.targets:
        hw = run.hardware_ids().get(t.spec)
        if t.spec != new.spec and hw and (predictor_store.folder(run, hw) / predictor_store.META).is_file():
            return t.spec
    raise PipelineError(
        f"--select diverse needs another target's fitted predictor to pick by; "
        f"none in {run.path} (fit one, or pass --transfer-from a predictor folder)"
    )


def diverse_genotypes(run: RunDir, source: str, target: str, k: int) -> list[Genotype]:
    """``k`` architectures out of ``DIVERSE_POOL`` random ones for the new ``target``,
    spread over the source predictor's latency, the network's costs on ``target`` and the
    op composition."""
    cfg = run.config
    (new,) = select_targets(cfg, target, run.hardware_ids())
    _, src = source_predictor(run, source)
    prior = _prior(run, new, src)
    pool = cfg.space.sample_unique(max(DIVERSE_POOL, k), cfg.seed)
    x = torch.stack([encode_genotype(g, cfg.space) for g in pool])
    chosen = select_diverse(predict_np(src.model)(x), table_np(src.model, x), k, prior)
    return [pool[i] for i in chosen]
