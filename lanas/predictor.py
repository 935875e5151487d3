"""The latency predictor: architecture encoding -> latency, differentiable in its input.

``prediction = mean + std * (additive(table_features(x)) + mlp(x))``: the additive
term is a linear lookup table over op counts per edge group (``x @ pool``, ``pool`` =
:func:`lanas.encoding.group_matrix`; on CPUs latency is close to additive) and, in the
pipeline's predictor, how many of those ops a graph compiler merges because they repeat
an op on one input (:func:`lanas.encoding.sharing_matrices`: the one interaction that
matters on CPUs, and most where a latency-aware search lands) and how many ops repeat one
their edge group already has (:func:`lanas.encoding.repeat_matrices`: a runtime that
compiles a kernel per distinct op runs such a cell through fewer kernels); the MLP sees
the full encoding to learn the other interactions (more important on GPUs). The target normalisation
(``mean``, ``std``) and the typical latency used to make the search's latency term
scale-free are buffers saved with the weights.

Targets are in whatever unit the dataset provides; the pipeline uses the
reference-normalised latency (``latency_ms / reference_ms``), see :mod:`lanas.measure`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from lanas.encoding import encoding_size, group_matrix, repeat_matrices, sharing_matrices


@dataclass(frozen=True)
class PredictorSettings:
    hidden: tuple[int, ...] = (128, 128)  # MLP hidden widths (empty = additive model only)
    epochs: int = 200  # full passes over the training rows
    batch_size: int = 128  # rows per optimiser step (per worker)
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 1e-5  # Adam weight decay
    init_additive: bool = True  # start the additive term at the least-squares fit
    sharing: bool = True  # the table also counts what a compiler merges (lanas.encoding.sharing_matrices)
    repeats: bool = True  # the table also counts ops repeating one in their edge group (encoding.repeat_matrices)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")


class LatencyPredictor(nn.Module):
    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (128, 128),
        pool: torch.Tensor | None = None,
        sharing: tuple[torch.Tensor, torch.Tensor] | None = None,
        repeats: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        super().__init__()
        self.in_features = in_features
        self.hidden = tuple(hidden)
        # fixed map from the encoding to the additive term's features (identity: one weight per entry)
        self.register_buffer("pool", torch.eye(in_features) if pool is None else pool.clone())
        width = self.pool.shape[1]
        if sharing is not None:  # (gather, scatter) of the sharing features, appended to x @ pool
            if sharing[0].shape[0] != in_features:
                raise ValueError(f"sharing features of {sharing[0].shape[0]} encoding entries, not {in_features}")
            self.register_buffer("share_gather", sharing[0].clone())
            self.register_buffer("share_scatter", sharing[1].clone())
            width += sharing[1].shape[1]
        if repeats is not None:  # (gather, scatter) of the repeat features, appended after those
            if repeats[0].shape[0] != in_features:
                raise ValueError(f"repeat features of {repeats[0].shape[0]} encoding entries, not {in_features}")
            self.register_buffer("repeat_gather", repeats[0].clone())
            self.register_buffer("repeat_scatter", repeats[1].clone())
            width += repeats[1].shape[1]
        self.additive = nn.Linear(width, 1)
        layers: list[nn.Module] = []
        width = in_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 1)) if self.hidden else None
        if self.mlp is not None:
            nn.init.zeros_(self.mlp[-1].weight)  # start as the pure additive model
            nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("mean", torch.tensor(0.0))
        self.register_buffer("std", torch.tensor(1.0))
        self.register_buffer("typical", torch.tensor(1.0))

    def set_target_stats(self, y: torch.Tensor) -> None:
        self.mean.fill_(float(y.mean()))
        self.std.fill_(float(y.std()) if y.numel() > 1 and float(y.std()) > 0 else 1.0)
        self.typical.fill_(float(y.median()))

    @classmethod
    def for_space(cls, space, hidden: Sequence[int], sharing: bool = True, repeats: bool = True) -> "LatencyPredictor":
        """The predictor the pipeline uses: grouped additive term (with the sharing
        features unless ``sharing`` is False, and the repeat features unless ``repeats``
        is False) + MLP on ``space``'s encoding."""

        share = sharing_matrices(space) if sharing else None
        repeated = repeat_matrices(space) if repeats else None
        return cls(encoding_size(space), hidden, group_matrix(space), share, repeated)

    @classmethod
    def table(cls, weights: torch.Tensor, bias: float) -> "LatencyPredictor":
        """A predictor that is a plain lookup table, ``bias + weights . x``, one weight per
        encoding entry and no MLP: latency with known per-(cell, edge, op) costs."""
        model = cls(weights.numel(), hidden=())
        with torch.no_grad():
            model.additive.weight.copy_(weights.reshape(1, -1))
            model.additive.bias.fill_(bias)
        return model

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], hidden: Sequence[int]) -> "LatencyPredictor":
        """A predictor rebuilt from its ``state_dict``, whose buffers carry its feature
        maps (pooling and, when it has them, sharing and repeat matrices); ``hidden`` are its
        MLP's widths."""
        pool = state["pool"]
        sharing = (state["share_gather"], state["share_scatter"]) if "share_gather" in state else None
        repeats = (state["repeat_gather"], state["repeat_scatter"]) if "repeat_gather" in state else None
        model = cls(pool.shape[0], hidden, pool, sharing, repeats)
        model.load_state_dict(state)
        return model.eval()

    @property
    def has_sharing(self) -> bool:
        return hasattr(self, "share_gather")

    @property
    def repeat_width(self) -> int:
        """How many repeat features the table has (the last ones; 0: none)."""
        return self.repeat_scatter.shape[1] if hasattr(self, "repeat_scatter") else 0

    def table_features(self, x: torch.Tensor, repeats: bool = True) -> torch.Tensor:
        """What the additive term weighs: ``x @ pool``, then the sharing features, then
        (unless ``repeats`` is False) the repeat features."""
        f = [x @ self.pool]
        if self.has_sharing:
            f.append(torch.relu(x @ self.share_gather - 1.0) @ self.share_scatter)
        if repeats and self.repeat_width:
            f.append(torch.relu(x @ self.repeat_gather - 1.0) @ self.repeat_scatter)
        return torch.cat(f, dim=-1)

    def normalised(self, x: torch.Tensor) -> torch.Tensor:
        out = self.additive(self.table_features(x))
        if self.mlp is not None:
            out = out + self.mlp(x)
        return out.squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * self.normalised(x)

    def latency_term(self, x: torch.Tensor) -> torch.Tensor:
        """Scale-free latency for the search loss: prediction / median training latency,
        so about 1 for a typical random architecture on any hardware."""
        return self(x) / self.typical


def relative_error(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (pred - y).abs() / y.abs()


RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def fit_additive(model: LatencyPredictor, x: torch.Tensor, y: torch.Tensor) -> float:
    """Set the additive term to the ridge least-squares fit of the normalised target on
    the table features (``x @ pool``, then the sharing and repeat features), each row weighted by
    ``1 / y**2`` so that the fit minimises the *relative* squared error (what the MLP is
    trained on and MAPE scores; unweighted least squares lets the fastest architectures
    -- where the search lands at large lambda -- carry the largest relative errors). The
    ridge strength is chosen by efficient leave-one-out cross-validation (scikit-learn's
    RidgeCV). Returns it."""
    from sklearn.linear_model import RidgeCV

    yn = ((y - model.mean) / model.std).double().numpy()
    w = 1.0 / y.double().numpy() ** 2
    feats = model.table_features(x).double().numpy()
    ridge = RidgeCV(alphas=RIDGE_GRID).fit(feats, yn, sample_weight=w / w.mean())
    with torch.no_grad():
        model.additive.weight.copy_(torch.as_tensor(ridge.coef_, dtype=torch.float32).unsqueeze(0))
        model.additive.bias.fill_(float(ridge.intercept_))
    return float(ridge.alpha_)


def additive_predictor(
    space, x: torch.Tensor, y: torch.Tensor, sharing: bool = True, repeats: bool = True
) -> LatencyPredictor:
    """The additive model alone (no MLP): the lookup table over op counts per edge group,
    by relative-error ridge least squares in closed form (:func:`fit_additive`) -- what
    model selection weighs the MLP against."""
    model = LatencyPredictor.for_space(space, (), sharing, repeats)
    _check_targets(y)
    model.set_target_stats(y)
    fit_additive(model, x, y)
    return model.eval()


class NormalisedView(nn.Module):
    """``forward`` = the predictor's normalised output; what gets wrapped for DDP."""

    def __init__(self, predictor: LatencyPredictor):
        super().__init__()
        self.predictor = predictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor.normalised(x)


def train_predictor(
    predictor: LatencyPredictor,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    settings: PredictorSettings,
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    wrap: Callable[[nn.Module], nn.Module] = lambda m: m,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Train ``predictor`` on the relative squared error of ``train = (x, y)``.

    Target statistics and the additive init come from ``init`` (default ``train``; a
    data-parallel worker passes the whole training set here and its shard as ``train``);
    ``wrap`` may wrap the
    module that is optimised (Ray Train passes ``prepare_model`` for DDP, after this
    initialisation so every worker starts from rank 0's). ``on_epoch(epoch, metrics)``
    is called after every epoch. The state with the best validation MAPE (the additive
    initialisation included) is kept at the end; its metrics are returned."""
    x, y = train
    xi, yi = init if init is not None else train
    _check_targets(y, yi)
    predictor.set_target_stats(yi)
    if settings.init_additive:
        fit_additive(predictor, xi, yi)
    net = wrap(NormalisedView(predictor))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.epochs)
    best = (_val_mape(predictor, val), _snapshot(predictor), {"epoch": 0})
    metrics: dict[str, float] = {}
    for epoch in range(settings.epochs):
        loss = _train_epoch(predictor, net, opt, (x, y), settings.batch_size, gen)
        sched.step()
        metrics = {"epoch": epoch + 1, "train_loss": loss, "val_mape": _val_mape(predictor, val)}
        if metrics["val_mape"] < best[0]:  # NaN (no val rows) never replaces: keeps training to the end
            best = (metrics["val_mape"], _snapshot(predictor), metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    if len(val[0]):
        predictor.load_state_dict(best[1])
        return {**metrics, "best_epoch": best[2]["epoch"], "val_mape": best[0]}
    return metrics


def _check_targets(*targets: torch.Tensor) -> None:
    for t in targets:
        if len(t) == 0 or not torch.all(torch.isfinite(t)) or not torch.all(t > 0):
            raise ValueError("latency targets must be non-empty, finite and > 0")


def _snapshot(predictor: LatencyPredictor) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in predictor.state_dict().items()}


def _val_mape(predictor: LatencyPredictor, val: tuple[torch.Tensor, torch.Tensor]) -> float:
    predictor.eval()
    with torch.no_grad():
        return float(relative_error(predictor(val[0]), val[1]).mean()) if len(val[0]) else float("nan")


def _train_epoch(
    predictor: LatencyPredictor,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    batch_size: int,
    gen: torch.Generator,
) -> float:
    """One pass over ``data`` in a random order; the mean relative squared error."""
    x, y = data
    net.train()
    steps = max(1, math.ceil(len(x) / batch_size))
    perm = torch.randperm(len(x), generator=gen)
    total = 0.0
    for i in range(steps):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        pred = predictor.mean + predictor.std * net(x[idx])
        loss = (((pred - y[idx]) / y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach())
    return total / steps
