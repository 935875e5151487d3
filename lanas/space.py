"""The search space: which ops, and seeded uniform sampling of valid genotypes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from lanas.genotype import Genotype
from lanas.ops import DARTS_OPS, op_names
from lanas.topology import CELL_TYPES, CONCAT, NODES, NONE


@dataclass(frozen=True)
class SearchSpace:
    # candidate ops on every edge; 'none' may be listed (used by the supernet, never chosen)
    ops: tuple[str, ...] = DARTS_OPS

    def __post_init__(self) -> None:
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

    def sample(self, rng: random.Random) -> Genotype:
        """One genotype drawn uniformly: per node two distinct inputs, one op each."""
        cells = {}
        for cell in CELL_TYPES:
            pairs = []
            for node in NODES:
                for inp in sorted(rng.sample(range(node), 2)):
                    pairs.append((rng.choice(self.choosable_ops), inp))
            cells[cell] = tuple(pairs)
        return Genotype(cells["normal"], CONCAT, cells["reduce"], CONCAT)

    def sample_unique(self, n: int, seed: int) -> list[Genotype]:
        """``n`` distinct genotypes; the same ``(n, seed)`` always gives the same list,
        and a larger ``n`` extends a smaller one's list."""
        if n <= 0:
            raise ValueError(f"number of architectures must be > 0, got {n}")
        rng = random.Random(seed)
        seen: set[str] = set()
        out: list[Genotype] = []
        while len(out) < n:
            g = self.sample(rng)
            if g.arch_id not in seen:
                seen.add(g.arch_id)
                out.append(g)
        return out
