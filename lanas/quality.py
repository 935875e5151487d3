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
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import stats

from lanas.genotype import Genotype
from lanas.network import MacroSettings, Network


def regression_metrics(pred: np.ndarray, true: np.ndarray, ms_per_unit: float = 1.0) -> dict[str, float]:
    """MAPE, RMSE (in ms: units x ``ms_per_unit``), share within +-5 / +-10 %, Kendall tau, Spearman rho."""
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

    from lanas.predictor import RIDGE_GRID

    return RidgeCV(alphas=RIDGE_GRID).fit(x, y)


def fit_trees(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed).fit(x, y)


def network_flops(genotype: Genotype, macro: MacroSettings, resolution: int) -> int:
    """FLOPs of one forward pass of the deployed network on one image."""
    from torch.utils.flop_counter import FlopCounterMode

    net = Network(genotype, macro).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(1, macro.in_channels, resolution, resolution))
    return int(counter.get_total_flops())


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


def verdict(diff: dict[str, float]) -> str:
    """'better', 'worse' or 'tie' for a bootstrap interval of (ours - theirs) errors."""
    return "better" if diff["hi"] < 0 else "worse" if diff["lo"] > 0 else "tie"
