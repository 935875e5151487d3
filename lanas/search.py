"""The latency-aware differentiable search loop (first-order DARTS bilevel).

Per step: alpha (and beta) take an Adam step on a *validation* batch with

    arch_loss = CE + lambda * latency_term(alpha),
    latency_term(alpha) = predictor(encode_alpha(alpha, beta)) / predictor.typical,

i.e. the frozen predictor's latency of the relaxed architecture divided by the median
latency of its training architectures (scale-free: ~1 for a typical random
architecture on any hardware, so one lambda grid serves every target). Then the
network weights take an SGD step on a *training* batch with plain CE.

The loop knows nothing of Ray: ``on_epoch(metrics, state)`` is the only hook (the
pipeline uses it to report to Tune and checkpoint), and ``state`` restores a run.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from lanas.budget import Budget
from lanas.genotype import Genotype
from lanas.network import MacroSettings
from lanas.predictor import LatencyPredictor
from lanas.space import SearchSpace
from lanas.supernet import MODES, SuperNet


@dataclass(frozen=True)
class SearchSettings:
    mode: str = "gdas"  # darts | pcdarts | gdas (see lanas.supernet; gdas is cheapest on CPU)
    layers: int = 3  # cells in the supernet
    channels: int = 8  # initial channels of the supernet
    epochs: int = 10  # search epochs
    batch_size: int = 64  # images per step (train and val batches)
    w_lr: float = 0.05  # SGD learning rate of the weights (cosine to w_lr_min)
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0  # gradient-norm clip of the weights
    a_lr: float = 3e-3  # Adam learning rate of alpha/beta
    a_weight_decay: float = 1e-3  # Adam weight decay of alpha/beta
    warmup_epochs: int = 0  # epochs that train weights only before alpha moves
    tau_max: float = 10.0  # gdas: Gumbel temperature at the first epoch
    tau_min: float = 1.0  # gdas: ... and at the last (annealed linearly)
    partial_channels: int = 4  # pcdarts: 1/K of the channels go through the mixed op

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("layers", "channels", "epochs", "batch_size", "partial_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if self.w_lr <= 0 or self.a_lr <= 0 or self.tau_min <= 0 or self.tau_max < self.tau_min:
            raise ValueError("w_lr, a_lr, tau_min must be > 0 and tau_max >= tau_min")


@dataclass
class SearchResult:
    genotype: Genotype
    history: list[dict[str, Any]] = field(default_factory=list)


def build_supernet(space: SearchSpace, macro: MacroSettings, settings: SearchSettings) -> SuperNet:
    search_macro = MacroSettings(
        settings.layers, settings.channels, macro.stem_multiplier, macro.in_channels, macro.num_classes
    )
    return SuperNet(space, search_macro, settings.mode, settings.partial_channels)


def latency_term(net: SuperNet, predictor: LatencyPredictor) -> torch.Tensor:
    """The penalty's scale-free latency of the net's relaxed architecture (any supernet with
    ``relaxed_encoding``: the DARTS one, or NAS-Bench-201's with its exact table term)."""
    return predictor.latency_term(net.relaxed_encoding())


@dataclass
class SearchState:
    """Everything a search is at a step boundary, and what it resumes from: the supernet
    (weights, alpha, beta), the weights' SGD and cosine schedule, alpha's Adam, lambda (a
    budget moves it, with its dual step's scale and the side of the window the derived
    architecture was last on), the epochs done and their metrics."""

    net: SuperNet
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer
    w_sched: torch.optim.lr_scheduler.LRScheduler
    lam: float
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    dual_scale: float = 1.0  # a budget's dual step, as a share of its dual_lr (lanas.budget.Budget.damp)
    last_side: int = 0  # the side of the budget's window the derived architecture was last on (0: not yet)

    @classmethod
    def start(cls, net: SuperNet, settings: SearchSettings, lam: float) -> SearchState:
        s = settings
        w_opt = torch.optim.SGD(net.weight_parameters(), s.w_lr, momentum=s.w_momentum, weight_decay=s.w_weight_decay)
        w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, s.epochs, eta_min=s.w_lr_min)
        a_opt = torch.optim.Adam(net.arch_parameters(), s.a_lr, betas=(0.5, 0.999), weight_decay=s.a_weight_decay)
        return cls(net, w_opt, a_opt, w_sched, lam)

    def snapshot(self) -> dict[str, Any]:
        """A deep copy (``state_dict()`` tensors are the live ones, changed by later steps)."""
        return copy.deepcopy(
            {
                "net": self.net.state_dict(),
                "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(),
                "w_sched": self.w_sched.state_dict(),
                "history": self.history,
                "epoch": self.epoch,
                "lam": self.lam,
                "dual_scale": self.dual_scale,
                "last_side": self.last_side,
            }
        )

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.net.load_state_dict(snapshot["net"])
        for key in ("w_opt", "a_opt", "w_sched"):
            getattr(self, key).load_state_dict(snapshot[key])
        self.history, self.epoch = list(snapshot["history"]), int(snapshot["epoch"])
        self.lam = float(snapshot.get("lam", self.lam))
        self.dual_scale = float(snapshot.get("dual_scale", 1.0))  # snapshots from before damping: undamped
        self.last_side = int(snapshot.get("last_side", 0))


def arch_step(
    state: SearchState,
    predictor: LatencyPredictor,
    xv: torch.Tensor,
    yv: torch.Tensor,
    budget: Budget | None = None,
    steps_per_epoch: int = 1,
) -> dict[str, float]:
    """DARTS' ``Architect.step`` (first order): alpha (and beta) take an Adam step on a
    validation batch with ``CE + lambda * latency_term``; a ``budget`` then moves lambda
    (:mod:`lanas.budget`). Returns the batch's CE, accuracy and latency term, and
    ``inside``: whether the derived architecture is now inside the budget."""
    state.a_opt.zero_grad()
    logits = state.net(xv)
    loss = nn.functional.cross_entropy(logits, yv)
    lat = latency_term(state.net, predictor)
    (loss + state.lam * lat).backward()
    state.a_opt.step()
    out = {"val_ce": loss.item(), "val_acc": (logits.argmax(1) == yv).float().mean().item(), "latency_term": lat.item()}
    inside = False
    if budget is not None:
        predicted = derived_latency(state.net, predictor, str(xv.device))
        state.dual_scale, state.last_side = budget.damp(state.dual_scale, state.last_side, predicted)
        state.lam = budget.update(state.lam, predicted, steps_per_epoch, state.dual_scale)
        inside = budget.inside(predicted)
    return {**out, "inside": inside}


def weight_step(state: SearchState, xt: torch.Tensor, yt: torch.Tensor, grad_clip: float) -> dict[str, float]:
    """The network weights take an SGD step on a training batch with plain CE (gradient
    norm clipped). Returns the batch's CE and accuracy."""
    state.w_opt.zero_grad()
    logits = state.net(xt)
    loss = nn.functional.cross_entropy(logits, yt)
    loss.backward()
    nn.utils.clip_grad_norm_(state.net.weight_parameters(), grad_clip)
    state.w_opt.step()
    return {"train_ce": loss.item(), "train_acc": (logits.argmax(1) == yt).float().mean().item()}


def search(
    net: SuperNet,
    predictor: LatencyPredictor,
    train: DataLoader,
    val: DataLoader,
    settings: SearchSettings,
    lam: float,
    device: str = "cpu",
    on_epoch: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    state: dict[str, Any] | None = None,
    seed: int = 0,
    budget: Budget | None = None,
) -> SearchResult:
    """Run (or resume from the snapshot ``state``) one search with coefficient ``lam``,
    or, with a ``budget``, with ``lam`` as the starting multiplier of the budget
    constraint (see :mod:`lanas.budget`). ``on_epoch(metrics, snapshot)`` is called after
    every epoch. Each epoch draws its randomness (the loaders' batch order, Gumbel
    samples) from ``(seed, epoch)`` alone, so a search resumed from an epoch's snapshot
    is the search that would have run through."""
    if not math.isfinite(lam) or (lam < 0 and budget is None):
        raise ValueError(f"lambda must be a finite number >= 0, got {lam}")
    net.to(device)
    predictor.to(device).eval().requires_grad_(False)
    st = SearchState.start(net, settings, lam)
    if state is not None:
        st.restore(state)
    last = settings.epochs + (budget.settings.extra_epochs if budget else 0)
    while st.epoch < last:
        done = _search_epoch(st, predictor, (train, val), settings, seed, budget, device)
        if on_epoch is not None:
            on_epoch(st.history[-1], st.snapshot())
        if done:
            break
    return SearchResult(net.genotype(), st.history)


def _search_epoch(
    st: SearchState,
    predictor: LatencyPredictor,
    data: tuple[DataLoader, DataLoader],
    settings: SearchSettings,
    seed: int,
    budget: Budget | None,
    device: str,
) -> bool:
    """One epoch: its seeds, temperature, steps, schedule and metrics. Returns whether the
    search is done (its last scheduled epoch; a budget's once inside, or out of epochs)."""
    epoch, net = st.epoch, st.net
    _seed_epoch(seed, epoch, data)
    net.tau = settings.tau_max - (settings.tau_max - settings.tau_min) * min(1.0, epoch / max(1, settings.epochs - 1))
    update_arch = epoch >= settings.warmup_epochs
    sums, steps, updates = _run_epoch(st, predictor, data, settings, update_arch, budget, device)
    if epoch < settings.epochs:  # extra epochs of a budget search keep the final learning rate
        st.w_sched.step()
    metrics = _epoch_metrics(net, predictor, sums, steps, update_arch, device)
    done = epoch + 1 >= settings.epochs and (
        budget is None
        or budget.inside(metrics["predicted_latency_ratio"])
        or epoch + 1 == settings.epochs + budget.settings.extra_epochs
    )
    previous = st.history[-1].get("lam_updates", 0) if st.history else 0
    metrics.update(epoch=epoch + 1, lam=st.lam, tau=net.tau, done=done, lam_updates=updates + previous)
    if budget is not None:
        metrics["dual_scale"] = st.dual_scale
    st.history.append(metrics)
    st.epoch = epoch + 1
    return done


EPOCH_SEEDS = 1_000_003  # seeds of (seed, epoch) pairs: seed * this + epoch, apart for any realistic epoch count


def _seed_epoch(seed: int, epoch: int, loaders: tuple[DataLoader, ...]) -> None:
    """Seed torch (Gumbel samples) and each loader's shuffling generator from ``(seed, epoch)``."""
    base = seed * EPOCH_SEEDS + epoch
    torch.manual_seed(base)
    for i, dl in enumerate(loaders):
        if getattr(dl, "generator", None) is not None:
            dl.generator.manual_seed(base * len(loaders) + i + 1)


def _run_epoch(
    st: SearchState,
    predictor: LatencyPredictor,
    data: tuple[DataLoader, DataLoader],
    settings: SearchSettings,
    update_arch: bool,
    budget: Budget | None,
    device: str,
) -> tuple[dict[str, float], int, int]:
    """One epoch of first-order bilevel steps: alpha on a val batch (when ``update_arch``),
    then the weights on a train batch; a budget's extra epoch ends at the first step
    inside the budget. Returns the summed step metrics, the step count and the lambda
    updates."""
    train, val = data
    stop_inside = budget is not None and st.epoch >= settings.epochs
    st.net.train()
    sums = {"train_ce": 0.0, "train_acc": 0.0, "val_ce": 0.0, "val_acc": 0.0, "latency_term": 0.0}
    steps = updates = 0
    for (xt, yt), (xv, yv) in zip(train, itertools.cycle(val)):
        inside = False
        if update_arch:
            m = arch_step(st, predictor, xv.to(device), yv.to(device), budget, len(train))
            inside, updates = m.pop("inside"), updates + (budget is not None)
            for k, v in m.items():
                sums[k] += v
        for k, v in weight_step(st, xt.to(device), yt.to(device), settings.grad_clip).items():
            sums[k] += v
        steps += 1
        if inside and stop_inside:
            break
    return sums, steps, updates


def derived_latency(net: SuperNet, predictor: LatencyPredictor, device: str, genotype: Genotype | None = None) -> float:
    """Predicted latency of the architecture the search state derives now (``genotype``, if
    already derived)."""
    genotype = net.genotype() if genotype is None else genotype
    with torch.no_grad():
        return float(predictor(net.encode(genotype).to(device).unsqueeze(0)))


def _epoch_metrics(
    net: SuperNet, predictor: LatencyPredictor, sums: dict[str, float], steps: int, update_arch: bool, device: str
) -> dict[str, Any]:
    """Mean step metrics, the derived genotype and its predicted latency."""
    if not update_arch:
        with torch.no_grad():
            sums["latency_term"] = float(latency_term(net, predictor)) * steps
    metrics: dict[str, Any] = {k: v / max(steps, 1) for k, v in sums.items()}
    if not update_arch:
        metrics["val_ce"] = metrics["val_acc"] = float("nan")
    genotype = net.genotype()  # derived once for both
    metrics.update(
        predicted_latency_ratio=derived_latency(net, predictor, device, genotype), genotype=net.arch_text(genotype)
    )
    return metrics
