"""What a fit writes for people: ``fit/<hw>/metrics.md``, ``fit/metrics.md`` side by side, ``scatter.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lanas import quality
from lanas.predictor import LatencyPredictor

from .. import predictor_store
from ..predictor_store import PredictorMeta
from ..rundir import RunDir, write_atomic
from ..staleness import mark_done
from .data import EVAL_SETS

NAMES = {
    "predictor": "**lanas predictor** (shipped)",
    "lut": "lookup table per (cell, edge, op)",
    "lut_op": "lookup table per (edge group, op)",
    "trees": "gradient-boosted trees",
    "flops": "FLOPs (linear map)",
}


CANDIDATES = {"additive": "additive lookup table (edge group, op)", "mlp": "additive + MLP"}


def write_outputs(run: RunDir, model: LatencyPredictor, meta: PredictorMeta, versus: dict, points: dict) -> None:
    """``fit/<hw>/``: the predictor, its metrics (JSON and markdown) and scatter plot; one line to the console."""
    hw, val, gate = meta.hardware, meta.val, run.config.fit.max_val_mape
    where = predictor_store.folder(run, hw)
    predictor_store.save(where, model, meta)
    scores = {"predictor": meta.test, **meta.baselines}
    numbers = {"hardware": hw, "rows": meta.rows, "dropped": meta.dropped, "cross_validated": val, "test": scores}
    write_atomic(where / "metrics.json", json.dumps({**numbers, "versus_best_baseline": versus, "ood": meta.ood,
                                                     "selection": meta.selection}, indent=2))  # fmt: skip
    write_metrics_md(run, meta)
    plot_scatter(where / "scatter.png", points, meta.reference_ms, hw, meta.test)
    s = meta.test
    print(
        f"[fit] {hw}: chose {_label(meta.selection['chosen'], meta.selection)} "
        f"(cross-validated MAPE {val['mape']:.2%}); "
        f"test MAPE {s['mape']:.2%}, Kendall tau {s['kendall_tau']:.3f}; best baseline {versus['best']} "
        f"{meta.baselines[versus['best']]['mape']:.2%} ({quality.verdict(versus)}: difference {versus['mean']:+.2%}, "
        f"95% CI [{versus['lo']:+.2%}, {versus['hi']:+.2%}]); {_ood_phrase(meta)}; "
        f"gate (cross-validated MAPE {val['mape']:.2%} <= {gate:.0%}): {'pass' if val['mape'] <= gate else 'FAIL'}",
        flush=True,
    )


def _ood_phrase(meta: PredictorMeta) -> str:
    parts = [f"{name} {sets['predictor']['mape']:.2%} (n={sets['predictor']['n']})" for name, sets in meta.ood.items()]
    return "out of distribution: " + (", ".join(parts) if parts else "no held-out rows yet")


def write_metrics_md(run: RunDir, meta: PredictorMeta) -> None:
    """``fit/<hw>/metrics.md`` from the stored metadata (rewritten when a search round adds derived rows)."""
    write_atomic(
        predictor_store.folder(run, meta.hardware) / "metrics.md", metrics_table(meta, run.config.fit.max_val_mape)
    )


def side_by_side(run: RunDir, metas: dict[str, PredictorMeta]) -> str:
    """``fit/metrics.md``: one line per target."""
    lines = [
        "# Latency predictors, one per target",
        "",
        "Test split by arch_id hash (the same architectures on every target). *vs best baseline*: mean "
        "difference of the relative errors on the same test architectures, with a 95 % paired-bootstrap "
        "interval; an interval holding 0 is a tie within the noise of the test set.",
        "",
        f"Model selection: {quality.SELECTION_RULE}. The quality gate decides on the chosen model's "
        "cross-validated MAPE; the test split and the out-of-distribution sets are only reported.",
        "",
        "*Out of distribution*: MAPE on the published genotypes and on the architectures the search derived "
        "with this predictor (measured after the search; see each target's table), next to the random test split.",
        "",
        "| target | hardware | rows (train/test) | chosen | test MAPE | within ±10 % | Kendall τ | best baseline | "
        "vs best baseline | published | derived | CV MAPE | gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    gate = run.config.fit.max_val_mape
    lines += [_transferred_line(spec, m, gate) if m.transferred_from else _fitted_line(spec, m, gate)
              for spec, m in metas.items()]  # fmt: skip
    lines.append("")
    for m in metas.values():
        if m.transferred_from:
            continue
        text = (predictor_store.folder(run, m.hardware) / "metrics.md").read_text(encoding="utf-8")
        lines.append(text.replace("# Latency predictor", "## Latency predictor"))
    return "\n".join(lines)


def _transferred_line(spec: str, m: PredictorMeta, gate: float) -> str:
    t = m.transferred_from
    return (
        f"| {spec} | `{m.hardware}` | {m.rows['train']}/{m.rows['test']} | transferred ({t['model']}) | "
        f"{_pct(m.test.get('mape'))} | {_pct(m.test.get('within_10pct'), '.1%')} | "
        f"{_num(m.test.get('kendall_tau'))} | transferred from `{t['source']}` with {t['samples']} "
        f"samples | — | — | — | {_pct(m.val.get('mape'))} (leave-one-out) | {_gate(m, gate)} |"
    )


def derived_sets(m: PredictorMeta) -> dict[str, dict]:
    """The predictor's scores on architectures derived by searches that used it."""
    return {k: v for k, v in m.ood.items() if k.startswith("derived")}


def _ood_cell(sets: dict | None) -> str:
    return "—" if not sets else f"{sets['predictor']['mape']:.2%} (n={sets['predictor']['n']})"


def _fitted_line(spec: str, m: PredictorMeta, gate: float) -> str:
    best = m.best_baseline()
    v = m.versus_best_baseline
    derived = list(derived_sets(m).values())
    return (
        f"| {spec} | `{m.hardware}` | {m.rows['train']}/{m.rows['test']} | {CANDIDATES[m.selection['chosen']]} | "
        f"{m.test['mape']:.2%} | {m.test['within_10pct']:.1%} | {m.test['kendall_tau']:.3f} | "
        f"{best} {m.baselines[best]['mape']:.2%} | {quality.verdict(v)} ({v['mean']:+.2%}, "
        f"[{v['lo']:+.2%}, {v['hi']:+.2%}]) | {_ood_cell(m.ood.get('published'))} | "
        f"{_ood_cell(derived[-1] if derived else None)} | {_pct(m.val.get('mape'))} | {_gate(m, gate)} |"
    )


def _pct(x: float | None, spec: str = ".2%") -> str:
    return "—" if x is None else format(x, spec)


def _gate(m: PredictorMeta, gate: float) -> str:
    mape = m.val.get("mape")
    return "pass" if mape is not None and mape <= gate else "FAIL"


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def finish(run: RunDir, summary: dict[str, Any] | None = None) -> None:
    """Rewrite ``fit/metrics.md`` over every stored predictor; with ``summary``, mark the
    stage done once every target has one."""
    metas = predictor_store.stored_metas(run)
    write_atomic(run.stage("fit") / "metrics.md", side_by_side(run, metas))
    if summary is not None and len(metas) == len(run.config.targets):
        mark_done(run, "fit", summary)


def _metric_row(label: str, v: dict[str, float]) -> str:
    return (
        f"| {label} | {v['n']} | {v['mape']:.2%} | {v['rmse_ms']:.4f} | {v['within_5pct']:.1%} | "
        f"{v['within_10pct']:.1%} | {_num(v['kendall_tau'])} | {_num(v['spearman_rho'])} |"
    )


def _label(candidate: str, sel: dict[str, Any]) -> str:
    """A candidate's name in metrics.md (whether its table counts merged and repeated ops:
    fits before ``fit.model.sharing`` or ``fit.model.repeats`` did not record it, and had none)."""
    counted = [name for name, key in (("merged", "sharing"), ("repeated", "repeats")) if sel.get(key)]
    return CANDIDATES[candidate] + (f", with {' and '.join(counted)} ops" if counted else "")


def metrics_table(meta: PredictorMeta, gate: float) -> str:
    """``fit/<hw>/metrics.md``: model selection, the random test split with the baselines,
    and the out-of-distribution sets."""
    sel, val = meta.selection, meta.val
    verdict = "pass" if val["mape"] <= gate else "FAIL"
    head = "| model | rows | MAPE | RMSE (ms) | within ±5 % | within ±10 % | Kendall τ | Spearman ρ |"
    rule = "|---|---|---|---|---|---|---|---|"
    lines = [f"# Latency predictor on `{meta.hardware}`", "",
             f"**Model selection** ({sel['folds']}-fold cross-validation over {sel['rows']} training architectures, "
             f"folds by arch_id hash): {sel['rule']}. Chosen: **{_label(sel['chosen'], sel)}**. Quality gate on its "
             f"cross-validated MAPE {val['mape']:.2%} <= {gate:.0%}: {verdict}.", "", head, rule]  # fmt: skip
    lines += [_metric_row(f"{_label(k, sel)} (cross-validated)", v) for k, v in sel["cv"].items()]
    for k, d in sel["versus"].items():
        lines.append(f"\n{CANDIDATES[k]} minus {CANDIDATES[d['against']]}, relative error: {d['mean']:+.2%} "
                     f"(95 % CI [{d['lo']:+.2%}, {d['hi']:+.2%}], {d['n']} architectures).")  # fmt: skip
    lines += ["", f"**{EVAL_SETS['test']}**, reported only, never used to decide:", "", head, rule]
    lines += [_metric_row(NAMES[k], v) for k, v in {"predictor": meta.test, **meta.baselines}.items()]
    lines += ["", "**Out of distribution** (the shipped predictor, and the (edge group, op) lookup table on the "
              "same rows):", "",
              "| set | rows | predictor MAPE | lookup table (edge group, op) MAPE | predictor Kendall τ |",
              "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {EVAL_SETS['test']} | {meta.test['n']} | {meta.test['mape']:.2%} | "
              f"{meta.baselines['lut_op']['mape']:.2%} | {_num(meta.test['kendall_tau'])} |"]  # fmt: skip
    for name, sets in meta.ood.items():
        label = EVAL_SETS.get(name) or f"architectures derived by search {name.removeprefix('derived-')}"
        p, lut = sets["predictor"], sets.get("lut_op", {}).get("mape")
        lines.append(f"| {label} | {p['n']} | {p['mape']:.2%} | {_pct(lut)} | {_num(p['kendall_tau'])} |")
    return "\n".join(lines) + "\n"


def plot_scatter(path: Path, points: dict[str, list[float]], reference_ms: float, hw: str, s: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(points["test_true"]) * reference_ms
    p = np.asarray(points["test_pred"]) * reference_ms
    fig, ax = plt.subplots(figsize=(5, 5))
    lo, hi = float(min(y.min(), p.min())) * 0.95, float(max(y.max(), p.max())) * 1.05
    grid = np.linspace(lo, hi, 50)
    ax.fill_between(grid, grid * 0.9, grid * 1.1, color="tab:green", alpha=0.15, label="+-10 %")
    ax.plot(grid, grid, color="tab:green", lw=1)
    ax.scatter(y, p, s=10, alpha=0.7, label="test architectures")
    ax.set(
        xlim=(lo, hi),
        ylim=(lo, hi),
        xlabel="measured latency (ms)",
        ylabel="predicted latency (ms)",
        title=f"{hw}\nMAPE {s['mape']:.2%}, tau {s['kendall_tau']:.3f}",
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
