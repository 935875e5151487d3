"""Predictor transfer: a new target's latency predictor from a few of its measurements
and another target's predictor (HELP-style few-shot adaptation, in closed form).

The transferred predictor is::

    new(x) = a + b * src(x) + w . table_features(x)

``src`` is the source target's predictor, frozen; ``(a, b)`` rescale it and ``w`` is a
correction per (edge group, op) and per merged op -- the additive lookup table's
features, :meth:`~lanas.predictor.LatencyPredictor.table_features` -- for what the new
runtime does differently. Four models are fitted on the K samples, each on the
relative error: *scale* (``a = 0, w = 0``), *affine* (``w = 0``), *affine + correction*
(``w`` by ridge regression, its strength by scikit-learn's RidgeCV), and *table*
(``b = 0``: the lookup table fitted from scratch on the K samples, for a source that
ranks this target worse than its own few measurements do); the one with the lowest
leave-one-out MAPE is kept, and that MAPE is its validation figure. The
result is an ordinary :class:`~lanas.predictor.LatencyPredictor` of the source's shape,
so the search and everything after it use it unchanged.

:func:`select_diverse` picks which K architectures to measure on the new target: one
per k-means cluster of the source's predicted latency and the table's features, so a
few measurements cover where the architectures are. (Farthest-point picks, used
before, spread further but over-weight the extremes: transfer from them was worse
than from random picks at K = 20 and worse than the table from scratch in 11 of 60
cells of ``benchmarks/transfer.py``; from k-means picks in 4, none beyond the noise.)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from lanas.predictor import LatencyPredictor

MODELS = ("scale", "affine", "affine+correction", "table")
RIDGE_ALPHAS = tuple(10.0**k for k in range(-2, 5))  # wide: a strong enough ridge switches the correction off
MIN_SAMPLES = 3
TIE = 1e-9  # LOO MAPEs this close are a tie, kept by the simpler model
SOURCE_LIFT = 1e3  # the source column's scale-up in the correction's ridge (its penalty / this^2)


@dataclass(frozen=True)
class Fit:
    """``new = a + b * src + w . groups``, in the units of the targets."""

    a: float
    b: float
    w: np.ndarray

    def predict(self, src: np.ndarray, groups: np.ndarray) -> np.ndarray:
        return self.a + self.b * src + groups @ self.w


def _weighted_lstsq(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares of the relative error ``(design @ c - y) / y``."""
    return np.linalg.lstsq(design / y[:, None], np.ones_like(y), rcond=None)[0]


def fit_model(model: str, src: np.ndarray, groups: np.ndarray, y: np.ndarray) -> Fit:
    zeros = np.zeros(groups.shape[1])
    if model == "scale":
        return Fit(0.0, float(_weighted_lstsq(src[:, None], y)[0]), zeros)
    a, b = _weighted_lstsq(np.stack([np.ones_like(src), src], 1), y)
    if model == "affine":
        return Fit(float(a), float(b), zeros)
    from sklearn.linear_model import RidgeCV

    if model == "table":
        ridge = RidgeCV(alphas=RIDGE_ALPHAS, fit_intercept=True).fit(groups, y, sample_weight=1.0 / y**2)
        return Fit(float(ridge.intercept_), 0.0, ridge.coef_.astype(float))

    # one ridge over [src, groups] in which src's coefficient is all but unpenalised (its column
    # scaled up): the correction shrinks towards the rescaled source as much as LOO asks for
    lift = SOURCE_LIFT * float(np.abs(groups).max() or 1.0) / float(np.abs(src).max())
    design = np.column_stack([src * lift, groups])
    ridge = RidgeCV(alphas=RIDGE_ALPHAS, fit_intercept=True).fit(design, y, sample_weight=1.0 / y**2)
    return Fit(float(ridge.intercept_), float(ridge.coef_[0] * lift), ridge.coef_[1:].astype(float))


def loo_mape(model: str, src: np.ndarray, groups: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out mean relative error of ``model`` on the samples."""
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        f = fit_model(model, src[keep], groups[keep], y[keep])
        errs.append(abs(float(f.predict(src[i : i + 1], groups[i : i + 1])[0]) / y[i] - 1))
    return float(np.mean(errs))


def choose(src: np.ndarray, groups: np.ndarray, y: np.ndarray) -> tuple[str, Fit, dict[str, float]]:
    """The model with the lowest leave-one-out MAPE (ties to the earlier in
    :data:`MODELS`; a fit with a negative scale is passed over), its fit on all
    samples, and every model's LOO MAPE."""
    if len(y) < MIN_SAMPLES:
        raise ValueError(f"transfer needs at least {MIN_SAMPLES} measured architectures, got {len(y)}")
    scores = {m: loo_mape(m, src, groups, y) for m in MODELS}
    fits = {m: fit_model(m, src, groups, y) for m in MODELS}
    usable = [m for m in MODELS if fits[m].b >= 0]  # a negative scale (source anti-correlated) is no predictor
    # the first (simplest) usable model within float noise of the lowest score
    best = next(m for m in usable if scores[m] <= min(scores[u] for u in usable) + TIE)
    return best, fits[best], scores


def transferred(source: LatencyPredictor, fit: Fit, typical_x: torch.Tensor) -> LatencyPredictor:
    """``source`` rewritten as ``a + b * source + w . table_features(x)``: the same weights,
    new output statistics and the correction added to the additive table (with ``b = 0``
    the source's table and MLP output are zeroed: the table alone); ``typical`` is the
    median prediction on ``typical_x`` (random architectures)."""
    if fit.b < 0:
        raise ValueError(f"the transfer's scale must be >= 0, got {fit.b:.4g}: the source does not predict this target")
    new = copy.deepcopy(source).eval()
    std = fit.b * float(source.std) if fit.b > 0 else float(source.std)
    with torch.no_grad():
        if fit.b == 0:
            new.additive.weight.zero_()
            new.additive.bias.zero_()
            if new.mlp is not None:
                new.mlp[-1].weight.zero_()
                new.mlp[-1].bias.zero_()
        new.mean.fill_(fit.a + fit.b * float(source.mean))
        new.std.fill_(std)
        new.additive.weight += torch.as_tensor(fit.w / std, dtype=torch.float32).unsqueeze(0)
        new.typical.fill_(float(new(typical_x).median()))
    return new


def select_diverse(predicted: np.ndarray, groups: np.ndarray, k: int) -> list[int]:
    """``k`` indices spread over the source's predicted latency and the op composition:
    k-means (k clusters) on the standardised features, and per cluster the architecture
    nearest its centre -- a stratified sample that covers where the architectures are,
    not only their extremes. Deterministic."""
    from sklearn.cluster import KMeans

    if not 0 < k <= len(predicted):
        raise ValueError(f"cannot pick {k} of {len(predicted)} architectures")
    feats = np.column_stack([predicted, groups]).astype(float)
    feats = (feats - feats.mean(0)) / np.where(feats.std(0) > 0, feats.std(0), 1.0)
    feats[:, 0] *= np.sqrt(groups.shape[1])  # latency weighs as much as the whole composition
    km = KMeans(n_clusters=k, n_init=4, random_state=0).fit(feats)
    chosen: list[int] = []
    for c in range(k):
        dist = np.linalg.norm(feats - km.cluster_centers_[c], axis=1)
        dist[chosen] = np.inf
        chosen.append(int(dist.argmin()))
    return chosen


def table_np(predictor: LatencyPredictor, x: torch.Tensor) -> np.ndarray:
    """The table features of ``x`` (what the correction ``w`` weighs), as float64."""
    with torch.no_grad():
        return predictor.table_features(x).double().numpy()


def predict_np(predictor: LatencyPredictor) -> Callable[[torch.Tensor], np.ndarray]:
    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return predictor(x).double().numpy()

    return run
