"""The report's pure functions on hand-made rows: fronts per target, the cross-target
matrix and the specialisation table."""

import pytest

from lanas_pipeline.report.analysis import analyse, budgets, latency_matrix, on_target, specialisation
from lanas_pipeline.report.markdown import _error_by_kind, budget_section

A, B = "cpu-t1-torch-b1", "cpu-t1-onnxruntime-b1"
# (name, kind, lam, searched_for, test_acc, ms on A, ms on B)
CANDIDATES = [
    ("lam0-seed0", "searched", 0.0, None, 0.99, 10.0, 1.0),
    (f"lam1-seed0-{A}", "searched", 1.0, A, 0.98, 4.0, 0.9),
    (f"lam1-seed0-{B}", "searched", 1.0, B, 0.97, 6.0, 0.6),
    ("random-0", "random", None, None, 0.95, 12.0, 1.2),
]


def rows():
    out = []
    for name, kind, lam, sf, acc, ms_a, ms_b in CANDIDATES:
        for target, ms in ((A, ms_a), (B, ms_b)):
            out.append(
                {
                    "name": name,
                    "kind": kind,
                    "lam": lam,
                    "seed": 0 if kind == "searched" else None,
                    "searched_for": sf,
                    "target": target,
                    "test_acc": acc,
                    "val_acc": acc,
                    "measured_latency_ms": ms,
                    "prediction_error": 0.01,
                }
            )
    return out


def test_each_target_front_holds_only_what_was_searched_for_it():
    results = rows()
    mine = on_target(results, B)
    assert sorted(r["name"] for r in mine) == ["lam0-seed0", f"lam1-seed0-{B}", "random-0"]
    a = analyse(mine)
    assert {r["name"] for r in mine if r["on_front"]} == {"lam0-seed0", f"lam1-seed0-{B}"}
    assert a["savings"] == [
        {
            "seed": 0,
            "decided_on": "val_acc",
            "lam0_acc": 0.99,
            "lam0_ms": 1.0,
            "best_lam": None,
            "best_acc": None,
            "saved": 0.0,
        }
    ]
    assert a["headline"][0]["latency_change"] == pytest.approx(-0.4)


def test_matrix_and_specialisation_read_the_same_cells():
    results = rows()
    matrix = {m["name"]: m for m in latency_matrix(results, [A, B])}
    assert matrix[f"lam1-seed0-{A}"][B] == 0.9 and matrix["random-0"][A] == 12.0
    table = {(s["deployed_on"], s["searched_for"]): s for s in specialisation(results, [A, B])}
    assert set(table) == {(A, B), (B, A)}
    # on B, the architecture searched for A takes 0.9 ms against 0.6 ms: 50 % lost
    assert table[(B, A)]["latency_lost"] == pytest.approx(0.9 / 0.6 - 1)
    assert table[(A, B)]["latency_lost"] == pytest.approx(6.0 / 4.0 - 1)
    assert table[(B, A)]["acc_searched_for_other"] == 0.98


def _row(name, kind, lam, val, test, ms, seed=0):
    return {
        "name": name,
        "kind": kind,
        "lam": lam,
        "seed": seed,
        "searched_for": None,
        "target": A,
        "test_acc": test,
        "val_acc": val,
        "measured_latency_ms": ms,
        "prediction_error": 0.0,
    }


def test_latency_saved_is_decided_on_validation_where_test_would_choose_differently():
    rows = [
        _row("lam0", "searched", 0.0, val=0.90, test=0.90, ms=10.0),
        # on test this one matches lambda = 0 and is fastest, but its validation accuracy is lower
        _row("lam1", "searched", 1.0, val=0.85, test=0.95, ms=2.0),
        _row("lam0.1", "searched", 0.1, val=0.92, test=0.88, ms=5.0),
    ]
    s = analyse(rows)["savings"][0]
    assert (s["decided_on"], s["best_lam"], s["saved"]) == ("val_acc", 0.1, pytest.approx(0.5))
    # trained on train + val (DARTS' final training): no validation accuracy, so test decides, and says so
    for r in rows:
        r["val_acc"] = None
    s = analyse(rows)["savings"][0]
    assert (s["decided_on"], s["best_lam"], s["saved"]) == ("test_acc", 1.0, pytest.approx(0.8))


def test_hypervolume_compares_sets_of_equal_size_and_pairs_matched_random():
    searched = [_row("lam0", "searched", 0.0, 0.9, 0.90, 10.0), _row("lam1", "searched", 1.0, 0.9, 0.88, 4.0)]
    # six random points, none fast: their full hypervolume beats the searched two only by number
    rnd = [_row(f"random-{i}", "random", None, 0.9, 0.90 + 0.01 * i, 9.0 + i, seed=None) for i in range(6)]
    matched = [_row("matched-lam1", "matched", 1.0, 0.9, 0.86, 4.1)]
    a = analyse(searched + rnd + matched)
    eq = a["hypervolume_equal_size"]
    assert eq["random"]["size"] == 2 and eq["random"]["searched"] == a["hypervolume"]["searched"]
    assert a["hypervolume"]["random"] > eq["random"]["random"]  # six points against two: the full set has more area
    assert eq["matched"]["size"] == 1 and eq["matched"]["matched"] == a["hypervolume"]["matched"]
    assert eq["matched"]["searched"] < a["hypervolume"]["searched"]  # the searched pair cut to single points
    assert a["dominance"]["matched"]["dominated_by_searched"] == 1.0
    assert a["searched_minus_matched_acc"]["n"] == 1
    assert a["searched_minus_matched_acc"]["mean"] == pytest.approx(0.02)


def test_front_is_over_the_searched_architectures_only():
    # a random architecture dominates lam1; over all candidates lam1 would drop off the front
    rows = [
        _row("lam0", "searched", 0.0, 0.9, 0.90, 10.0),
        _row("lam1", "searched", 1.0, 0.9, 0.88, 4.0),
        _row("random-0", "random", None, 0.9, 0.95, 3.0, seed=None),
    ]
    analyse(rows)
    assert {r["name"]: r["on_front"] for r in rows} == {"lam0": True, "lam1": True, "random-0": False}


def test_budget_table_marks_missed_budgets_and_the_sweep_under_each():
    results = rows()
    for target, ms, pred in ((A, 4.5, 4.4), (B, 0.8, 0.7)):  # searched for A under 5 ms: met on A
        results.append(
            {
                "name": f"budget5ms-seed0-{A}",
                "kind": "budget",
                "lam": 0.2,
                "budget_ms": 5.0,
                "seed": 0,
                "searched_for": A,
                "target": target,
                "test_acc": 0.985,
                "val_acc": 0.985,
                "measured_latency_ms": ms,
                "predicted_latency_ms": pred,
                "prediction_error": 0.0,
            }
        )
    for target, ms in ((A, 0.7), (B, 0.7)):  # searched for B under 0.65 ms: measured 0.7, missed
        results.append(
            {
                "name": f"budget0.65ms-seed0-{B}",
                "kind": "budget",
                "lam": 0.5,
                "budget_ms": 0.65,
                "seed": 0,
                "searched_for": B,
                "target": target,
                "test_acc": 0.96,
                "val_acc": 0.96,
                "measured_latency_ms": ms,
                "predicted_latency_ms": 0.6,
                "prediction_error": 0.0,
            }
        )
    table = {r["target"]: r for r in budgets(results)}
    assert sorted(table) == sorted([A, B])  # each budget on its own target only
    a, b = table[A], table[B]
    assert a["met"] is True and a["share_of_budget"] == pytest.approx(0.9) and a["measured_ms"] == 4.5
    assert a["sweep_best"] == f"lam1-seed0-{A}" and a["sweep_best_acc"] == 0.98  # lam0 (10 ms) does not meet 5 ms
    assert b["met"] is False and b["sweep_best"] == f"lam1-seed0-{B}"  # 0.6 ms meets 0.65
    assert f"budget5ms-seed0-{A}" in {r["name"] for r in on_target(results, A)}
    assert f"budget5ms-seed0-{A}" not in {r["name"] for r in on_target(results, B)}
    lines = budget_section(budgets(results))
    assert "1 of 2 budgets met" in lines[2] and any("**missed**" in line for line in lines)


def test_prediction_error_is_reported_kind_by_kind():
    mine = on_target(rows(), A)
    mine[0]["prediction_error"] = -0.05  # the lambda = 0 architecture, 5 % under
    line = _error_by_kind(mine)[-1]
    assert line == "Mean |predicted / measured − 1| by kind: searched 3.0% (n=2), random 1.0% (n=1)."
