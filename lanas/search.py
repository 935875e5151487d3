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
    search_macro = MacroConfig(settings.layers, settings.channels, macro.stem_multiplier, macro.in_channels, macro.num_classes)
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
) -> SearchResult:
    """Run (or resume from ``state``) one search with coefficient ``lam``. Each epoch
    draws its randomness (the loaders' batch order, Gumbel samples) from ``(seed,
    epoch)`` alone, so a search resumed from an epoch's snapshot is the search that
    would have run through."""
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"lambda must be a finite number >= 0, got {lam}")
    net.to(device)
    predictor.to(device).eval().requires_grad_(False)
    w_opt = torch.optim.SGD(net.weight_parameters(), settings.w_lr, momentum=settings.w_momentum, weight_decay=settings.w_weight_decay)
    w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, settings.epochs, eta_min=settings.w_lr_min)
    a_opt = torch.optim.Adam(net.arch_parameters(), settings.a_lr, betas=(0.5, 0.999), weight_decay=settings.a_weight_decay)
    history, start = _restore(state, net, w_opt, a_opt, w_sched) if state is not None else ([], 0)
    for epoch in range(start, settings.epochs):
        _seed_epoch(seed, epoch, (train, val))
        frac = epoch / max(1, settings.epochs - 1)
        net.tau = settings.tau_max - (settings.tau_max - settings.tau_min) * frac
        update_arch = epoch >= settings.warmup_epochs
        sums, steps = _run_epoch(net, predictor, (train, val), (w_opt, a_opt), settings, lam, update_arch, device)
        w_sched.step()
        metrics = _epoch_metrics(net, predictor, sums, steps, update_arch, device)
        metrics.update(epoch=epoch + 1, lam=lam, tau=net.tau)
        history.append(metrics)
        if on_epoch is not None:
            snapshot = copy.deepcopy({  # a copy: state_dict() tensors are the live ones, changed by later epochs
                "net": net.state_dict(), "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(),
                "w_sched": w_sched.state_dict(), "history": history, "epoch": epoch + 1,
            })
            on_epoch(metrics, snapshot)
    return SearchResult(_derive(net), history)


def _restore(state: dict[str, Any], net: SuperNet, *stateful: Any) -> tuple[list[dict[str, Any]], int]:
    """Load a snapshot into the network, the two optimisers and the scheduler; returns
    the history so far and the epoch to continue from."""
    net.load_state_dict(state["net"])
    for obj, key in zip(stateful, ("w_opt", "a_opt", "w_sched")):
        obj.load_state_dict(state[key])
    return list(state["history"]), int(state["epoch"])


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


def _run_epoch(net: SuperNet, predictor: LatencyPredictor, data: tuple[DataLoader, DataLoader],
               opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer], settings: SearchSettings, lam: float,
               update_arch: bool, device: str) -> tuple[dict[str, float], int]:
    """One epoch of first-order bilevel steps: alpha on a val batch (when ``update_arch``),
    then the weights on a train batch. Returns the summed step metrics and the step count."""
    (train, val), (w_opt, a_opt) = data, opts
    ce = nn.CrossEntropyLoss()
    net.train()
    sums = {"train_ce": 0.0, "train_acc": 0.0, "val_ce": 0.0, "val_acc": 0.0, "latency_term": 0.0}
    steps = 0
    for (xt, yt), (xv, yv) in zip(train, itertools.cycle(val)):
        xt, yt, xv, yv = xt.to(device), yt.to(device), xv.to(device), yv.to(device)
        if update_arch:
            a_opt.zero_grad()
            logits_v = net(xv)
            loss_v = ce(logits_v, yv)
            lat = latency_term(net, predictor)
            (loss_v + lam * lat).backward()
            a_opt.step()
            sums["val_ce"] += float(loss_v.detach())
            sums["val_acc"] += float((logits_v.argmax(1) == yv).float().mean())
            sums["latency_term"] += float(lat.detach())
        w_opt.zero_grad()
        logits_t = net(xt)
        loss_t = ce(logits_t, yt)
        loss_t.backward()
        nn.utils.clip_grad_norm_(net.weight_parameters(), settings.grad_clip)
        w_opt.step()
        sums["train_ce"] += float(loss_t.detach())
        sums["train_acc"] += float((logits_t.argmax(1) == yt).float().mean())
        steps += 1
    return sums, steps


def _epoch_metrics(net: SuperNet, predictor: LatencyPredictor, sums: dict[str, float], steps: int,
                   update_arch: bool, device: str) -> dict[str, Any]:
    """Mean step metrics, the derived genotype and its predicted latency."""
    genotype = _derive(net)
    with torch.no_grad():
        if not update_arch:
            sums["latency_term"] = float(latency_term(net, predictor)) * steps
        derived = float(predictor(encode_genotype(genotype, net.space).to(device).unsqueeze(0)))
    metrics: dict[str, Any] = {k: v / max(steps, 1) for k, v in sums.items()}
    if not update_arch:
        metrics["val_ce"] = metrics["val_acc"] = float("nan")
    metrics.update(predicted_latency=derived, genotype=genotype.to_json())
    return metrics
