"""Latency budgets: the most accurate architecture under T on one target.

A budget search keeps the LA-DNAS architecture loss ``CE + lambda * latency_term(alpha)``
but makes ``lambda`` the Lagrange multiplier of the constraint "the *derived*
architecture's predicted latency equals the aim", the middle of an acceptance window
``[low, high] x T`` that sits a margin below the budget (the predictor's error on
derived architectures). After every architecture step, dual ascent moves it::

    lambda <- clip(lambda + dual_lr / steps_per_epoch * (predicted(derived) / aim - 1), -max_lambda, max_lambda)

so lambda rises while the derived architecture is too slow and falls (below 0: the
search is pulled towards slower, larger cells, as TF-NAS's ``|LAT/T - 1|`` does) while it
is wastefully fast. The derived architecture follows lambda late (alpha's Adam carries
momentum) and in jumps, so plain dual ascent overshoots and can swing across the window
until the epochs run out; each time the derived architecture jumps from one side of the
window to the other, the step is therefore multiplied by ``damping`` (down to
``MIN_DUAL_SCALE``), as a bisection narrows in on the multiplier that lands it. The
search runs its scheduled epochs, then up to ``extra_epochs`` more (weights at their
final learning rate) and stops at the first step whose derived architecture is inside
the window. ``reachable`` bounds what the space reaches from the corner architectures
and what was measured, so a budget no architecture can meet is refused before any
search runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lanas.encoding import encode_genotype
from lanas.genotype import Genotype, trivial
from lanas.space import SearchSpace
from lanas.topology import CONCAT, NODES

MIN_DUAL_SCALE = 1 / 16  # the dual step never shrinks below this share of dual_lr


@dataclass(frozen=True)
class BudgetSettings:
    window: tuple[float, float] = (0.87, 0.95)  # accept a derived architecture predicted within [low, high] x budget
    dual_lr: float = 0.8  # dual-ascent step of lambda per epoch (split over its steps), per unit of relative violation
    max_lambda: float = 1.0  # |lambda| bound
    extra_epochs: int = 10  # epochs after the schedule allowed to land inside the window
    damping: float = 0.5  # the dual step is multiplied by this each time the derived arch jumps over the window

    def __post_init__(self) -> None:
        if len(self.window) != 2 or not 0 < self.window[0] < self.window[1] <= 1:
            raise ValueError(f"window must be [low, high] with 0 < low < high <= 1, got {list(self.window)}")
        if not (self.dual_lr > 0 and self.max_lambda > 0 and self.extra_epochs >= 0):
            raise ValueError("dual_lr and max_lambda must be > 0, extra_epochs >= 0")
        if not 0 < self.damping <= 1:
            raise ValueError(f"damping must be in (0, 1] (1: plain dual ascent), got {self.damping}")


@dataclass(frozen=True)
class Budget:
    """A latency budget in the predictor's units (the pipeline passes ``T / reference_ms``)."""

    limit: float
    settings: BudgetSettings = BudgetSettings()

    def __post_init__(self) -> None:
        if not (self.limit > 0 and math.isfinite(self.limit)):
            raise ValueError(f"a latency budget must be a finite number > 0, got {self.limit}")

    @property
    def aim(self) -> float:
        return self.limit * sum(self.settings.window) / 2

    def inside(self, predicted: float) -> bool:
        return self.side(predicted) == 0

    def side(self, predicted: float) -> int:
        """+1 above the window, -1 below it, 0 inside."""
        low, high = self.settings.window
        return 1 if predicted > high * self.limit else -1 if predicted < low * self.limit else 0

    def update(self, lam: float, predicted: float, steps_per_epoch: int, scale: float = 1.0) -> float:
        """One dual-ascent step of the multiplier (one of ``steps_per_epoch`` in an epoch),
        its step scaled by ``scale`` (what :meth:`damp` made of it)."""
        bound, rate = self.settings.max_lambda, scale * self.settings.dual_lr / max(1, steps_per_epoch)
        return min(bound, max(-bound, lam + rate * (predicted / self.aim - 1.0)))

    def damp(self, scale: float, last_side: int, predicted: float) -> tuple[float, int]:
        """The dual step's scale and the last side of the window the derived architecture
        was on, after it is predicted at ``predicted``: a jump from one side to the other
        multiplies the scale by ``damping``."""
        side = self.side(predicted)
        if side == 0:
            return scale, last_side
        if last_side and side != last_side:
            scale = max(MIN_DUAL_SCALE, scale * self.settings.damping)
        return scale, side


def corner_genotypes(space: SearchSpace) -> list[Genotype]:
    """For every choosable op, the genotype with that op on all 16 edges (every node fed
    by the two cell inputs), and the trivial baseline: the corners of the space where its
    fastest and slowest architectures sit."""
    cells = [tuple((op, inp) for _ in NODES for inp in (0, 1)) for op in space.choosable_ops]
    return [Genotype(c, CONCAT, c, CONCAT) for c in cells] + [trivial()]


def reachable(
    predict: Callable[[torch.Tensor], torch.Tensor], space: SearchSpace, measured: Sequence[float] = ()
) -> tuple[float, float]:
    """(fastest, slowest) latency the space is known to reach: the predictions of its
    corner genotypes and the ``measured`` latencies. A descent over the predictor would
    find lower values, but there it extrapolates (even below zero): a budget is only
    refused on what was measured or predicted inside the data. The corners themselves
    lie outside the random samples a predictor learns from, so a corner predicted at
    or below zero (a predictor extrapolating its sharing savings, say) is no latency
    and is left out."""
    preds = predict(torch.stack([encode_genotype(g, space) for g in corner_genotypes(space)]))
    values = [v for v in (float(p) for p in preds) if math.isfinite(v) and v > 0] + [float(v) for v in measured]
    if not values:
        raise ValueError("no corner architecture is predicted at a latency > 0 and nothing was measured")
    return min(values), max(values)
