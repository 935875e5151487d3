"""What the report concludes from the evaluated candidates: fronts, hypervolume, kind
comparisons, latency saved, budgets met, the cross-target matrix and specialisation."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from lanas import quality
from lanas.pareto import dominated_share, equal_size_hypervolume, hypervolume, pareto_mask

from ..records import (
    MEASURED_MS,
    PREDICTED_MS,
    TEST_ACC,
    BudgetRow,
    EvaluatedRow,
    Headline,
    MatrixRow,
    Saving,
    SpecialisationRow,
)

MATCH_TOLERANCE = 0.10  # a latency-matched partner counts as matched within this relative latency


KINDS = ("searched", "matched", "random", "published", "baseline", "budget")  # candidate kinds (see pipeline.evaluate)


OWN_TARGET_KINDS = ("searched", "matched", "budget")  # kinds that belong to the target they were searched for


HV_ACCURACY_MARGIN = 0.01  # hypervolume reference: this much below the lowest accuracy ...


HV_LATENCY_FACTOR = 1.1  # ... and this times the highest latency


def analyse(results: list[EvaluatedRow]) -> dict[str, Any]:
    """Front, hypervolume, savings and prediction error of one target's rows (sets
    ``on_front`` on them)."""
    ok = [r for r in results if r[MEASURED_MS] is not None]
    searched = [r for r in ok if r["kind"] == "searched"]
    pts = [(r[TEST_ACC], r[MEASURED_MS]) for r in searched]
    for r in results:
        r["on_front"] = False
    for r, keep in zip(searched, pareto_mask(pts)):
        r["on_front"] = keep
    all_acc = [r[TEST_ACC] for r in ok]
    all_lat = [r[MEASURED_MS] for r in ok]
    reference = (min(all_acc) - HV_ACCURACY_MARGIN, HV_LATENCY_FACTOR * max(all_lat)) if ok else (0.0, 0.0)
    errs = [abs(r["prediction_error"]) for r in ok if r["prediction_error"] is not None]
    derived_errs = [abs(r["prediction_error"]) for r in searched if r["prediction_error"] is not None]
    return {
        "reference_point": reference,
        **compare_kinds(ok, reference),
        "savings": savings(searched),
        "headline": headline(searched),
        "prediction_mape_all": statistics.mean(errs) if errs else None,
        "prediction_mape_derived": statistics.mean(derived_errs) if derived_errs else None,
        "failed": [r["name"] for r in results if r[MEASURED_MS] is None],
    }


def savings(searched: list[EvaluatedRow]) -> list[Saving]:
    """Per seed: the latency saved at equal-or-better *validation* accuracy versus lambda = 0."""
    out = []
    for base in (r for r in searched if r["lam"] == 0.0):
        key = decision_key(base)
        peers = [r for r in searched if r["seed"] == base["seed"] and r["lam"] > 0 and r[key] >= base[key]]
        best = min(peers, key=lambda r: r[MEASURED_MS], default=None)
        out.append({
            "seed": base["seed"], "decided_on": key, "lam0_acc": base[TEST_ACC],
            "lam0_ms": base[MEASURED_MS], "best_lam": best["lam"] if best else None,
            "best_acc": best[TEST_ACC] if best else None,
            "saved": 1 - best[MEASURED_MS] / base[MEASURED_MS] if best else 0.0,
        })  # fmt: skip
    return out


def headline(searched: list[EvaluatedRow]) -> list[Headline]:
    """The paper's headline, per seed: the highest lambda versus lambda = 0."""
    out = []
    lams = sorted({r["lam"] for r in searched})
    for seed in sorted({r["seed"] for r in searched}):
        by = {r["lam"]: r for r in searched if r["seed"] == seed}
        if 0.0 in by and len(lams) > 1 and lams[-1] in by:
            hi, lo = by[lams[-1]], by[0.0]
            out.append({
                "seed": seed, "lam": hi["lam"],
                "latency_change": hi[MEASURED_MS] / lo[MEASURED_MS] - 1,
                "accuracy_change_points": 100 * (hi[TEST_ACC] - lo[TEST_ACC]),
            })  # fmt: skip
    return out


def compare_kinds(ok: list[EvaluatedRow], reference: tuple[float, float]) -> dict[str, Any]:
    """The searched architectures against each other kind: hypervolume of all points and
    at the searched set's size (more points can only add area), per-point dominance, and
    the paired accuracy difference to the latency-matched random architectures."""
    points = {kind: [(r[TEST_ACC], r[MEASURED_MS]) for r in ok if r["kind"] == kind] for kind in KINDS}
    n = len(points["searched"])
    by_name = {r["name"]: r for r in ok}
    pairs = [
        (by_name[r["name"][len("matched-") :]], r)
        for r in ok
        if r["kind"] == "matched" and r["name"][len("matched-") :] in by_name
    ]
    return {
        "hypervolume": {kind: hypervolume(p, reference) for kind, p in points.items()},
        # more points can only add area: each kind against the searched set at the size of the smaller one
        "hypervolume_equal_size": {
            kind: {
                "size": min(n, len(p)),
                "searched": equal_size_hypervolume(points["searched"], min(n, len(p)), reference),
                kind: equal_size_hypervolume(p, min(n, len(p)), reference),
            }
            for kind, p in points.items()
            if kind != "searched" and p and n
        },
        "dominance": {
            kind: {
                "dominated_by_searched": dominated_share(points["searched"], p),
                "searched_dominated": dominated_share(p, points["searched"]),
            }
            for kind, p in points.items()
            if kind != "searched" and p
        },
        "matched_latency_ratio": [m[MEASURED_MS] / s[MEASURED_MS] for s, m in pairs],
        "searched_minus_matched_acc": quality.paired_bootstrap(
            np.array([s[TEST_ACC] for s, _ in pairs]), np.array([m[TEST_ACC] for _, m in pairs])
        )
        if pairs
        else None,
    }


def decision_key(row: EvaluatedRow) -> str:
    """The accuracy that decides: validation, or test only where the candidate was
    trained on train+val (the DARTS protocol leaves no validation split)."""
    return "val_acc" if row.get("val_acc") is not None else TEST_ACC


def on_target(results: list[EvaluatedRow], spec: str) -> list[EvaluatedRow]:
    """The rows of ``spec``'s front: every candidate measured on it, except architectures
    searched for another target (those are the specialisation table's)."""
    return [
        r
        for r in results
        if r["target"] == spec and (r["kind"] not in OWN_TARGET_KINDS or r["searched_for"] in (None, spec))
    ]


def budgets(results: list[EvaluatedRow]) -> list[BudgetRow]:
    """One row per budget search, on its target: predicted and measured latency, accuracy,
    whether the *measured* latency met the budget, and the best lambda-sweep architecture
    (by the deciding accuracy) that meets the same budget."""
    out = []
    budget_rows = [r for r in results if r["kind"] == "budget" and r["target"] == r["searched_for"]]
    sweeps = {  # per target, once: its lambda-sweep architectures with a measured latency
        spec: [s for s in on_target(results, spec) if s["kind"] == "searched" and s[MEASURED_MS] is not None]
        for spec in {r["target"] for r in budget_rows}
    }
    for r in sorted(budget_rows, key=lambda r: (r["target"], r["budget_ms"], r["seed"])):
        t, ms = r["budget_ms"], r[MEASURED_MS]
        meeting = [s for s in sweeps[r["target"]] if s[MEASURED_MS] <= t]
        best = max(meeting, key=lambda s: (s[decision_key(s)], -s[MEASURED_MS]), default=None)
        out.append(
            {
                "target": r["target"],
                "budget_ms": t,
                "predicted_ms": r[PREDICTED_MS],
                "measured_ms": ms,
                TEST_ACC: r[TEST_ACC],
                "met": None if ms is None else ms <= t,
                "share_of_budget": None if ms is None else ms / t,
                "name": r["name"],
                "seed": r["seed"],
                "lam": r["lam"],
                "sweep_best": best["name"] if best else None,
                "sweep_best_acc": best[TEST_ACC] if best else None,
                "sweep_best_ms": best[MEASURED_MS] if best else None,
            }
        )
    return out


def latency_matrix(results: list[EvaluatedRow], specs: list[str]) -> list[MatrixRow]:
    """One row per candidate: accuracy and measured ms on every target."""
    rows: dict[str, MatrixRow] = {}
    for r in results:
        row = rows.setdefault(
            r["name"],
            {
                "name": r["name"],
                "kind": r["kind"],
                "searched_for": r["searched_for"],
                "lam": r["lam"],
                "seed": r["seed"],
                TEST_ACC: r[TEST_ACC],
            },
        )
        row[r["target"]] = r[MEASURED_MS]
    return [rows[n] for n in rows if all(s in rows[n] for s in specs)]


def specialisation(results: list[EvaluatedRow], specs: list[str]) -> list[SpecialisationRow]:
    """For every deployed target B and other target A: at each (lambda > 0, seed), the
    architecture searched for A measured on B against the one searched for B."""
    on = {(r["target"], r["searched_for"], r["lam"], r["seed"]): r for r in results if r["kind"] == "searched"}
    out = []
    for b in specs:
        for a in specs:
            if a == b:
                continue
            for (tgt, sf, lam, seed), own in sorted(on.items(), key=lambda kv: (kv[0][2], kv[0][3])):
                other = on.get((b, a, lam, seed))
                if tgt != b or sf != b or other is None:
                    continue
                ms_own, ms_other = own[MEASURED_MS], other[MEASURED_MS]
                out.append(
                    {
                        "deployed_on": b,
                        "searched_for": a,
                        "lam": lam,
                        "seed": seed,
                        "ms_searched_for_deployed": ms_own,
                        "ms_searched_for_other": ms_other,
                        "acc_searched_for_deployed": own[TEST_ACC],
                        "acc_searched_for_other": other[TEST_ACC],
                        "latency_lost": (ms_other / ms_own - 1) if ms_own and ms_other else None,
                    }
                )
    return out
