"""Pure functions that the stages rest on: regression metrics, the arch_id split, the bootstrap."""

import math

import numpy as np
import pytest

from lanas.quality import (
    fold_of,
    noise_ceiling,
    out_of_fold,
    paired_bootstrap,
    regression_metrics,
    select_model,
    verdict,
)
from lanas_pipeline.fit.data import split_of, split_row


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
    splits = [split_of(a, 0.2) for a in ids]
    assert splits == [split_of(a, 0.2) for a in ids]  # a pure function of arch_id
    assert splits.count("test") / len(ids) == pytest.approx(0.2, abs=0.03)
    # a larger test share only adds test architectures
    assert all(split_of(a, 0.3) == "test" for a, s in zip(ids, splits) if s == "test")


def test_split_row_by_sampler():
    ids = [f"{i:040x}" for i in range(400)]
    test_ids = [a for a in ids if split_of(a, 0.2) == "test"]
    assert {split_row(a, "uniform", 0.2) for a in test_ids} == {"test"}
    assert {split_row(a, "coverage", 0.2) for a in test_ids} == {"test_coverage"}  # scored apart
    assert {split_row(a, "derived", 0.2) for a in ids} == {"train"}  # a search's results always train
    assert {split_row(a, "published", 0.2) for a in ids} == {"published"}  # never trained on


def test_folds_are_stable_and_balanced():
    ids = [f"{i:040x}" for i in range(3000)]
    folds = np.array([fold_of(a, 5) for a in ids])
    assert set(folds) == set(range(5)) and np.bincount(folds).min() > 500
    assert list(folds) == [fold_of(a, 5) for a in ids]
    # independent of the test split: each fold holds about the test share
    test = np.array([split_of(a, 0.2) == "test" for a in ids])
    assert all(abs(test[folds == k].mean() - 0.2) < 0.05 for k in range(5))


def test_out_of_fold_never_predicts_a_row_with_itself():
    x = np.arange(20.0)[:, None]
    y = np.arange(20.0)
    folds = np.arange(20) % 4
    # a "model" that predicts the mean of its training targets: the held-out row is never in it
    oof = out_of_fold(lambda xa, ya, xb: np.full(len(xb), ya.mean()), x, y, folds)
    for k in range(4):
        assert np.allclose(oof[folds == k], y[folds != k].mean())


def test_select_model_keeps_the_simpler_unless_the_richer_wins_beyond_noise():
    rng = np.random.default_rng(0)
    y = rng.uniform(1, 2, 300)
    simple = y * (1 + rng.normal(0, 0.05, 300))
    noisy_tie = y * (1 + rng.normal(0, 0.05, 300))  # as good, by chance slightly better or worse
    better = y * (1 + rng.normal(0, 0.01, 300))
    tie = select_model({"additive": simple, "mlp": noisy_tie}, y)
    assert tie["chosen"] == "additive" and tie["versus"]["mlp"]["lo"] <= 0 <= tie["versus"]["mlp"]["hi"]
    assert select_model({"additive": simple, "mlp": better}, y)["chosen"] == "mlp"
    assert select_model({"additive": better, "mlp": simple}, y)["chosen"] == "additive"
    assert set(tie["cv"]) == {"additive", "mlp"} and tie["cv"]["additive"]["n"] == 300


def test_coverage_sampling_concentrates_ops_and_extends_like_uniform():
    from collections import Counter

    from lanas.space import SamplingSettings, SearchSpace, sample_mixed

    space = SearchSpace()
    mixed = sample_mixed(space, 200, 0, SamplingSettings(coverage_share=0.5, concentration=0.3))
    kinds = Counter(k for _, k in mixed)
    assert kinds == {"uniform": 100, "coverage": 100} and len({g.arch_id for g, _ in mixed}) == 200

    def top_share(g):  # share of a cell's 8 edges held by its most frequent op
        return np.mean([Counter(op for op, _ in cell).most_common(1)[0][1] / 8 for cell in (g.normal, g.reduce)])

    share = {k: np.mean([top_share(g) for g, kk in mixed if kk == k]) for k in kinds}
    assert share["coverage"] > share["uniform"] + 0.15  # a few ops dominate a coverage cell
    bigger = sample_mixed(space, 300, 0, SamplingSettings(coverage_share=0.5, concentration=0.3))
    for kind in kinds:  # each sampler's list is a prefix of its own stream
        small = [g for g, k in mixed if k == kind]
        assert [g for g, k in bigger if k == kind][: len(small)] == small


def test_paired_bootstrap_and_verdict():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 0.1, 200)
    tie = paired_bootstrap(a, a + rng.normal(0, 1e-3, 200))
    assert tie["lo"] <= 0 <= tie["hi"] and verdict(tie) == "tie" and tie["n"] == 200
    assert verdict(paired_bootstrap(a, a + 0.05)) == "better" and verdict(paired_bootstrap(a + 0.05, a)) == "worse"


def test_noise_ceiling_is_what_a_perfect_predictor_reaches_against_noisy_labels():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(3)
    truth = np.exp(rng.normal(0.0, 0.15, 500))  # a 15 % spread of true latencies
    label = lambda x: x * np.exp(rng.normal(0.0, 0.03, len(x)))  # noqa: E731  3 % noise per measurement
    observed = label(truth)
    seen = np.mean([kendalltau(truth, label(truth))[0] for _ in range(50)])  # the perfect predictor, scored
    c = noise_ceiling(observed, label(truth[:200]), label(truth[:200]))
    assert c["lo"] < seen < c["hi"] and abs(c["tau"] - seen) < 0.01
    assert c["noise"] == pytest.approx(0.03, rel=0.15) and c["pairs"] == 200
    quiet = noise_ceiling(observed, truth[:200], truth[:200] * 1.0001)  # labels that repeat: tau about 1
    assert quiet["lo"] > 0.99 > c["hi"]
    # labels that are the mean of two measurements: half the noise variance, a higher ceiling
    first, again = label(truth[:200]), label(truth[:200])
    mean = lambda x: x * np.exp(rng.normal(0.0, 0.03, (2, len(x)))).mean(0)  # noqa: E731
    seen2 = np.mean([kendalltau(truth, mean(truth))[0] for _ in range(50)])
    c2 = noise_ceiling(mean(truth), first, again, measurements=2)
    assert c2["lo"] < seen2 < c2["hi"] and abs(c2["tau"] - seen2) < 0.01 and c2["tau"] > c["hi"]
    assert c2["noise"] == pytest.approx(0.03 / np.sqrt(2), rel=0.15)
    with pytest.raises(ValueError, match="at least 3 repeated"):
        noise_ceiling(observed, truth[:2], truth[:2])


def test_ddp_shards_are_equal_and_cover_every_row():
    import torch

    from lanas_pipeline.fit.train import shard

    for n in (1, 2, 7, 129, 130):
        for world in (1, 2, 3):
            parts = [shard(n, r, world) for r in range(world)]
            assert len({len(p) for p in parts}) == 1  # equal steps per epoch on every worker
            assert set(torch.cat(parts).tolist()) == set(range(n))
