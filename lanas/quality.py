"""How good is a latency predictor? Metrics, and the baselines it must beat.

Baselines, fitted on the same training rows and scored on the same test rows:

* ``lut``   -- an additive per-(cell, edge, op) lookup table fitted by least squares
  (the ProxylessNAS/FBNet approach, one entry per position and op): ridge regression
  on the one-hot encoding;
* ``lut_op`` -- an additive lookup table per (edge group, op): ridge regression on the
  op counts ``x @ group_matrix`` (24 entries instead of 224);
* ``trees`` -- a scikit-learn gradient-boosted tree ensemble on the same encoding;
* ``flops`` -- FLOPs of the deployed network, mapped to latency by a 1-D linear fit
  (its rank correlation is what matters).

Model selection (:func:`select_model`) compares candidates on out-of-fold predictions
over every training row (:func:`fold_of`, :func:`out_of_fold`): a few validation rows
cannot separate models whose errors differ by less than their noise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lanas.costs import network_costs
from lanas.genotype import Genotype
from lanas.network import MacroSettings
from lanas.predictor import RIDGE_GRID


def regression_metrics(pred: np.ndarray, true: np.ndarray, ms_per_unit: float = 1.0) -> dict[str, float]:
    """MAPE, RMSE (in ms: units x ``ms_per_unit``), share within +-5 / +-10 %, Kendall tau, Spearman rho."""
    from scipy import stats  # here, not at the top: a second of import for every Ray worker that imports lanas

    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    rel = np.abs(pred - true) / np.abs(true)
    varied = len(true) > 1 and np.ptp(pred) > 0 and np.ptp(true) > 0  # rank correlation is undefined otherwise
    tau = stats.kendalltau(pred, true).statistic if varied else float("nan")
    rho = stats.spearmanr(pred, true).statistic if varied else float("nan")
    return {
        "mape": float(rel.mean()),
        "rmse_ms": float(np.sqrt(np.mean((pred - true) ** 2)) * ms_per_unit),
        "within_5pct": float((rel <= 0.05).mean()),
        "within_10pct": float((rel <= 0.10).mean()),
        "kendall_tau": float(tau),
        "spearman_rho": float(rho),
        "n": int(len(true)),
    }


def fit_lut(x: np.ndarray, y: np.ndarray):
    """Additive lookup table: ridge regression, its strength chosen by cross-validation."""
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=RIDGE_GRID).fit(x, y)


def fit_trees(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed).fit(x, y)


def network_flops(genotype: Genotype, macro: MacroSettings, resolution: int) -> int:
    """FLOPs of one forward pass of the deployed network on one image."""
    return network_costs(genotype, macro, resolution).flops


def fit_flops(flops: Sequence[int], y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.asarray(flops, dtype=float), y, 1)
    return float(slope), float(intercept)


def paired_bootstrap(
    err_a: np.ndarray, err_b: np.ndarray, n: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean of ``err_a - err_b`` over the same test rows, with a percentile bootstrap
    interval (rows resampled with replacement, ``n`` times). An interval that holds 0 is
    a tie within the noise of this test set."""
    a, b = np.asarray(err_a, dtype=float), np.asarray(err_b, dtype=float)
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": int(len(d))}


def noise_ceiling(
    latencies: np.ndarray,
    first: np.ndarray,
    again: np.ndarray,
    n: int = 400,
    seed: int = 0,
    level: float = 0.95,
    measurements: float = 1.0,
) -> dict[str, float]:
    """The Kendall tau a *perfect* predictor reaches against labels this noisy: what a
    test set of ``latencies`` allows, given the same architectures measured twice
    (``first``, ``again``, paired). One measurement's noise variance (log scale) is
    half that of ``log(first / again)``; the labels' own is 1 / ``measurements`` of it
    (a mean of that many independent measurements, or a protocol that much quieter).
    The true latencies are the observed ones shrunk towards their mean to the variance
    left, and each draw scores them against themselves plus fresh noise. The repeat
    pairs are resampled with replacement in every draw, so the interval holds the
    uncertainty of the noise estimate too.
    Returns mean, lo, hi of tau, the noise (relative sd) and the pairs it came from."""
    from scipy.stats import kendalltau

    logs = np.log(np.asarray(latencies, dtype=float))
    diff = np.log(np.asarray(first, dtype=float) / np.asarray(again, dtype=float))
    if len(diff) < 3 or len(logs) < 3:
        raise ValueError("a noise ceiling needs at least 3 repeated architectures and 3 latencies")
    rng = np.random.default_rng(seed)
    spread, taus = logs.var(ddof=1), []
    for _ in range(n):
        noise = diff[rng.integers(0, len(diff), len(diff))].var(ddof=1) / 2 / measurements
        truth = logs.mean() + (logs - logs.mean()) * np.sqrt(max(spread - noise, 0.0) / spread)
        taus.append(kendalltau(truth, truth + rng.normal(0.0, np.sqrt(noise), len(truth)))[0])
    lo, hi = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
    return {
        "tau": float(np.mean(taus)),
        "lo": float(lo),
        "hi": float(hi),
        "noise": float(np.sqrt(diff.var(ddof=1) / 2 / measurements)),
        "pairs": int(len(diff)),
    }


def verdict(diff: dict[str, float]) -> str:
    """'better', 'worse' or 'tie' for a bootstrap interval of (ours - theirs) errors."""
    return "better" if diff["hi"] < 0 else "worse" if diff["lo"] > 0 else "tie"


def fold_of(key: str, folds: int) -> int:
    """The cross-validation fold of an architecture, from a hash of its id (stable as the
    dataset grows; independent of the train/test split's hash)."""
    import hashlib

    return int(hashlib.sha1(key.encode()).hexdigest()[8:16], 16) % folds


def out_of_fold(fit_predict, x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Cross-validated predictions: each row predicted by ``fit_predict(x_train, y_train,
    x_held_out)`` fitted without the rows of its fold."""
    out = np.full(len(y), np.nan)
    for k in np.unique(folds):
        held = folds == k
        out[held] = fit_predict(x[~held], y[~held], x[held])
    return out


SELECTION_RULE = (
    "the simplest candidate (additive lookup table, then + MLP) unless a richer one has a lower "
    "cross-validated MAPE with 95 % confidence (paired bootstrap over the out-of-fold relative errors of "
    "every training architecture)"
)


def select_model(oof: dict[str, np.ndarray], y: np.ndarray, seed: int = 0, ms_per_unit: float = 1.0) -> dict:
    """Model selection that a few noisy rows cannot fool. ``oof`` maps candidate names,
    simplest first, to out-of-fold predictions of ``y``; a candidate replaces the one
    chosen so far only when its relative errors are lower beyond the 95 % paired
    bootstrap interval (:data:`SELECTION_RULE`). Returns the choice, each candidate's
    cross-validated metrics and the intervals."""
    names = list(oof)
    rel = {k: np.abs(oof[k] - y) / np.abs(y) for k in names}
    chosen, versus = names[0], {}
    for k in names[1:]:
        versus[k] = paired_bootstrap(rel[k], rel[chosen], seed=seed)
        versus[k]["against"] = chosen
        if versus[k]["hi"] < 0:
            chosen = k
    cv = {k: regression_metrics(oof[k], y, ms_per_unit) for k in names}
    return {"chosen": chosen, "cv": cv, "versus": versus, "rule": SELECTION_RULE}
