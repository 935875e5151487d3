"""Pure functions that the stages rest on: regression metrics, the arch_id split, the bootstrap."""

import math

import numpy as np
import pytest

from lanas.quality import paired_bootstrap, regression_metrics, verdict
from pipeline.fit import split_of


def test_regression_metrics_on_hand_computed_values():
    true = np.array([1.0, 2.0, 4.0, 8.0])
    pred = np.array([1.09, 2.0, 3.0, 8.72])  # relative errors 9 %, 0, 25 %, 9 %
    m = regression_metrics(pred, true, ms_per_unit=2.0)
    assert m["mape"] == pytest.approx(0.1075)
    assert m["rmse_ms"] == pytest.approx(2.0 * math.sqrt((0.0081 + 0 + 1 + 0.5184) / 4))
    assert m["within_5pct"] == 0.25 and m["within_10pct"] == 0.75
    assert m["kendall_tau"] == pytest.approx(1.0) and m["spearman_rho"] == pytest.approx(1.0)  # same order
    flat = regression_metrics(np.ones(3), np.array([1.0, 2.0, 3.0]))
    assert math.isnan(flat["kendall_tau"]) and math.isnan(flat["spearman_rho"])  # undefined, not 0


def test_split_of_is_a_stable_hash_split_with_the_asked_shares():
    ids = [f"{i:040x}" for i in range(4000)]
    splits = [split_of(a, 0.1, 0.2) for a in ids]
    assert splits == [split_of(a, 0.1, 0.2) for a in ids]  # a pure function of arch_id
    share = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert share["test"] == pytest.approx(0.2, abs=0.03) and share["val"] == pytest.approx(0.1, abs=0.03)
    # growing val never moves a test architecture: test is decided first
    assert all(split_of(a, 0.3, 0.2) == "test" for a, s in zip(ids, splits) if s == "test")


def test_paired_bootstrap_and_verdict():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 0.1, 200)
    tie = paired_bootstrap(a, a + rng.normal(0, 1e-3, 200))
    assert tie["lo"] <= 0 <= tie["hi"] and verdict(tie) == "tie" and tie["n"] == 200
    assert verdict(paired_bootstrap(a, a + 0.05)) == "better" and verdict(paired_bootstrap(a + 0.05, a)) == "worse"
