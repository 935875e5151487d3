"""The report's pure functions on hand-made rows: fronts per target, the cross-target
matrix and the specialisation table."""
import pytest

from pipeline.report import analyse, latency_matrix, on_target, specialisation

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
            out.append({"name": name, "kind": kind, "lam": lam, "seed": 0 if kind == "searched" else None,
                        "searched_for": sf, "target": target, "test_acc": acc, "measured_latency_ms": ms,
                        "prediction_error": 0.01})
    return out


def test_each_target_front_holds_only_what_was_searched_for_it():
    results = rows()
    mine = on_target(results, B)
    assert sorted(r["name"] for r in mine) == ["lam0-seed0", f"lam1-seed0-{B}", "random-0"]
    a = analyse(mine)
    assert {r["name"] for r in mine if r["on_front"]} == {"lam0-seed0", f"lam1-seed0-{B}"}
    assert a["savings"] == [{"seed": 0, "lam0_acc": 0.99, "lam0_ms": 1.0, "best_lam": None, "saved": 0.0}]
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
