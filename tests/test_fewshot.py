"""Few-shot latency on a new device from other devices' latencies (lanas.fewshot), on
synthetic devices whose relation to the sources is known."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from lanas import fewshot


def _devices(n: int = 2000, sources: int = 6, seed: int = 0):
    """Sources = exp(archs' latent costs mixed per device); the new device is a known
    blend of two sources in log space."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    mix = rng.normal(size=(3, sources))
    src = np.exp(1.5 + 0.3 * latent @ mix + 0.01 * rng.normal(size=(n, sources)))
    new = np.exp(0.2 + 0.7 * np.log(src[:, 1]) + 0.4 * np.log(src[:, 4]))
    return src, new


def test_select_is_deterministic_distinct_and_bounded():
    src, _ = _devices()
    picks = fewshot.select(src, 10, seed=3)
    assert picks == fewshot.select(src, 10, seed=3)
    assert len(set(picks)) == 10 and all(0 <= p < len(src) for p in picks)
    with pytest.raises(ValueError, match="cannot pick 0"):
        fewshot.select(src, 0)
    with pytest.raises(ValueError, match="cannot pick"):
        fewshot.select(src[:5], 6)


def test_select_covers_the_architectures_better_than_random_picks():
    """Every architecture is nearer (in the sources' log latencies) to some pick than it is
    with uniformly random picks: the picks stand for the whole population."""
    src, _ = _devices()
    logs = np.log(src)

    def coverage(picks):
        return np.linalg.norm(logs[:, None, :] - logs[None, picks, :], axis=2).min(1).mean()

    rng = np.random.default_rng(0)
    random_cover = np.mean([coverage(rng.choice(len(src), 10, replace=False)) for _ in range(20)])
    assert coverage(fewshot.select(src, 10)) < random_cover


def test_fit_ranks_a_blend_of_sources_better_than_the_best_single_source():
    src, new = _devices()
    picks = fewshot.select(src, 10)
    model = fewshot.fit(src, picks, new[picks])
    pred = model.predict(src)
    # the floor sees one source only: it cannot rank a blend as well
    floor = fewshot.affine_from_best_source(src, picks, new[picks])
    assert spearmanr(floor, new).statistic < spearmanr(pred, new).statistic
    assert np.median(np.abs(pred / new - 1)) < np.median(np.abs(floor / new - 1))


def test_affine_floor_finds_the_source_a_device_copies():
    src, _ = _devices()
    copy = 2.0 * src[:, 2] ** 1.1
    picks = fewshot.select(src, 5)
    assert np.allclose(fewshot.affine_from_best_source(src, picks, copy[picks]), copy, rtol=1e-6)


def test_upper_bound_is_above_the_prediction():
    src, new = _devices()
    noisy = new * np.exp(np.random.default_rng(1).normal(scale=0.05, size=len(new)))
    picks = fewshot.select(src, 10)
    point, upper = fewshot.with_upper_bound(src, picks, noisy[picks])
    assert np.allclose(point, fewshot.fit(src, picks, noisy[picks]).predict(src))
    assert np.all(upper >= point) and np.any(upper > point)


@pytest.mark.parametrize("bad", [np.nan, -1.0, 0.0])
def test_bad_latencies_are_refused(bad):
    src, new = _devices()
    picks = fewshot.select(src, 5)
    timed = new[picks].copy()
    timed[2] = bad
    with pytest.raises(ValueError, match="timed latencies must be non-empty, finite and > 0"):
        fewshot.fit(src, picks, timed)
    src = src.copy()
    src[7, 1] = bad
    with pytest.raises(ValueError, match="source latencies"):
        fewshot.select(src, 5)
