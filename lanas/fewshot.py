"""Latency on a new device from a few timings, by what other devices already say.

A device nobody can attach to the cluster (a phone, a board) is timed on K architectures;
the devices already in the run (the *sources*) have latencies, timed or predicted, for
every candidate architecture. Across devices, log latencies are close to linear in each
other: a GPU at batch 256 ranks architectures by their FLOPs, a phone by its own kernel
costs, and a new device is largely a weighted blend of those. So:

* :func:`select` -- which K architectures to time: k-means on the sources' log latencies
  (projected on their leading principal components, each standardised), and per cluster
  the architecture nearest its centre. The picks cover the ways the sources disagree,
  not only fast and slow.
* :func:`fit` -- the new device's log latency as the mean of two linear maps of the
  sources' log latencies: a ridge regression over all sources (standardised; its strength
  chosen by leave-one-out cross-validation, scikit-learn's RidgeCV) and the affine map from
  the one source that best ranks the K timings. The ridge uses every source but overfits
  K = 5 to 10 rows now and then; the affine map cannot overfit but misses what no single
  source has; their mean was the best of the variants tried on the design devices
  (``docs/research.md``).
* :func:`affine_from_best_source` -- the floor it is compared with: an affine map (in log
  space) from the one source that best ranks the K timings.

``benchmarks/nb201_transfer.py`` measures these on NAS-Bench-201's 21 published devices,
leaving each device out in turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV

from lanas.transfer import centre_picks

RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
SELECT_COMPONENTS = 5  # principal components of the sources' log latencies that select() spreads over


def _log_positive(ms: np.ndarray, what: str) -> np.ndarray:
    ms = np.asarray(ms, dtype=np.float64)
    if ms.size == 0 or not np.all(np.isfinite(ms)) or not np.all(ms > 0):
        raise ValueError(f"{what} must be non-empty, finite and > 0 ms")
    return np.log(ms)


def select(source_ms: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """``k`` row indices of ``source_ms`` (``[architectures, sources]``, ms) to time on the
    new device: deterministic for a given ``seed``, all distinct."""
    logs = _log_positive(source_ms, "source latencies")
    if logs.ndim != 2:
        raise ValueError("source latencies must be a [architectures, sources] matrix")
    if not 0 < k <= len(logs):
        raise ValueError(f"cannot pick {k} of {len(logs)} architectures")
    centred = logs - logs.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    r = min(SELECT_COMPONENTS, int((s > 1e-9 * s.max()).sum()) if s.size and s.max() > 0 else 0)
    return centre_picks(u[:, :r] if r else np.zeros((len(logs), 1)), k, seed)


@dataclass(frozen=True)
class CrossDeviceFit:
    """``log(ms) = intercept + coef . (log(source_ms) - centre) / scale``."""

    centre: np.ndarray  # [sources] mean log latency of each source over the candidates
    scale: np.ndarray  # [sources] its standard deviation
    coef: np.ndarray  # [sources]
    intercept: float
    alpha: float  # the strength leave-one-out chose for the ridge half

    def predict(self, source_ms: np.ndarray) -> np.ndarray:
        z = (_log_positive(source_ms, "source latencies") - self.centre) / self.scale
        return np.exp(self.intercept + z @ self.coef)


def ridge_fit(population_ms: np.ndarray, picks: list[int] | np.ndarray, timed_ms: np.ndarray) -> CrossDeviceFit:
    """The ridge half of :func:`fit` alone: the new device's log latency regressed on every
    source's log latency, standardised over ``population_ms`` (``[candidates, sources]``),
    from its timings ``timed_ms`` of the rows ``picks``; strength by leave-one-out."""
    logs = _log_positive(population_ms, "source latencies")
    y = _log_positive(timed_ms, "timed latencies")
    picks = np.asarray(picks, dtype=int)
    if len(picks) != len(y) or len(y) < 3:
        raise ValueError(f"need one timing per pick and at least 3 of them, got {len(y)} for {len(picks)} picks")
    centre, scale = logs.mean(0), logs.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit((logs[picks] - centre) / scale, y)
    return CrossDeviceFit(centre, scale, ridge.coef_.astype(np.float64), float(ridge.intercept_), float(ridge.alpha_))


def fit(population_ms: np.ndarray, picks: list[int] | np.ndarray, timed_ms: np.ndarray) -> CrossDeviceFit:
    """The new device's model from its timings ``timed_ms`` of the rows ``picks`` of
    ``population_ms`` (``[candidates, sources]``: the sources' latencies of every candidate,
    which set each source's standardisation): the mean, in log space, of the ridge
    regression over all sources (:func:`ridge_fit`) and the affine map from the source that
    best ranks the picks -- both linear in the sources' log latencies, so their mean is one
    linear model."""
    ridge = ridge_fit(population_ms, picks, timed_ms)
    picks = np.asarray(picks, dtype=int)
    best, a, b = _best_affine(np.log(population_ms)[picks], np.log(timed_ms))
    coef = 0.5 * ridge.coef
    coef[best] += 0.5 * b * ridge.scale[best]
    intercept = 0.5 * ridge.intercept + 0.5 * (a + b * ridge.centre[best])
    return CrossDeviceFit(ridge.centre, ridge.scale, coef, intercept, ridge.alpha)


def _best_affine(logs: np.ndarray, y: np.ndarray) -> tuple[int, float, float]:
    """The source (column of ``logs``) whose values rank ``y`` best (Spearman), and the
    least-squares ``y ~ a + b * logs[:, best]``."""
    rho = [spearmanr(logs[:, s], y).statistic if np.ptp(logs[:, s]) > 0 else -np.inf for s in range(logs.shape[1])]
    best = int(np.nanargmax(rho))
    b, a = np.polyfit(logs[:, best], y, 1)
    return best, float(a), float(b)


def affine_from_best_source(
    population_ms: np.ndarray, picks: list[int] | np.ndarray, timed_ms: np.ndarray
) -> np.ndarray:
    """The floor: predicted ms of every candidate from the single source whose latencies
    rank the K timings best (Spearman), mapped by least squares in log space."""
    logs = _log_positive(population_ms, "source latencies")
    picks = np.asarray(picks, dtype=int)
    best, a, b = _best_affine(logs[picks], _log_positive(timed_ms, "timed latencies"))
    return np.exp(a + b * logs[:, best])


BOUND_Z = 2.0  # jackknife standard errors in the upper bound
BOUND_MARGIN = 0.05  # and a relative margin on top: what the picks cannot show (timing noise, the model's bias)


def with_upper_bound(
    population_ms: np.ndarray,
    picks: list[int] | np.ndarray,
    timed_ms: np.ndarray,
    z: float = BOUND_Z,
    margin: float = BOUND_MARGIN,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit`'s prediction of every candidate and an upper bound on it: the log
    prediction plus ``z`` jackknife standard errors over the picks (refitted without each
    pick in turn), times ``1 + margin``. What a latency budget is checked against when a
    miss costs more than a slightly slower choice: the bound widens where the picks
    disagree about a candidate. The defaults were chosen on the NAS-Bench-201 design
    devices (``docs/research.md``)."""
    picks = np.asarray(picks, dtype=int)
    timed = np.asarray(timed_ms, dtype=np.float64)
    point = np.log(fit(population_ms, picks, timed).predict(population_ms))
    jack = np.array(
        [
            np.log(fit(population_ms, np.delete(picks, i), np.delete(timed, i)).predict(population_ms))
            for i in range(len(picks))
        ]
    )
    se = jack.std(0) * np.sqrt(len(picks) - 1)
    return np.exp(point), np.exp(point + z * se) * (1.0 + margin)
