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
from lanas.network import MacroConfig, Network


def regression_metrics(pred: np.ndarray, true: np.ndarray, ms_per_unit: float = 1.0) -> dict[str, float]:
    """MAPE, RMSE (in ms: units x ``ms_per_unit``), share within +-5 / +-10 %, Kendall tau, Spearman rho."""
    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    rel = np.abs(pred - true) / np.abs(true)
    tau = stats.kendalltau(pred, true).statistic if len(true) > 1 else float("nan")
    rho = stats.spearmanr(pred, true).statistic if len(true) > 1 else float("nan")
    return {"mape": float(rel.mean()), "rmse_ms": float(np.sqrt(np.mean((pred - true) ** 2)) * ms_per_unit),
            "within_5pct": float((rel <= 0.05).mean()), "within_10pct": float((rel <= 0.10).mean()),
            "kendall_tau": float(tau), "spearman_rho": float(rho), "n": int(len(true))}


def fit_lut(x: np.ndarray, y: np.ndarray):
    """Additive lookup table: ridge regression, its strength chosen by cross-validation."""
    from sklearn.linear_model import RidgeCV

    from lanas.predictor import RIDGE_GRID

    return RidgeCV(alphas=RIDGE_GRID).fit(x, y)


def fit_trees(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed).fit(x, y)


def network_flops(genotype: Genotype, macro: MacroConfig, resolution: int) -> int:
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
