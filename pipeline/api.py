"""The pipeline from Python: the whole reproduction or one stage, typed results back.

A run from a profile (a path, or a :class:`pipeline.config.RunConfig` built in code), and
what it found, per target (``tests/test_api.py`` runs this example)::

    >>> import tempfile
    >>> from lanas_pipeline import api
    >>> from lanas_pipeline.config import load_config
    >>> cfg = load_config("configs/smoke.yaml", {"search.lambdas": [0.0, 2.0]})
    >>> result = api.reproduce(cfg, run_dir=tempfile.mkdtemp() + "/run", progress=False)  # doctest: +ELLIPSIS
    [reproduce] ...
    >>> result.targets
    ('cpu-t1-torch-b1',)
    >>> front = result.front("cpu-t1-torch-b1")      # searched architectures on the front, fastest first
    >>> all(a.measured_latency_ms <= b.measured_latency_ms for a, b in zip(front, front[1:]))
    True
    >>> best = result.best("cpu-t1-torch-b1", max_ms=front[-1].measured_latency_ms)
    >>> best.test_acc >= front[-1].test_acc and best.genotype.startswith("{")
    True

``load(run_dir)`` reads a finished run the same way; ``run_stage("search", cfg, run_dir)``
runs one stage (Ray is started for the stages that need it).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, load_config
from .errors import PipelineError
from .ray_env import init_ray
from .records import MEASURED_MS, PREDICTED_MS, TEST_ACC
from .reproduce import reproduce as _reproduce
from .rundir import RunDir
from .stages import BY_NAME, Options


@dataclass(frozen=True)
class Candidate:
    """One evaluated architecture measured on one target (a row of ``report/pareto.csv``)."""

    name: str
    kind: str  # searched | budget | matched | random | published | baseline
    method: str | None
    target: str
    searched_for: str | None
    lam: float | None
    seed: int | None
    test_acc: float
    measured_latency_ms: float | None
    predicted_latency_ms: float | None
    on_front: bool
    genotype: str  # canonical genotype JSON

    @classmethod
    def from_csv(cls, row: dict[str, str], genotypes: dict[str, str]) -> "Candidate":
        num = lambda v, t=float: t(v) if v not in ("", None) else None  # noqa: E731
        return cls(
            name=row["name"], kind=row["kind"], method=row["method"] or None, target=row["target"],
            searched_for=row["searched_for"] or None, lam=num(row["lam"]), seed=num(row["seed"], int),
            test_acc=float(row[TEST_ACC]), measured_latency_ms=num(row[MEASURED_MS]),
            predicted_latency_ms=num(row[PREDICTED_MS]), on_front=row["on_front"] == "True",
            genotype=genotypes.get(row["name"], ""),
        )  # fmt: skip


@dataclass(frozen=True)
class RunResult:
    path: Path
    candidates: tuple[Candidate, ...]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.target for c in self.candidates))

    def front(self, target: str) -> list[Candidate]:
        """The searched architectures on ``target``'s Pareto front, fastest first."""
        on = [c for c in self.candidates if c.target == target and c.on_front]
        return sorted(on, key=lambda c: c.measured_latency_ms or float("inf"))

    def best(self, target: str, max_ms: float | None = None) -> Candidate:
        """The most accurate architecture measured on ``target`` (at most ``max_ms`` there)."""
        ok = [c for c in self.candidates if c.target == target and c.measured_latency_ms is not None
              and (max_ms is None or c.measured_latency_ms <= max_ms)]  # fmt: skip
        if not ok:
            raise PipelineError(f"no architecture measured on {target}" + (f" within {max_ms:g} ms" if max_ms else ""))
        return max(ok, key=lambda c: (c.test_acc, -(c.measured_latency_ms or 0.0)))


def load(run_dir: str | Path) -> RunResult:
    """What a finished run found: every candidate on every target, from its report."""
    path = Path(run_dir)
    table = path / "report" / "pareto.csv"
    if not table.is_file():
        raise PipelineError(f"{path} has no report yet (run `lanas report`, or api.reproduce)")
    evaluated = path / "evaluate" / "results.jsonl"
    genotypes = {}
    if evaluated.is_file():
        genotypes = {r["name"]: r["genotype"] for r in map(json.loads, evaluated.read_text().splitlines())}
    with table.open(encoding="utf-8") as f:
        return RunResult(path, tuple(Candidate.from_csv(r, genotypes) for r in csv.DictReader(f)))


def _config(config: str | Path | RunConfig) -> RunConfig:
    return config if isinstance(config, RunConfig) else load_config(config)


def reproduce(
    config: str | Path | RunConfig,
    run_dir: str | Path | None = None,
    address: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> RunResult:
    """``lanas reproduce`` from Python: every stage not done yet; returns what the run found."""
    cfg = _config(config)
    path = Path(run_dir or Path("runs") / cfg.name)
    _reproduce(cfg, path, address=address, overwrite=overwrite, options=Options(progress=progress))
    return load(path)


def run_stage(
    name: str,
    config: str | Path | RunConfig,
    run_dir: str | Path | None = None,
    address: str | None = None,
    **options: bool,
) -> object:
    """One stage (``measure``, ``fit``, ``search``, ``evaluate``, ``report``) on a run
    directory; ``options`` are :class:`pipeline.stages.Options` fields. Returns what the stage returns."""
    if name not in BY_NAME:
        raise PipelineError(f"unknown stage {name!r}; stages: {', '.join(BY_NAME)}")
    cfg = _config(config)
    stage = BY_NAME[name]
    run = RunDir.open(Path(run_dir or Path("runs") / cfg.name), cfg, create=name == "measure")
    if stage.needs_ray:
        init_ray(address)
    return stage.run(run, Options(**options))
