"""The search spaces behind one interface: the one place that knows which cell a run
searches. A stage asks :func:`space_of` for its run's space and calls it; it never tests
the space's name.

* ``darts`` -- the DARTS cell (:mod:`lanas.genotype`, :mod:`lanas.encoding`): an
  architecture's text is its canonical genotype JSON;
* ``nb201`` -- the NAS-Bench-201 cell (:mod:`lanas.nb201`): its text is the official arch
  string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

Either text form names one architecture; :meth:`ArchSpace.parse` reads it (refusing ops
or shapes of another space in one line), :meth:`ArchSpace.text` writes the canonical form
whose SHA-1 is the ``arch_id`` the latency dataset keys rows by.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from lanas import nb201
from lanas.encoding import LAYOUT_VERSION, encode_genotype
from lanas.genotype import Genotype, GenotypeError
from lanas.space import SearchSpace


class ArchError(ValueError):
    """Text that names no architecture of the run's space."""


@dataclass(frozen=True)
class ArchSpace:
    """What the stages need of a space: read, write, key and encode architectures."""

    settings: SearchSpace

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def layout_version(self) -> int:
        return LAYOUT_VERSION

    def parse(self, text: str) -> Any:
        raise NotImplementedError

    def text(self, arch: Any) -> str:
        raise NotImplementedError

    def arch_id(self, arch: Any) -> str:
        return arch.arch_id

    def encode(self, arch: Any) -> torch.Tensor:
        raise NotImplementedError


class DartsSpace(ArchSpace):
    def parse(self, text: str) -> Genotype:
        if text.lstrip().startswith("|"):
            raise ArchError(f"a NAS-Bench-201 arch string, not a DARTS genotype: {_short(text)}")
        try:
            return Genotype.from_json(text, self.settings.ops).canonical()
        except GenotypeError as exc:
            raise ArchError(f"not a genotype of this space: {exc}") from None

    def text(self, arch: Genotype) -> str:
        return arch.to_json()

    def encode(self, arch: Genotype) -> torch.Tensor:
        return encode_genotype(arch, self.settings)


class Nb201Space(ArchSpace):
    @property
    def layout_version(self) -> int:
        return nb201.LAYOUT_VERSION

    def parse(self, text: str) -> nb201.Cell:
        text = text.strip()
        if text.startswith('"'):  # a JSON string, as a JSON-lines file of arch strings has it
            text = json.loads(text)
        if text.startswith("{"):
            raise ArchError(f"a DARTS genotype, not a NAS-Bench-201 arch string: {_short(text)}")
        try:
            return nb201.Cell.from_arch_str(text)
        except nb201.CellError as exc:
            raise ArchError(str(exc)) from None

    def text(self, arch: nb201.Cell) -> str:
        return arch.arch_str()

    def encode(self, arch: nb201.Cell) -> torch.Tensor:
        return nb201.encode(arch)


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def space_of(settings: SearchSpace) -> ArchSpace:
    """The run's space (``space.name`` of its config)."""
    return {"darts": DartsSpace, "nb201": Nb201Space}[settings.name](settings)
