"""The NAS-Bench-201 cell space: its ops, genotype value type, encoding and sampling.

A cell has 4 nodes; node 0 is the cell's input and node ``j`` (1..3) sums one op applied
to every earlier node ``i < j``: 6 edges, each carrying one of 5 ops, 5**6 = 15,625
architectures. The official text form lists the edges node by node,
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (``op~i`` into node ``j`` reads node ``i``), and is
this module's canonical form: :class:`Cell` parses and writes it, and its SHA-1 is the
``arch_id``.

Encoding layout (version 1): a flat float vector of ``6 x 5`` entries, index
``edge * 5 + op``, edges in the arch-string order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) and
ops in :data:`OPS` order. A discrete cell is one-hot per edge; a relaxed one (the search's
``alpha``, one row of logits per edge) is ``softmax(alpha)`` per edge, the expected
encoding of the cells drawn op by op from it, so a lookup table's latency term is exactly
their expected latency. Every edge carries a mass of 1 in both.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Iterable

import torch

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (into node, from node), arch-string order
NUM_NODES = 4
ENCODING_SIZE = len(EDGES) * len(OPS)
LAYOUT_VERSION = 1


class CellError(ValueError):
    """An arch string that is malformed or not in the NAS-Bench-201 space."""


@dataclass(frozen=True)
class Cell:
    """One NAS-Bench-201 architecture: the op on each of the 6 edges, in :data:`EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise CellError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(self.ops)}")
        unknown = sorted({o for o in self.ops if o not in OPS})
        if unknown:
            raise CellError(f"unknown NAS-Bench-201 ops {unknown}; known: {', '.join(OPS)}")

    @classmethod
    def from_arch_str(cls, text: str) -> "Cell":
        """Parse the official form; edges must come node by node, inputs ascending."""
        if not isinstance(text, str) or not text.startswith("|") or not text.endswith("|"):
            raise CellError(f"not a NAS-Bench-201 arch string: {text!r}")
        nodes = text.split("+")
        if len(nodes) != NUM_NODES - 1:
            raise CellError(f"an arch string has {NUM_NODES - 1} nodes joined by '+', got {len(nodes)}: {text!r}")
        ops = []
        for j, node in enumerate(nodes, start=1):
            parts = node.strip("|").split("|")
            if len(parts) != j or not node.startswith("|") or not node.endswith("|"):
                raise CellError(f"node {j} of {text!r} must read nodes 0..{j - 1} in order")
            for i, part in enumerate(parts):
                op, sep, inp = part.partition("~")
                if not sep or inp != str(i):
                    raise CellError(f"edge {part!r} into node {j} of {text!r} must read node {i}")
                ops.append(op)
        return cls(tuple(ops))

    def arch_str(self) -> str:
        it = iter(self.ops)
        return "+".join("|" + "|".join(f"{next(it)}~{i}" for i in range(j)) + "|" for j in range(1, NUM_NODES))

    @property
    def arch_id(self) -> str:
        return hashlib.sha1(self.arch_str().encode()).hexdigest()

    def __str__(self) -> str:
        return self.arch_str()


def disconnected(cell: Cell) -> bool:
    """Whether the cell's output (node 3) is zeros whatever its input: no path of
    non-``none`` ops joins node 0 to node 3. 341 of the 15,625 cells; a runtime that folds
    constants may run their networks as a constant (the Pixel 3's table times 202 of them
    at ~0.003 ms against a median of 10.7 ms, and no other architecture below 1 ms), which
    no sum of per-edge costs expresses."""
    live = {0}
    for op, (into, src) in zip(cell.ops, EDGES):
        if op != "none" and src in live:
            live.add(into)
    return 3 not in live


def encode(cell: Cell) -> torch.Tensor:
    """The discrete encoding: one-hot per edge."""
    x = torch.zeros(len(EDGES), len(OPS))
    for e, op in enumerate(cell.ops):
        x[e, OPS.index(op)] = 1.0
    return x.flatten()


def encode_many(cells: Iterable[Cell]) -> torch.Tensor:
    return torch.stack([encode(c) for c in cells]) if cells else torch.zeros(0, ENCODING_SIZE)


def encode_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """The relaxed encoding of ``alpha`` (``[6, 5]`` logits): softmax per edge, flattened."""
    if alpha.shape != (len(EDGES), len(OPS)):
        raise ValueError(f"alpha must have shape {(len(EDGES), len(OPS))}, got {tuple(alpha.shape)}")
    return torch.softmax(alpha, dim=-1).flatten()


def decode(features: torch.Tensor) -> Cell:
    """The inverse of :func:`encode` on discrete encodings; on relaxed ones, the strongest
    op per edge (DARTS' rule; ``none`` may win, as in the benchmark)."""
    if features.numel() != ENCODING_SIZE:
        raise ValueError(f"a NAS-Bench-201 encoding has {ENCODING_SIZE} entries, got {features.numel()}")
    idx = features.reshape(len(EDGES), len(OPS)).argmax(-1)
    return Cell(tuple(OPS[int(i)] for i in idx))


def sample(n: int, seed: int) -> list[Cell]:
    """``n`` distinct cells drawn uniformly (ops per edge uniform), in draw order."""
    if not 0 <= n <= len(OPS) ** len(EDGES):
        raise ValueError(f"cannot draw {n} distinct cells of {len(OPS) ** len(EDGES)}")
    rng = random.Random(seed)
    seen: dict[Cell, None] = {}
    while len(seen) < n:
        seen.setdefault(Cell(tuple(rng.choice(OPS) for _ in EDGES)), None)
    return list(seen)
