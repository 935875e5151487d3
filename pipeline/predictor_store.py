"""Fitted predictors on disk, one per target: ``fit/<hardware id>/predictor.pt`` (state
dict) + ``predictor.json`` (:class:`PredictorMeta`).

The metadata says what the weights mean (encoding layout version, op list, target and
hardware id, network macro and input size, the regression target and the run's
reference latency in ms) and how good they are (held-out test metrics, baselines).
Loading checks all of it against the run, so a predictor of another space, macro or
target is a clear error. Every stage reads it through this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lanas.encoding import LAYOUT_VERSION, group_matrix
from lanas.network import MacroSettings
from lanas.predictor import LatencyPredictor
from lanas.space import SearchSpace
from lanas.target import Target

from .config import ConfigError, RunConfig, build
from .errors import PipelineError
from .records import LATENCY_RATIO
from .rundir import RunDir, write_atomic

WEIGHTS, META = "predictor.pt", "predictor.json"


@dataclass(frozen=True)
class PredictorMeta:
    """Written by ``lanas fit``, read by every later stage."""

    layout_version: int  # lanas.encoding layout of the input features
    ops: tuple[str, ...]  # the search space's op list (order = encoding order)
    target: Target  # what the latencies were measured on ...
    hardware: str  # ... and on which device (the dataset partition)
    macro: MacroSettings  # the deployed network that was timed
    resolution: int  # its input height = width
    hidden: tuple[int, ...]  # MLP widths of the predictor
    reference_ms: float  # median reference-network latency: ms = predicted ratio x this
    fits: str = LATENCY_RATIO  # the regression target (reference-normalised latency)
    rows: dict[str, int] = field(default_factory=dict)  # architectures per split (train, test, held-out sets)
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out, by reason
    test: dict[str, float] = field(default_factory=dict)  # held-out test metrics of the predictor (reported only)
    val: dict[str, float] = field(default_factory=dict)  # cross-validated metrics: the quality gate's
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # ... of each baseline
    versus_best_baseline: dict[str, float] = field(default_factory=dict)  # paired bootstrap of the MAPE difference
    train_metrics: dict[str, float] = field(default_factory=dict)
    # a transferred predictor (pipeline.transfer): source, its hardware, samples, model, leave-one-out MAPE, costs used
    transferred_from: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)  # k-fold model selection: candidates, intervals, choice
    # set -> model -> metrics away from the random test split: coverage test rows, published genotypes, and
    # ``derived-round<r>``: the architectures the round-r search derived with this predictor (added after it)
    ood: dict[str, Any] = field(default_factory=dict)
    round: int = 0  # closed-loop round it serves: derived architectures of rounds < round are in its training rows

    def best_baseline(self) -> str | None:
        """The baseline with the lowest test MAPE (None for a transferred predictor)."""
        return min(self.baselines, key=lambda k: self.baselines[k]["mape"]) if self.baselines else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "PredictorMeta":
        try:
            return build(cls, json.loads(text))
        except (json.JSONDecodeError, ConfigError) as exc:
            raise PipelineError(f"{where} is not predictor metadata of this version: {exc}") from None

    def check_matches(self, cfg: RunConfig, target: Target | None, where: Path) -> None:
        """Raise naming the first field in which this predictor does not fit ``cfg``/``target``."""
        want = {
            "layout_version": LAYOUT_VERSION,
            "ops": cfg.space.ops,
            "macro": cfg.macro(),
            "resolution": cfg.data.resolution,
        }
        if target is not None:
            want["target"] = target
        for key, value in want.items():
            if getattr(self, key) != value:
                raise PipelineError(
                    f"predictor in {where} does not match the run: {key} is {getattr(self, key)!r}, "
                    f"the run needs {value!r}"
                )


@dataclass(frozen=True)
class StoredPredictor:
    model: LatencyPredictor
    meta: PredictorMeta

    @property
    def reference_ms(self) -> float:
        return self.meta.reference_ms

    def predict_ratio(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x)


def folder(run: RunDir, hardware: str) -> Path:
    return run.path / "fit" / hardware


def save(where: Path, model: LatencyPredictor, meta: PredictorMeta) -> None:
    where.mkdir(parents=True, exist_ok=True)
    tmp = where / f".{WEIGHTS}.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(where / WEIGHTS)
    save_meta(where, meta)


def save_meta(where: Path, meta: PredictorMeta) -> None:
    """Rewrite the metadata alone (a search round adds the scores on what it derived)."""
    write_atomic(where / META, meta.to_json())


def load(where: Path, cfg: RunConfig | None = None, target: Target | None = None) -> StoredPredictor:
    """Load the predictor in ``where``, checked against ``cfg`` (and ``target``) when given."""
    wf, mf = where / WEIGHTS, where / META
    if not wf.is_file() or not mf.is_file():
        raise PipelineError(f"no fitted predictor in {where} (run `lanas fit` first)")
    meta = PredictorMeta.from_json(mf.read_text(encoding="utf-8"), str(mf))
    if cfg is not None:
        meta.check_matches(cfg, target, where)
    try:
        state = torch.load(wf, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or not a torch file at all
        raise PipelineError(
            f"cannot load predictor weights {wf}: not a readable PyTorch state dict ({type(exc).__name__}); "
            "run `lanas fit` again"
        ) from None
    # rebuilt from the state's own buffers: they say which sharing features the table was fitted
    # with (none before them, 9 before the shifted branch); its encoding must be the run's
    expected = group_matrix(SearchSpace(meta.ops)).shape
    try:
        if not isinstance(state, dict) or "pool" not in state:
            raise ValueError("not a latency predictor's state (no pool buffer)")
        model = LatencyPredictor.from_state(state, meta.hidden)
        if model.pool.shape != expected:
            raise ValueError(f"table pooling of shape {tuple(model.pool.shape)}, not {tuple(expected)}")
    except Exception as exc:  # noqa: BLE001 - weights of another shape than predictor.json says
        raise PipelineError(f"predictor weights {wf} do not fit {META}: {str(exc).splitlines()[0]}") from None
    return StoredPredictor(model.eval(), meta)


def check_quality(stored: StoredPredictor, max_mape: float, force: bool = False) -> None:
    """The quality gate: refuse a predictor whose cross-validated (leave-one-out for a
    transferred one) MAPE exceeds ``max_mape`` (the test split is only reported)."""
    mape = stored.meta.val.get("mape")
    if mape is None or not mape <= max_mape:
        msg = (
            f"predictor for {stored.meta.hardware}: validation MAPE {mape if mape is None else f'{mape:.1%}'} "
            f"exceeds the quality gate fit.max_val_mape = {max_mape:.1%}"
        )
        if not force:
            raise PipelineError(msg + "; measure more architectures or pass --force-predictor")
        print(f"[warning] {msg}; continuing because --force-predictor was given", flush=True)


def load_for(run: RunDir, target: Target, force: bool = False, gate: bool = True) -> StoredPredictor:
    """The run's predictor for ``target``, checked against its config and (with ``gate``)
    the quality gate."""
    stored = load(folder(run, run.hardware_id(target.spec)), run.config, target)
    if gate:
        check_quality(stored, run.config.fit.max_val_mape, force)
    return stored


def load_all(run: RunDir, force: bool = False, gate: bool = True) -> dict[str, StoredPredictor]:
    """Target spec -> checked predictor, for every target of the run."""
    return {t.spec: load_for(run, t, force, gate) for t in run.config.targets}


def stored_metas(run: RunDir) -> dict[str, PredictorMeta]:
    """Target spec -> the metadata of its stored predictor, for the targets that have one."""
    out = {}
    for t in run.config.targets:
        f = folder(run, run.hardware_ids().get(t.spec, "-")) / META
        if f.is_file():
            out[t.spec] = PredictorMeta.from_json(f.read_text(encoding="utf-8"), str(f))
    return out
