"""The genotype: an immutable, validated value type for one DARTS architecture.

JSON form uses DARTS's own field names, so published genotypes paste in as data::

    {"normal": [["sep_conv_3x3", 1], ... 8 pairs], "normal_concat": [2, 3, 4, 5],
     "reduce": [...8 pairs], "reduce_concat": [2, 3, 4, 5]}

Pair ``2k`` and ``2k+1`` are the two inputs of intermediate node ``k + 2``; inputs 0 and
1 are the outputs of the previous two cells, input ``j >= 2`` is node ``j``. The canonical
JSON (sorted keys, no spaces; each node's two inputs in ascending order) is hashed with SHA-1 to give the ``arch_id``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Sequence

from lanas.ops import DARTS_OPS
from lanas.topology import CELL_TYPES, CONCAT, NONE, NUM_NODES

Pair = tuple[str, int]


class GenotypeError(ValueError):
    """A genotype that is malformed or not in the search space."""


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    # --- construction -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, ops: Sequence[str] = DARTS_OPS) -> "Genotype":
        if not isinstance(data, dict):
            raise GenotypeError(f"a genotype must be a JSON object, got {type(data).__name__}")
        expected = {"normal", "normal_concat", "reduce", "reduce_concat"}
        if set(data) != expected:
            missing, extra = expected - set(data), set(data) - expected
            raise GenotypeError(
                "genotype fields must be normal, normal_concat, reduce, reduce_concat"
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unknown {sorted(extra)}" if extra else "")
            )
        fields: dict[str, Any] = {}
        for cell in CELL_TYPES:
            pairs = data[cell]
            if not isinstance(pairs, list):
                raise GenotypeError(f"{cell}: expected a list of [op, input] pairs")
            parsed = []
            for i, pair in enumerate(pairs):
                if (
                    not isinstance(pair, (list, tuple))
                    or len(pair) != 2
                    or not isinstance(pair[0], str)
                    or isinstance(pair[1], bool)
                    or not isinstance(pair[1], int)
                ):
                    raise GenotypeError(f"{cell}[{i}]: expected [op_name, input_index], got {pair!r}")
                parsed.append((pair[0], pair[1]))
            fields[cell] = tuple(parsed)
            concat = data[f"{cell}_concat"]
            if not isinstance(concat, list) or not all(isinstance(c, int) for c in concat):
                raise GenotypeError(f"{cell}_concat: expected a list of node indices, got {concat!r}")
            fields[f"{cell}_concat"] = tuple(concat)
        genotype = cls(**fields)
        genotype.validate(ops)
        return genotype.canonical()

    @classmethod
    def from_json(cls, text: str, ops: Sequence[str] = DARTS_OPS) -> "Genotype":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GenotypeError(f"not valid JSON: {exc}") from None
        return cls.from_dict(data, ops)

    # --- validation ---------------------------------------------------------------
    def validate(self, ops: Sequence[str] = DARTS_OPS) -> None:
        """Raise :class:`GenotypeError` naming the first pair that is not valid."""
        for cell in CELL_TYPES:
            pairs = getattr(self, cell)
            if len(pairs) != 2 * NUM_NODES:
                raise GenotypeError(f"{cell}: expected {2 * NUM_NODES} pairs, got {len(pairs)}")
            for i, (op, inp) in enumerate(pairs):
                node = i // 2 + 2
                if op not in ops:
                    raise GenotypeError(f"{cell}[{i}]: unknown op {op!r} (space ops: {', '.join(ops)})")
                if op == NONE:
                    raise GenotypeError(f"{cell}[{i}]: 'none' cannot be a chosen op")
                if not 0 <= inp < node:
                    raise GenotypeError(
                        f"{cell}[{i}]: input {inp} is not valid for node {node} (must be 0..{node - 1})"
                    )
                if i % 2 == 1 and pairs[i - 1][1] == inp:
                    raise GenotypeError(f"{cell}[{i}]: node {node} uses input {inp} twice")
            concat = getattr(self, f"{cell}_concat")
            if concat != CONCAT:
                raise GenotypeError(f"{cell}_concat: must be [2, 3, 4, 5], got {list(concat)}")

    def canonical(self) -> "Genotype":
        """The same architecture with each node's two inputs in ascending order, so that
        equal architectures compare equal and share one ``arch_id``."""

        def order(pairs: tuple[Pair, ...]) -> tuple[Pair, ...]:
            out: list[Pair] = []
            for k in range(0, len(pairs), 2):
                out.extend(sorted(pairs[k : k + 2], key=lambda p: (p[1], p[0])))
            return tuple(out)

        return Genotype(order(self.normal), self.normal_concat, order(self.reduce), self.reduce_concat)

    # --- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def arch_id(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()

    def edges(self, cell: str) -> Iterable[tuple[int, int, str]]:
        """Yield ``(node, input, op)`` for the 8 chosen edges of ``cell``."""
        for i, (op, inp) in enumerate(getattr(self, cell)):
            yield i // 2 + 2, inp, op


PUBLISHED = ("darts_v1", "darts_v2", "pc_darts")


def published(name: str) -> Genotype:
    """A published genotype shipped as data (``darts_v1``, ``darts_v2``, ``pc_darts``)."""
    if name not in PUBLISHED:
        raise GenotypeError(f"unknown published genotype {name!r}; known: {', '.join(PUBLISHED)}")
    text = resources.files("lanas.genotypes").joinpath(f"{name}.json").read_text()
    return Genotype.from_json(text)


TRIVIAL_OPS = ("skip_connect", "max_pool_3x3")  # (normal, reduce) op of the trivial baseline


def trivial() -> Genotype:
    """The no-convolution baseline: every node of the normal cell sums its two cell
    inputs through skip connections, every node of the reduction cell through 3x3 max
    pools. A searched cell has to beat it to show that its convolutions earn their time."""
    concat = CONCAT
    normal, reduce = ((tuple((op, inp) for _ in CONCAT for inp in (0, 1))) for op in TRIVIAL_OPS)
    return Genotype(normal, concat, reduce, concat)


def read_jsonl(path: str, ops: Sequence[str] = DARTS_OPS) -> list[Genotype]:
    """Read one genotype JSON per line; blank lines are skipped. Errors name the line."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except OSError as exc:
        raise GenotypeError(f"cannot read genotypes file {path}: {exc.strerror}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(Genotype.from_json(line, ops))
        except GenotypeError as exc:
            raise GenotypeError(f"{path}:{lineno}: {exc}") from None
    if not out:
        raise GenotypeError(f"{path}: no genotypes in file")
    return out
