"""The rows the stages hand on, typed: one ``TypedDict`` per kind, and the names of the
columns more than one module reads as constants.

* :class:`MeasuredRow` -- a row of the stage-1 latency dataset (:data:`.dataset.FILE_SCHEMA`,
  written by :func:`.dataset.write_shard`, read by :mod:`.rows`);
* :class:`Trial` and :class:`TrialResult` -- a planned search trial (:func:`.search.plan.plan`)
  and its row of ``search/results.jsonl`` (:mod:`.search.results`);
* :class:`Candidate` and :class:`EvaluatedRow` -- an architecture stage 4 evaluates
  (:func:`.evaluate.candidates`) and its row of ``evaluate/results.jsonl`` per target
  (:func:`.evaluate.run_evaluate`), which the report (:mod:`.report`) and the method
  comparison (:mod:`.compare`) read; ``report/pareto.csv`` writes its :data:`.report.tables.CSV_FIELDS`.

:class:`Setting` names the dataset's measurement-setting columns (:data:`SETTING_COLUMNS`).
They are dicts at run time (JSON lines and Parquet rows stay as they are); the types say
which keys a row has, and the constants spell the shared ones once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from lanas.network import MacroSettings
from lanas.target import Target

LATENCY_RATIO = "latency_ratio"  # latency_ms / the interleaved reference network's: what the predictor fits
MEASURED_MS = "measured_latency_ms"  # an evaluated candidate's measured latency, reference-normalised (ms)
PREDICTED_MS = "predicted_latency_ms"  # the predictor's latency of an architecture (ms)
TEST_ACC = "test_acc"  # mean test accuracy over the training seeds


@dataclass(frozen=True)
class Setting:
    """What a latency row depends on besides the architecture and the machine: the
    target, the deployed network's macro, the input size and the encoding's op list.
    The one definition of the setting columns of the dataset."""

    target: Target
    macro: MacroSettings
    resolution: int
    space_ops: tuple[str, ...]

    def columns(self) -> dict[str, Any]:
        t, m = self.target, self.macro
        return {
            "device": t.device,
            "runtime": t.runtime,
            "dtype": t.dtype,
            "batch_size": t.batch_size,
            "threads": t.threads,
            "resolution": self.resolution,
            "in_channels": m.in_channels,
            "channels": m.channels,
            "layers": m.layers,
            "stem_multiplier": m.stem_multiplier,
            "space_ops": ",".join(self.space_ops),
        }

    def key(self) -> tuple:
        return tuple(self.columns().values())


SETTING_COLUMNS = tuple(Setting(Target(), MacroSettings(), 1, ()).columns())


class MeasuredRow(TypedDict, total=False):
    """One architecture timed on one target (or imported from a device's table)."""

    arch_id: str
    genotype: str
    encoding: list[float]
    layout_version: int
    space_ops: str
    device: str
    runtime: str
    dtype: str
    batch_size: int
    threads: int
    resolution: int
    in_channels: int
    channels: int
    layers: int
    stem_multiplier: int
    device_name: str
    runtime_version: str
    status: str  # "ok" or "failed"
    error: str | None
    latency_ms: float | None
    latency_p10_ms: float | None
    latency_p90_ms: float | None
    ref_latency_ms: float | None
    latency_ratio: float | None
    latency_ratio_p10: float | None
    latency_ratio_p90: float | None
    repeats: int
    warmup: int
    export_s: float
    compile_s: float
    torch_version: str
    measured_at: object  # a UTC datetime
    seed: int
    node: str
    sampler: str | None
    round: int | None
    build_path: str | None
    source: str | None
    hardware: str  # the partition (in the path, not the shard)


class Trial(TypedDict, total=False):
    """One trial of the sweep: a method, the target it searches for (None: every target),
    lambda or a latency budget, a seed; a random trial also its seconds of proxy training."""

    method: str
    target: str | None
    lam: float | None
    seed: int
    budget_ms: float | None
    budget_s: float


class TrialResult(Trial, total=False):
    """A finished trial's row of ``search/results.jsonl`` (a random trial gives one per pick)."""

    hardware: str | None
    arch_id: str
    genotype: str
    val_acc: float | None
    train_acc: float | None
    latency_term: float | None
    predicted_latency_ratio: float | None
    predicted_latency_ms: float | None
    predicted_mflops: float | None
    epochs: int | None
    lam_updates: int | None
    resumed_from_epoch: int | None
    in_window: bool | None
    search_s: float | None
    trial_path: str
    proxy_val_ce: float
    candidates: int
    proxy_s: float


class Candidate(TypedDict, total=False):
    """An architecture stage 4 trains and measures: searched, budget, published, the trivial
    baseline, random or latency-matched random."""

    name: str
    kind: str  # searched | budget | published | baseline | random | matched
    method: str | None
    lam: float | None
    seed: int | None
    searched_for: str | None
    budget_ms: float | None
    genotype: str
    arch_id: str
    search_s: float | None
    trial_path: str | None


class EvaluatedRow(Candidate, total=False):
    """A candidate on one target: its accuracy over the training seeds, measured and
    predicted latency (the report adds ``on_front``)."""

    target: str
    hardware: str
    test_acc: float
    test_acc_std: float | None
    test_accs: list[float]
    train_seeds: list[int]
    val_acc: float | None
    train_acc: float
    params: int
    measured_latency_ratio: float | None
    measured_latency_ms: float | None
    measured_raw_ms: float | None
    measurement_error: str | None
    predicted_latency_ratio: float
    predicted_latency_ms: float
    prediction_error: float | None
    on_front: bool


class BudgetRow(TypedDict):
    """A row of ``report/budgets.csv``: one budget search on its target, and the best
    lambda-sweep architecture under the same budget."""

    target: str
    budget_ms: float
    predicted_ms: float
    measured_ms: float | None
    test_acc: float
    met: bool | None
    share_of_budget: float | None
    name: str
    seed: int
    lam: float
    sweep_best: str | None
    sweep_best_acc: float | None
    sweep_best_ms: float | None


class SpecialisationRow(TypedDict):
    """A row of ``report/specialisation.csv``: on target B, the architecture searched for A
    against the one searched for B (same lambda and seed)."""

    deployed_on: str
    searched_for: str
    lam: float
    seed: int
    ms_searched_for_deployed: float | None
    ms_searched_for_other: float | None
    acc_searched_for_deployed: float
    acc_searched_for_other: float
    latency_lost: float | None


class Saving(TypedDict):
    """Per seed: the latency saved at equal-or-better validation accuracy versus lambda = 0."""

    seed: int
    decided_on: str
    lam0_acc: float
    lam0_ms: float
    best_lam: float | None
    best_acc: float | None
    saved: float


class Headline(TypedDict):
    """Per seed: the highest lambda's latency and accuracy change versus lambda = 0."""

    seed: int
    lam: float
    latency_change: float
    accuracy_change_points: float


# a row of ``report/latency_matrix.csv``: name, kind, searched_for, lam, seed, test_acc, and
# the measured ms on every target (a column per target spec, so not a fixed TypedDict)
MatrixRow = dict[str, str | float | int | None]


class TimedArch(TypedDict, total=False):
    """One architecture of an imported timing table, parsed and checked (:func:`.imported.timings`)."""

    arch: object  # the space's architecture (a Genotype or an NB201 Cell)
    text: str
    encoding: list[float]
    latency_ms: float
    latency_p10_ms: float | None
    latency_p90_ms: float | None


class Nb201Trial(TypedDict, total=False):
    """One trial of a NAS-Bench-201 sweep: the device searched for, lambda or a budget, a seed."""

    device: str
    lam: float
    seed: int
    budget_ms: float | None


class Nb201Result(Nb201Trial, total=False):
    """A finished NAS-Bench-201 trial's row of ``search/results.jsonl``."""

    arch: str  # the cell's arch string
    predicted_latency_ms: float
    val_acc: float
    epochs: int
    final_lam: float


class Nb201Evaluated(TypedDict, total=False):
    """A searched cell looked up on one device (``evaluate/results.jsonl`` of an NB201 run)."""

    kind: str  # searched | budget
    searched_for: str
    device: str
    lam: float
    seed: int
    budget_ms: float | None
    arch: str
    accuracy: float
    accuracy_source: str
    latency_ms: float
    latency_source: str
    meets_budget: bool | None
    accuracy_by_dataset: dict[str, float]
