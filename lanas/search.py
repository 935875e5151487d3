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
from lanas.encoding import derive_genotype, encode_alpha, encode_genotype
from lanas.genotype import Genotype
from lanas.network import MacroConfig
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


def build_supernet(space: SearchSpace, macro: MacroConfig, settings: SearchSettings) -> SuperNet:
    search_macro = MacroConfig(
        settings.layers, settings.channels, macro.stem_multiplier, macro.in_channels, macro.num_classes
    )
    return SuperNet(space, search_macro, settings.mode, settings.partial_channels)


def latency_term(net: SuperNet, predictor: LatencyPredictor) -> torch.Tensor:
    return predictor.latency_term(encode_alpha(net.latency_logits(), net.beta))


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
    """Run (or resume from ``state``) one search with coefficient ``lam``, or, with a
    ``budget``, with ``lam`` as the starting multiplier of the budget constraint (see
    :mod:`lanas.budget`). Each epoch draws its randomness (the loaders' batch order,
    Gumbel samples) from ``(seed, epoch)`` alone, so a search resumed from an epoch's
    snapshot is the search that would have run through."""
    if not math.isfinite(lam) or (lam < 0 and budget is None):
        raise ValueError(f"lambda must be a finite number >= 0, got {lam}")
    net.to(device)
    predictor.to(device).eval().requires_grad_(False)
    w_opt = torch.optim.SGD(
        net.weight_parameters(), settings.w_lr, momentum=settings.w_momentum, weight_decay=settings.w_weight_decay
    )
    w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, settings.epochs, eta_min=settings.w_lr_min)
    a_opt = torch.optim.Adam(
        net.arch_parameters(), settings.a_lr, betas=(0.5, 0.999), weight_decay=settings.a_weight_decay
    )
    history, start, lam = _restore(state, lam, net, w_opt, a_opt, w_sched) if state is not None else ([], 0, lam)
    for epoch in range(start, settings.epochs + (budget.settings.extra_epochs if budget else 0)):
        _seed_epoch(seed, epoch, (train, val))
        net.tau = settings.tau_max - (settings.tau_max - settings.tau_min) * min(
            1.0, epoch / max(1, settings.epochs - 1)
        )
        update_arch = epoch >= settings.warmup_epochs
        step = _Step(
            predictor,
            (w_opt, a_opt),
            settings,
            lam,
            update_arch,
            device,
            budget,
            stop_inside=budget is not None and epoch >= settings.epochs,
            steps_per_epoch=len(train),
        )
        sums, steps = _run_epoch(net, (train, val), step)
        if epoch < settings.epochs:  # extra epochs of a budget search keep the final learning rate
            w_sched.step()
        lam = step.lam
        metrics = _epoch_metrics(net, predictor, sums, steps, update_arch, device)
        done = epoch + 1 >= settings.epochs and (
            budget is None
            or budget.inside(metrics["predicted_latency"])
            or epoch + 1 == settings.epochs + budget.settings.extra_epochs
        )
        metrics.update(
            epoch=epoch + 1,
            lam=lam,
            tau=net.tau,
            done=done,
            lam_updates=step.updates + (history[-1].get("lam_updates", 0) if history else 0),
        )
        history.append(metrics)
        if on_epoch is not None:
            snapshot = copy.deepcopy(
                {  # a copy: state_dict() tensors are the live ones, changed by later epochs
                    "net": net.state_dict(),
                    "w_opt": w_opt.state_dict(),
                    "a_opt": a_opt.state_dict(),
                    "w_sched": w_sched.state_dict(),
                    "history": history,
                    "epoch": epoch + 1,
                    "lam": lam,
                }
            )
            on_epoch(metrics, snapshot)
        if done:
            break
    return SearchResult(_derive(net), history)


def _restore(
    state: dict[str, Any], lam: float, net: SuperNet, *stateful: Any
) -> tuple[list[dict[str, Any]], int, float]:
    """Load a snapshot into the network, the two optimisers and the scheduler; returns
    the history so far, the epoch to continue from and lambda (``lam`` if the snapshot
    has none)."""
    net.load_state_dict(state["net"])
    for obj, key in zip(stateful, ("w_opt", "a_opt", "w_sched")):
        obj.load_state_dict(state[key])
    return list(state["history"]), int(state["epoch"]), float(state.get("lam", lam))


EPOCH_SEEDS = 1_000_003  # seeds of (seed, epoch) pairs: seed * this + epoch, apart for any realistic epoch count


def _seed_epoch(seed: int, epoch: int, loaders: tuple[DataLoader, ...]) -> None:
    """Seed torch (Gumbel samples) and each loader's shuffling generator from ``(seed, epoch)``."""
    base = seed * EPOCH_SEEDS + epoch
    torch.manual_seed(base)
    for i, dl in enumerate(loaders):
        if getattr(dl, "generator", None) is not None:
            dl.generator.manual_seed(base * len(loaders) + i + 1)


def _derive(net: SuperNet) -> Genotype:
    return derive_genotype(net.alpha.detach(), None if net.beta is None else net.beta.detach(), net.space)


@dataclass
class _Step:
    """One first-order bilevel step's settings, and the multiplier a budget moves."""

    predictor: LatencyPredictor
    opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer]  # (weights, architecture)
    settings: SearchSettings
    lam: float
    update_arch: bool
    device: str
    budget: Budget | None = None
    stop_inside: bool = False  # end the epoch at the first step whose derived architecture is inside the budget
    steps_per_epoch: int = 1
    updates: int = 0  # dual-ascent updates of lam

    def arch(self, net: SuperNet, xv: torch.Tensor, yv: torch.Tensor, sums: dict[str, float]) -> bool:
        """Alpha (and beta) take an Adam step on a val batch; a budget then moves lambda.
        Returns whether the derived architecture is inside the budget."""
        a_opt = self.opts[1]
        a_opt.zero_grad()
        logits = net(xv)
        loss = nn.functional.cross_entropy(logits, yv)
        lat = latency_term(net, self.predictor)
        (loss + self.lam * lat).backward()
        a_opt.step()
        sums["val_ce"] += loss.item()
        sums["val_acc"] += (logits.argmax(1) == yv).float().mean().item()
        sums["latency_term"] += lat.item()
        if self.budget is None:
            return False
        predicted = derived_latency(net, self.predictor, self.device)
        self.lam, self.updates = self.budget.update(self.lam, predicted, self.steps_per_epoch), self.updates + 1
        return self.budget.inside(predicted)

    def weights(self, net: SuperNet, xt: torch.Tensor, yt: torch.Tensor, sums: dict[str, float]) -> None:
        """The network weights take an SGD step on a train batch with plain CE."""
        w_opt = self.opts[0]
        w_opt.zero_grad()
        logits = net(xt)
        loss = nn.functional.cross_entropy(logits, yt)
        loss.backward()
        nn.utils.clip_grad_norm_(net.weight_parameters(), self.settings.grad_clip)
        w_opt.step()
        sums["train_ce"] += loss.item()
        sums["train_acc"] += (logits.argmax(1) == yt).float().mean().item()


def _run_epoch(net: SuperNet, data: tuple[DataLoader, DataLoader], step: _Step) -> tuple[dict[str, float], int]:
    """One epoch of first-order bilevel steps: alpha on a val batch (when the step
    updates the architecture), then the weights on a train batch. Returns the summed
    step metrics and the step count."""
    train, val = data
    net.train()
    sums = {"train_ce": 0.0, "train_acc": 0.0, "val_ce": 0.0, "val_acc": 0.0, "latency_term": 0.0}
    steps = 0
    for (xt, yt), (xv, yv) in zip(train, itertools.cycle(val)):
        inside = step.update_arch and step.arch(net, xv.to(step.device), yv.to(step.device), sums)
        step.weights(net, xt.to(step.device), yt.to(step.device), sums)
        steps += 1
        if inside and step.stop_inside:
            break
    return sums, steps


def derived_latency(net: SuperNet, predictor: LatencyPredictor, device: str) -> float:
    """Predicted latency of the architecture the search state derives now."""
    with torch.no_grad():
        return float(predictor(encode_genotype(_derive(net), net.space).to(device).unsqueeze(0)))


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
    metrics.update(predicted_latency=derived_latency(net, predictor, device), genotype=_derive(net).to_json())
    return metrics
