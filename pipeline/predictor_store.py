"""The fitted predictor on disk: ``fit/predictor.pt`` (state dict) + ``fit/predictor.json``.

The JSON says what the weights mean (encoding layout version, op list, hardware,
measurement setting, network macro, target and its normalisation, the run's reference
latency in ms) and how good they are (held-out test metrics). Loading checks all of it
against the run, so a predictor from another space or hardware is a clear error.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lanas.encoding import LAYOUT_VERSION
from lanas.space import SearchSpace
from lanas.predictor import LatencyPredictor
from pipeline.config import RunConfig
from pipeline.errors import PipelineError
from pipeline.rundir import write_atomic

WEIGHTS, META = "predictor.pt", "predictor.json"


@dataclass(frozen=True)
class StoredPredictor:
    model: LatencyPredictor
    meta: dict[str, Any]

    @property
    def reference_ms(self) -> float:
        return float(self.meta["reference_ms"])

    def predict_ratio(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x)


def expected_meta(cfg: RunConfig) -> dict[str, Any]:
    """The fields a predictor must share with a run to be used in it."""
    m, p = cfg.macro(), cfg.measure.protocol
    return {"layout_version": LAYOUT_VERSION, "ops": list(cfg.space.ops),
            "macro": {"layers": m.layers, "channels": m.channels, "stem_multiplier": m.stem_multiplier,
                      "in_channels": m.in_channels},
            "setting": {"batch_size": p.batch_size, "resolution": p.resolution, "dtype": p.dtype, "threads": p.threads}}


def save(folder: Path, model: LatencyPredictor, meta: dict[str, Any]) -> None:
    tmp = folder / f".{WEIGHTS}.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(folder / WEIGHTS)
    write_atomic(folder / META, json.dumps(meta, indent=2, sort_keys=True))


def load(folder: Path, cfg: RunConfig | None = None, hardware: str | None = None) -> StoredPredictor:
    """Load and check against ``cfg`` (and ``hardware``) when given."""
    wf, mf = folder / WEIGHTS, folder / META
    if not wf.is_file() or not mf.is_file():
        raise PipelineError(f"no fitted predictor in {folder} (run `lanas fit` first)")
    try:
        meta = json.loads(mf.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{mf} is not valid JSON: {exc}") from None
    if cfg is not None:
        want = expected_meta(cfg)
        for key in ("layout_version", "ops", "macro", "setting"):
            if meta.get(key) != want[key]:
                raise PipelineError(f"predictor in {folder} does not match the run: {key} is {meta.get(key)!r}, "
                                    f"the run needs {want[key]!r}")
    if hardware is not None and meta.get("hardware") != hardware:
        raise PipelineError(f"predictor in {folder} was fitted for hardware {meta.get('hardware')!r}, not {hardware!r}")
    model = LatencyPredictor.for_space(SearchSpace(tuple(meta["ops"])), tuple(meta["hidden"]))
    try:
        state = torch.load(wf, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - corrupt file or wrong shapes
        raise PipelineError(f"cannot load predictor weights {wf}: {str(exc).splitlines()[0]}") from None
    return StoredPredictor(model.eval(), meta)


def check_quality(stored: StoredPredictor, max_mape: float, force: bool = False) -> None:
    """The quality gate: refuse a predictor whose held-out MAPE exceeds ``max_mape``."""
    mape = stored.meta.get("test", {}).get("mape")
    if mape is None or not mape <= max_mape:
        msg = (f"predictor test MAPE {mape if mape is None else f'{mape:.1%}'} exceeds the quality gate "
               f"fit.max_test_mape = {max_mape:.1%}")
        if not force:
            raise PipelineError(msg + "; measure more architectures or pass --force-predictor")
        print(f"[warning] {msg}; continuing because --force-predictor was given", flush=True)
