"""Predictor transfer: a new target's latency predictor from a few of its measurements,
another target's predictor and what the network's graph costs (HELP-style few-shot
adaptation, in closed form).

The transferred predictor is::

    new(x) = a + b * src(x) + c . costs(x) + v . pooled(x) + w . table_features(x)

``src`` is the source target's predictor, frozen; ``costs`` are the network's FLOPs,
ATen operators and modules (:mod:`lanas.costs`: what a compiled runtime pays for
arithmetic and an eager one for dispatch), for a compiled runtime its graph's nodes,
layout reorders and nodes of each kind, and how many ops repeat one their edge group
already has (:data:`REPEATS`: what a runtime that compiles a kernel per distinct op
saves); ``table_features`` are the additive lookup table's features
(:meth:`~lanas.predictor.LatencyPredictor.table_features`: op counts per edge group, the
ops a compiler merges, and the repeated ops per edge group) and ``pooled`` the same summed
over edge groups (one per op, one per merged class). Everything is fitted at once on the K
samples by ridge regression on the relative error, its strength by scikit-learn's
RidgeCV: ``b`` and ``c`` are all but unpenalised (their columns scaled up by
:data:`PRIOR_LIFT`; the per-kind node counts, a dozen columns, by :data:`KIND_LIFT`
only, the repeats by :data:`REPEAT_LIFT`), the pooled correction ``v`` is penalised less than the one per
feature ``w`` (by :data:`POOLED_SCALE`), so a few samples move what a runtime does to
an op everywhere before they move it in one edge group. A source whose fitted scale
comes out negative ranks this target backwards and is dropped (``b = 0``: the costs and
corrections alone). Every term is linear in the table features, so the result is an
ordinary :class:`~lanas.predictor.LatencyPredictor` of the source's shape, with the
costs and corrections folded into its additive table, and the search and everything
after it use it unchanged. Its leave-one-out MAPE on the samples is its validation
figure.

Why this design and not a simpler one: ``docs/research.md``, "Predictor transfer across
runtimes".

:func:`select_diverse` picks which K architectures to measure on the new target: one
per k-means cluster of the source's predicted latency, the network's costs and the
table's features, each standardised feature weighing the same, so a few measurements
cover where the architectures are (the alternatives tried: the same entry of
``docs/research.md``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from lanas.costs import COSTS, KIND_PREFIX, GraphCosts
from lanas.encoding import encode_genotype, sharing_features
from lanas.predictor import LatencyPredictor
from lanas.space import SearchSpace

MODELS = ("source+costs", "costs")  # with the source; without it (its scale came out negative)
RIDGE_ALPHAS = tuple(10.0**k for k in range(-2, 5))  # wide: a strong enough ridge switches the correction off
MIN_SAMPLES = 3
PRIOR_LIFT = 100.0  # the source and cost columns' scale-up in the ridge (their penalty / this^2)
FLAT_TOL = 1e-9  # a cost column whose spread over the samples is below this share of its reach is left out
KIND_LIFT = 10.0  # the per-kind node counts' scale-up: many columns, so more penalised than the rest
REPEATS = "op_repeats"  # the cost column counting the ops that repeat one in their edge group (the repeat features)
REPEAT_LIFT = 30.0  # its scale-up in the ridge
POOLED_SCALE = 3.0  # the pooled correction's scale-up (its penalty / this^2)


@dataclass(frozen=True)
class Prior:
    """What is known of every table feature before NEW is measured."""

    costs: np.ndarray  # [F, C]: what one count of the feature adds to each cost
    classes: np.ndarray  # [F, P] 0/1: the op or merge class of each feature, pooled over edge groups
    names: tuple[str, ...]  # [C]: the costs' names (lanas.costs: COSTS, then GraphCosts.names, then REPEATS)
    lifts: np.ndarray  # [C]: each cost column's scale-up in the ridge (PRIOR_LIFT; KIND_LIFT, REPEAT_LIFT)

    @classmethod
    def for_predictor(
        cls, predictor: LatencyPredictor, space: SearchSpace, op_costs: np.ndarray, graph: GraphCosts | None = None
    ) -> "Prior":
        """The prior over ``predictor``'s table features: ``op_costs`` per (edge group, op)
        (:func:`lanas.costs.op_costs`), ``graph`` per table feature but the repeat features
        (:func:`lanas.costs.graph_costs` of the new target on ``table_features(x,
        repeats=False)``, None for eager torch: a repeated op adds no node), per sharing
        feature its merge class (pooled when the predictor's sharing features are those of
        :func:`lanas.encoding.sharing_features`; an older layout's are left unpooled) and,
        when the table has repeat features, the column :data:`REPEATS` that sums them (a
        cell that repeats its ops runs through fewer kernels: one direction a few samples
        can fit, corrected per feature as the rest)."""
        width, groups, repeats = predictor.additive.in_features, len(op_costs), predictor.repeat_width
        if groups != predictor.pool.shape[1]:
            raise ValueError(f"op costs of {groups} (edge group, op) features do not fit the predictor's table")
        costs = np.zeros((width, op_costs.shape[1]))
        costs[:groups] = op_costs
        names = COSTS[: op_costs.shape[1]] + tuple(f"cost{j}" for j in range(len(COSTS), op_costs.shape[1]))
        if graph is not None:
            if graph.per_feature.shape[0] != width - repeats:
                raise ValueError(
                    f"graph costs of {len(graph.per_feature)} features do not fit the predictor's table of "
                    f"{width - repeats} (without its {repeats} repeat features)"
                )
            per_feature = np.vstack([graph.per_feature, np.zeros((repeats, len(graph.names)))])
            costs, names = np.column_stack([costs, per_feature]), names + graph.names
        if repeats:
            costs = np.column_stack([costs, np.r_[np.zeros(width - repeats), np.ones(repeats)]])
            names += (REPEATS,)
        lifts = np.array(
            [KIND_LIFT if n.startswith(KIND_PREFIX) else REPEAT_LIFT if n == REPEATS else PRIOR_LIFT for n in names]
        )
        merges = [f"merge:{c}" for _, c in sharing_features(space)]
        if len(merges) != width - groups - repeats:
            merges = [None] * (width - groups - repeats)
        member = [space.ops[j % len(space.ops)] for j in range(groups)] + merges + [None] * repeats
        pooled = sorted({n for n in member if n is not None})
        classes = np.array([[float(n == p) for p in pooled] for n in member]).reshape(width, len(pooled))
        return cls(costs, classes, names, lifts)


@dataclass(frozen=True)
class Fit:
    """``new = a + b * src + w . groups``, in the units of the targets (costs and
    corrections folded into ``w``)."""

    a: float
    b: float
    w: np.ndarray

    @property
    def model(self) -> str:
        return MODELS[0] if self.b > 0 else MODELS[1]

    def predict(self, src: np.ndarray, groups: np.ndarray) -> np.ndarray:
        return self.a + self.b * src + groups @ self.w


LAYOUT_PROBES = 256  # random architectures on which an older table layout is matched to the current one
LAYOUT_SEED = 3


def in_current_layout(source: LatencyPredictor, space: SearchSpace) -> LatencyPredictor:
    """``source`` rewritten on the table layout a predictor of ``space`` has now
    (:meth:`~lanas.predictor.LatencyPredictor.for_space`: every sharing and repeat feature),
    predicting the same: a predictor fitted before a feature existed (an older run's)
    gets it with weight 0, so the transfer can correct it. Each of its table features
    must be one of the current ones (checked on random architectures); otherwise, or
    when the layouts already agree, ``source`` is returned as it is."""
    current = LatencyPredictor.for_space(space, source.hidden)
    if current.additive.in_features == source.additive.in_features or source.pool.shape != current.pool.shape:
        return source
    probes = torch.stack([encode_genotype(g, space) for g in space.sample_unique(LAYOUT_PROBES, LAYOUT_SEED)])
    new, old = table_np(current, probes), table_np(source, probes)
    where = []  # per old feature, the current feature equal to it on every probe (itself, if it can)
    for j in range(old.shape[1]):
        same = [i for i in range(new.shape[1]) if np.allclose(new[:, i], old[:, j], atol=1e-6)]
        if not same:
            return source
        where.append(j if j in same else same[0])
    table = ("additive.", "share_", "repeat_", "pool")
    state = {k: v for k, v in source.state_dict().items() if not k.startswith(table)}
    current.load_state_dict(state, strict=False)
    with torch.no_grad():
        current.additive.weight.zero_()
        current.additive.weight[0, where] = source.additive.weight[0]
        current.additive.bias.copy_(source.additive.bias)
    return current.eval()


def fit(src: np.ndarray, groups: np.ndarray, y: np.ndarray, prior: Prior, source: bool = True) -> Fit:
    """The transfer model on samples (``src``: the source's predictions, ``groups``: the
    table features, ``y``: NEW's latencies); ``source=False``: without the source (the
    costs and corrections alone, a model from scratch)."""
    from sklearn.linear_model import RidgeCV

    fixed = groups @ prior.costs
    reach = np.abs(prior.costs).max(0) * float(np.abs(groups).max() or 1.0)  # what each cost column can reach
    if source:
        fixed, reach = np.column_stack([src, fixed]), np.concatenate([[np.abs(src).max()], reach])
    # a column the samples do not vary beyond rounding (a node kind none of them has: its
    # least-squares costs are ~1e-15, not 0) says nothing and, lifted, would blow up
    fixed[:, np.ptp(fixed, 0) <= FLAT_TOL * reach] = 0.0
    top = np.abs(fixed).max(0)
    lifts = np.concatenate([[PRIOR_LIFT] if source else [], prior.lifts])
    lift = lifts * float(np.abs(groups).max() or 1.0) / np.where(top > 0, top, 1.0)
    design = np.column_stack([fixed * lift, groups @ prior.classes * POOLED_SCALE, groups])
    ridge = RidgeCV(alphas=RIDGE_ALPHAS, fit_intercept=True).fit(design, y, sample_weight=1.0 / y**2)
    coef = ridge.coef_.astype(float)
    fixed_coef, rest = coef[: fixed.shape[1]] * lift, coef[fixed.shape[1] :]
    b = float(fixed_coef[0]) if source else 0.0
    if b < 0:  # the source ranks this target backwards: no use of it
        return fit(src, groups, y, prior, source=False)
    pooled, own = rest[: prior.classes.shape[1]], rest[prior.classes.shape[1] :]
    w = prior.costs @ fixed_coef[int(source) :] + prior.classes @ pooled * POOLED_SCALE + own
    return Fit(float(ridge.intercept_), b, w)


def loo_mape(src: np.ndarray, groups: np.ndarray, y: np.ndarray, prior: Prior, source: bool = True) -> float:
    """Leave-one-out mean relative error of :func:`fit` on the samples."""
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        f = fit(src[keep], groups[keep], y[keep], prior, source)
        errs.append(abs(float(f.predict(src[i : i + 1], groups[i : i + 1])[0]) / y[i] - 1))
    return float(np.mean(errs))


def fit_transfer(src: np.ndarray, groups: np.ndarray, y: np.ndarray, prior: Prior) -> tuple[Fit, float]:
    """The transfer fitted on all samples and its leave-one-out MAPE."""
    if len(y) < MIN_SAMPLES:
        raise ValueError(f"transfer needs at least {MIN_SAMPLES} measured architectures, got {len(y)}")
    return fit(src, groups, y, prior), loo_mape(src, groups, y, prior)


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


def select_diverse(predicted: np.ndarray, groups: np.ndarray, k: int, prior: Prior | None = None) -> list[int]:
    """``k`` indices spread over the source's predicted latency, the network's costs
    (``groups @ prior.costs``, when a prior is given) and the op composition: k-means (k
    clusters) on the standardised features, each weighing the same, and per cluster the
    architecture nearest its centre -- a stratified sample that covers where the
    architectures are, not only their extremes. Deterministic."""

    if not 0 < k <= len(predicted):
        raise ValueError(f"cannot pick {k} of {len(predicted)} architectures")
    described = groups if prior is None else np.column_stack([groups @ prior.costs, groups])
    feats = np.column_stack([predicted, described]).astype(float)
    return centre_picks(feats, k)


def centre_picks(feats: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """k-means (``k`` clusters, ``seed``) on ``feats`` standardised column by column, and per
    cluster the row nearest its centre, each row picked once: ``k`` rows that stand for
    where the population is. Deterministic for a given ``seed``."""
    from sklearn.cluster import KMeans

    feats = (feats - feats.mean(0)) / np.where(feats.std(0) > 0, feats.std(0), 1.0)
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(feats)
    chosen: list[int] = []
    for c in range(k):
        dist = np.linalg.norm(feats - km.cluster_centers_[c], axis=1)
        dist[chosen] = np.inf
        chosen.append(int(dist.argmin()))
    return chosen


def table_np(predictor: LatencyPredictor, x: torch.Tensor, repeats: bool = True) -> np.ndarray:
    """The table features of ``x`` (what the correction ``w`` weighs), as float64; without
    the repeat features when ``repeats`` is False (what graph costs are fitted on)."""
    with torch.no_grad():
        return predictor.table_features(x, repeats).double().numpy()


def predict_np(predictor: LatencyPredictor) -> Callable[[torch.Tensor], np.ndarray]:
    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return predictor(x).double().numpy()

    return run
