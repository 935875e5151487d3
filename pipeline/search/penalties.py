"""The penalty models a sweep's trials minimise, and the refusal of budgets no architecture can meet."""

from __future__ import annotations

from lanas import penalty
from lanas.budget import reachable
from lanas.target import Target

from ..errors import PipelineError
from ..fit.data import arrays, load_rows
from ..predictor_store import StoredPredictor
from ..records import LATENCY_RATIO
from ..rows import usable_rows
from ..rundir import RunDir
from .plan import PenaltyModel


def penalties(run: RunDir, stored: dict[str, StoredPredictor]) -> dict[str, PenaltyModel]:
    """Key (:func:`.plan.penalty_key`) -> every penalty model the sweep needs: each target's
    stored predictor (``ladnas:<spec>``), its lookup table fitted on the predictor's training
    rows (``lut:<spec>``), the FLOPs table (``flops:``)."""

    cfg = run.config
    out = {
        f"ladnas:{spec}": PenaltyModel(p.model.state_dict(), p.meta.hidden, p.reference_ms, "latency_ms")
        for spec, p in stored.items()
    }
    if "lut" in cfg.search.methods:
        for t in cfg.targets:
            x, y = arrays(load_rows(run, t, stored[t.spec].meta.hardware)[0]["train"])
            table = penalty.lut_table(cfg.space, x, y)
            out[f"lut:{t.spec}"] = PenaltyModel(table.state_dict(), (), stored[t.spec].reference_ms, "latency_ms")
    if "flops" in cfg.search.methods:
        table, worst = penalty.flops_table(cfg.space, cfg.macro(), cfg.data.resolution)
        print(f"[search] FLOPs table of the deployed network: median {float(table.typical):.3g} MFLOPs, "
              f"exact to {worst:.1e}", flush=True)  # fmt: skip
        out["flops:"] = PenaltyModel(table.state_dict(), (), 1.0, "mflops")
    return out


def measured_ratios(run: RunDir, target: Target, hardware: str) -> list[float]:
    """The usable latency ratios stage 1 measured on ``target`` at this run's setting."""
    return [r[LATENCY_RATIO] for r in usable_rows(run, target, hardware, columns=["status", LATENCY_RATIO])]


def check_budgets(run: RunDir, stored: dict[str, StoredPredictor]) -> None:
    """Refuse a budget that no architecture is known to meet inside the acceptance window
    (below the fastest corner architecture's prediction and every measured latency), or
    one that every architecture meets (then a lambda = 0 search is the answer)."""
    cfg = run.config
    window = cfg.search.budget.window
    reach: dict[str, tuple[float, float]] = {}
    for spec, t in cfg.search.budget_list():
        p = stored[spec]
        if spec not in reach:
            target = next(t for t in cfg.targets if t.spec == spec)
            lo, hi = reachable(p.predict_ratio, cfg.space, measured_ratios(run, target, p.meta.hardware))
            reach[spec] = (lo * p.reference_ms, hi * p.reference_ms)
        fastest, slowest = reach[spec]
        if t * window[1] < fastest:
            raise PipelineError(
                f"budget {t:g} ms on {spec} is below what the search space reaches there: its fastest known "
                f"architecture takes {fastest:.4g} ms, so the smallest budget is {fastest / window[1]:.4g} ms "
                f"(the search aims at {window[0]:g}-{window[1]:g} x the budget)"
            )
        if t * window[0] > slowest:
            raise PipelineError(
                f"budget {t:g} ms on {spec} is above the slowest known architecture there ({slowest:.4g} ms): "
                "every architecture meets it; search with lambda = 0 instead"
            )
