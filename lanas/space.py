"""The search space: which ops, and seeded sampling of valid genotypes.

Two samplers. *Uniform* gives every edge an op drawn uniformly, so every op holds about
1/|ops| of a random architecture's edges. *Coverage* first draws an op mixture per cell
from a symmetric Dirichlet (small concentration: a few ops dominate), then each edge's
op from that mixture: it reaches the compositions a latency-aware search lands on
(mostly pooling and skip at large lambda, mostly separable convolutions at lambda = 0),
where a predictor fitted on uniform samples extrapolates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lanas import nb201
from lanas.genotype import Genotype
from lanas.ops import DARTS_OPS, op_names
from lanas.topology import CELL_TYPES, CONCAT, NODES, NONE

SPACE_NAMES = ("darts", "nb201")


@dataclass(frozen=True)
class SearchSpace:
    # candidate ops on every edge; 'none' may be listed (used by the supernet, never chosen)
    ops: tuple[str, ...] = DARTS_OPS
    # darts: the DARTS cell (ops above); nb201: NAS-Bench-201's cell, whose five ops are fixed (lanas.nb201)
    name: str = "darts"

    def __post_init__(self) -> None:
        if self.name not in SPACE_NAMES:
            raise ValueError(f"space.name must be one of {SPACE_NAMES}, got {self.name!r}")
        if self.name == "nb201":
            if self.ops == DARTS_OPS:  # left at its default: the benchmark's ops
                object.__setattr__(self, "ops", nb201.OPS)
            if tuple(self.ops) != nb201.OPS:
                raise ValueError(f"space.ops: NAS-Bench-201's ops are fixed ({', '.join(nb201.OPS)})")
            return
        unknown = [o for o in self.ops if o not in op_names()]
        if unknown:
            raise ValueError(f"space.ops: unknown ops {unknown}; known: {', '.join(op_names())}")
        if len(set(self.ops)) != len(self.ops):
            raise ValueError("space.ops: duplicate ops")
        if not self.choosable_ops:
            raise ValueError("space.ops: needs at least one op other than 'none'")

    @property
    def choosable_ops(self) -> tuple[str, ...]:
        return tuple(o for o in self.ops if o != NONE)

    def expresses(self, genotype: Genotype) -> bool:
        """Whether every op of ``genotype`` is one of this space's."""
        return all(op in self.ops for op, _ in genotype.normal + genotype.reduce)

    def sample(self, rng: random.Random, concentration: float | None = None) -> Genotype:
        """One genotype: per node two distinct inputs, one op each. The ops are uniform,
        or (with ``concentration``) drawn from a per-cell Dirichlet(concentration) mixture."""
        ops = self.choosable_ops
        cells = {}
        for cell in CELL_TYPES:
            weights = None
            if concentration is not None:  # Dirichlet draw as normalised gammas (the stdlib has no Dirichlet)
                weights = [rng.gammavariate(concentration, 1.0) + 1e-12 for _ in ops]
            pairs = []
            for node in NODES:
                for inp in sorted(rng.sample(range(node), 2)):
                    op = rng.choice(ops) if weights is None else rng.choices(ops, weights)[0]
                    pairs.append((op, inp))
            cells[cell] = tuple(pairs)
        return Genotype(cells["normal"], CONCAT, cells["reduce"], CONCAT)

    def sample_unique(self, n: int, seed: int, concentration: float | None = None) -> list[Genotype]:
        """``n`` distinct genotypes (uniform, or coverage with ``concentration``); the same
        arguments always give the same list, and a larger ``n`` extends a smaller one's list."""
        if n <= 0:
            raise ValueError(f"number of architectures must be > 0, got {n}")
        rng = random.Random(seed)
        seen: set[str] = set()
        out: list[Genotype] = []
        while len(out) < n:
            g = self.sample(rng, concentration)
            if g.arch_id not in seen:
                seen.add(g.arch_id)
                out.append(g)
        return out


@dataclass(frozen=True)
class SamplingSettings:
    """How stage 1 draws the architectures it measures."""

    coverage_share: float = 0.0  # share drawn by coverage sampling (per-cell Dirichlet op mixtures); the rest uniform
    concentration: float = 0.3  # Dirichlet concentration of coverage sampling (< 1: a few ops dominate a cell)

    def __post_init__(self) -> None:
        if not 0 <= self.coverage_share <= 1:
            raise ValueError(f"coverage_share must be in [0, 1], got {self.coverage_share}")
        if not self.concentration > 0:
            raise ValueError(f"concentration must be > 0, got {self.concentration}")


# half uniform, half near one op per cell: samples that reach both ends of the latency range (the
# latency-matched partners' pool and the random-search peer's candidates)
LATENCY_RANGE = SamplingSettings(coverage_share=0.5, concentration=0.1)
COVERAGE_SEED_OFFSET = 7919  # coverage samples come from their own stream, so each list extends on its own


def sample_mixed(space: SearchSpace, n: int, seed: int, settings: SamplingSettings) -> list[tuple[Genotype, str]]:
    """Up to ``n`` distinct genotypes, each with its sampler (``uniform`` or ``coverage``):
    ``round(n * coverage_share)`` coverage samples, the rest uniform. Each kind is a
    prefix of its own seeded stream, so a larger ``n`` extends a smaller one's list."""
    n_cov = round(n * settings.coverage_share)
    out = [(g, "uniform") for g in space.sample_unique(n - n_cov, seed)] if n > n_cov else []
    if n_cov:
        seen = {g.arch_id for g, _ in out}  # a coverage draw equal to a uniform one is kept once, as uniform
        extra = space.sample_unique(n_cov, seed + COVERAGE_SEED_OFFSET, settings.concentration)
        out += [(g, "coverage") for g in extra if g.arch_id not in seen]
    return out
