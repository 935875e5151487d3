"""The DARTS cell's topology, in one place.

A cell has two inputs (ids 0 and 1: the outputs of the previous two cells) and
``NUM_NODES`` intermediate nodes (ids ``NODES``); node ``n`` may take an edge from every
earlier id, so the cell has ``NUM_EDGES`` candidate edges, numbered node by node
(``edge_index``). A discrete cell keeps two of each node's incoming edges and concatenates
every intermediate node (``CONCAT``). In a reduction cell the edges from the two cell
inputs have stride 2 (``edge_stride``). ``NONE`` is the zero op: a candidate in the
supernet, never a chosen op.
"""

from __future__ import annotations

NUM_NODES = 4  # intermediate nodes per cell
NODES = tuple(range(2, 2 + NUM_NODES))  # their ids: (2, 3, 4, 5)
CONCAT = NODES  # what a cell outputs: every intermediate node, concatenated
NUM_EDGES = sum(NODES)  # candidate edges per cell: 2 + 3 + 4 + 5 = 14
NODE_OFFSETS = tuple(sum(NODES[:i]) for i in range(NUM_NODES))  # first edge of each node: (0, 2, 5, 9)
CELL_TYPES = ("normal", "reduce")
NONE = "none"  # the zero op


def edge_index(node: int, inp: int) -> int:
    """The candidate edge from ``inp`` into ``node``."""
    return NODE_OFFSETS[node - 2] + inp


def node_edges(node: int) -> slice:
    """The candidate edges into ``node``."""
    return slice(NODE_OFFSETS[node - 2], NODE_OFFSETS[node - 2] + node)


def edge_stride(reduction: bool, inp: int) -> int:
    """Stride of an edge from ``inp``: 2 from the cell inputs of a reduction cell, else 1."""
    return 2 if reduction and inp < 2 else 1
