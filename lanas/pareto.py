"""Accuracy-vs-latency Pareto front and 2-D hypervolume (maximise accuracy, minimise latency)."""

from __future__ import annotations

import itertools
import math
import random
from typing import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a = (accuracy, latency)`` dominates ``b``: no worse in both, better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_mask(points: Sequence[tuple[float, float]]) -> list[bool]:
    """True for each point that no other point dominates (duplicates all stay)."""
    return [not any(dominates(q, p) for q in points) for p in points]


def front_indices(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points on the Pareto front, by latency ascending, in O(n log n) (one
    of equal points kept): for sets too large for :func:`pareto_mask`, e.g. a whole space."""
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))
    out, best = [], -math.inf
    for i in order:
        if points[i][0] > best:
            out.append(i)
            best = points[i][0]
    return out


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` and bounded by ``reference = (min accuracy, max latency)``.
    Points not better than the reference in both coordinates add nothing."""
    ref_acc, ref_lat = reference
    front = sorted(
        {(a, ms) for (a, ms), keep in zip(points, pareto_mask(points)) if keep and a > ref_acc and ms < ref_lat},
        key=lambda p: p[1],
    )
    area, best_acc = 0.0, ref_acc
    # sweep latency upward; each step adds the strip up to the next point's latency
    for i, (acc, lat) in enumerate(front):
        best_acc = max(best_acc, acc)
        next_lat = front[i + 1][1] if i + 1 < len(front) else ref_lat
        area += (next_lat - lat) * (best_acc - ref_acc)
    return area


def equal_size_hypervolume(
    points: Sequence[tuple[float, float]], size: int, reference: tuple[float, float], draws: int = 200, seed: int = 0
) -> float:
    """Mean hypervolume of ``size``-point subsets of ``points`` (every subset when there
    are at most ``draws``, else ``draws`` random ones): compares sets of unequal size
    fairly, since more points can only add area. ``points`` with at most ``size``
    entries are taken whole."""
    if len(points) <= size:
        return hypervolume(points, reference)
    if math.comb(len(points), size) <= draws:
        subsets = list(itertools.combinations(points, size))
    else:
        rng = random.Random(seed)
        subsets = [rng.sample(list(points), size) for _ in range(draws)]
    return sum(hypervolume(s, reference) for s in subsets) / len(subsets)


def dominated_share(by: Sequence[tuple[float, float]], points: Sequence[tuple[float, float]]) -> float | None:
    """Share of ``points`` that some point of ``by`` dominates (None without points)."""
    if not points:
        return None
    return sum(any(dominates(q, p) for q in by) for p in points) / len(points)
