"""Stale stages. Each stage's done-marker (``<stage>/DONE.json``, key ``inputs``) records
the identity of what the stage read when it completed:

==========  ==============================================================================
measure     the config's identity; how many architectures were sampled
            (``measure.num_archs`` may grow)
fit         the config's identity; per target, the dataset rows it learns from (an id and
            a count of its architectures; the rows the closed loop adds are the search's own)
search      the config's identity; per target, the predictor's weights (``predictor.pt``)
evaluate    the config's identity; the predictors; ``search/results.jsonl``
report      the config's identity; ``evaluate/results.jsonl``
==========  ==============================================================================

The config's identity is that of the sections the stage depends on
(:data:`pipeline.config.STAGE_SECTIONS`): a new λ grid or method list makes search and
what follows stale, not the predictors.

A completed stage whose inputs have changed since is *stale*. ``reproduce`` re-runs it,
and so, as their inputs change in turn, the stages after it; a stage's old outputs move
to ``stale/<stage>-<time>/`` first (nothing is deleted). Stage 1 (the dataset) is never
moved: it only grows. Evaluate keeps its trained weights and measured latencies, which
are keyed by architecture, unless the config changed. A stage run alone on stale inputs
says so in one line. A marker written before markers recorded inputs is taken as current.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from lanas.target import Target

from .predictor_store import WEIGHTS
from .records import LATENCY_RATIO
from .rows import usable_rows
from .rundir import STAGES, RunDir, write_atomic

STALE_DIR = "stale"


def _sha(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12] if path.is_file() else "missing"


def dataset_identity(run: RunDir, target: Target) -> str:
    """``<architectures>:<id>`` of the usable rows fit learns from on ``target`` (every
    sampler but ``derived``: the closed loop adds those within the search)."""
    hw = run.hardware_ids().get(target.spec)
    if hw is None:
        return "0:none"
    rows = usable_rows(run, target, hw, ["status", LATENCY_RATIO, "sampler"])
    ids = sorted(r["arch_id"] for r in rows if r["sampler"] != "derived")
    return f"{len(ids)}:{hashlib.sha1(json.dumps(ids).encode()).hexdigest()[:12]}"


def _predictors(run: RunDir) -> dict[str, str]:
    ids = run.hardware_ids()
    return {
        f"predictor:{t.spec}": _sha(run.path / "fit" / ids[t.spec] / WEIGHTS) if t.spec in ids else "missing"
        for t in run.config.targets
    }


def mark_done(run: RunDir, name: str, summary: dict[str, Any]) -> None:
    """``<stage>/DONE.json``: the stage's summary and the identity of its inputs."""
    run.update_manifest({})  # the code, versions and host that ran the stage
    marker = {"finished_at": time.time(), **summary, "inputs": inputs(run, name, summary)}
    write_atomic(run.stage(name) / "DONE.json", json.dumps(marker, indent=2))


def inputs(run: RunDir, stage: str, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The identity of what ``stage`` reads, now (``summary``: what the stage reports of itself)."""
    out: dict[str, Any] = {"config": run.config.identity(stage)}
    if stage == "measure":
        out["sampled"] = int((summary or {}).get("sampled", run.config.measure.num_archs))
    elif stage == "fit":
        out.update({f"dataset:{t.spec}": dataset_identity(run, t) for t in run.config.targets})
    elif stage == "search":
        out.update(_predictors(run))
    elif stage == "evaluate":
        out.update(_predictors(run))
        out["search"] = _sha(run.path / "search" / "results.jsonl")
    elif stage == "report":
        out["evaluate"] = _sha(run.path / "evaluate" / "results.jsonl")
    return out


def _recorded(run: RunDir, stage: str) -> dict[str, Any] | None:
    """The inputs a completed stage recorded; None if not done or recorded none, {} if unreadable."""
    if not run.is_done(stage):
        return None
    marker = run.done_summary(stage)
    return marker.get("inputs") if marker else {}


def _why(key: str, old: Any, new: Any) -> str:
    if key == "config":
        return "the run's config changed"
    if key == "sampled":
        return f"measure.num_archs grew from {old} to {new}"
    if key.startswith("dataset:"):
        before, after = (str(v).split(":")[0] for v in (old, new))
        return f"the dataset of {key.split(':', 1)[1]} changed ({before} -> {after} architectures)"
    if key.startswith("predictor:"):
        return f"the predictor of {key.split(':', 1)[1]} was refitted"
    return f"{key}/results.jsonl changed"


def stale_reason(run: RunDir, stage: str) -> str | None:
    """Why a completed ``stage`` is stale, or None (not done, current, or recorded no inputs)."""
    old = _recorded(run, stage)
    if old is None:
        return None
    if not old:
        return "its done-marker is unreadable"
    new = inputs(run, stage)
    for key, value in new.items():
        before = old.get(key)
        if key == "sampled":  # more may have been measured than the config asks for now
            changed = before is not None and value > before
        elif key == "config":  # markers written before per-stage identities hold the whole config's
            changed = not _same_config(run, stage, before)
        else:  # a key the marker lacks counts as changed
            changed = value != before
        if changed:
            return _why(key, before, value)
    return None


def _same_config(run: RunDir, stage: str, recorded: Any) -> bool:
    """Whether a marker's config identity is this config's, for ``stage`` (or whole: older markers)."""
    return recorded in (run.config.identity(stage), run.config.identity())


def archive(run: RunDir, stage: str) -> Path | None:
    """Move a stale stage's outputs to ``stale/<stage>-<time>/`` and clear its marker.
    Measure keeps its dataset in place; evaluate its per-architecture caches, unless the
    config changed (they were made under another one)."""
    src, dest = run.path / stage, run.path / STALE_DIR / f"{stage}-{time.strftime('%Y%m%dT%H%M%S')}"
    if stage == "measure":
        dest = None
    elif stage == "evaluate" and _same_config(run, stage, (_recorded(run, stage) or {}).get("config")):
        dest.mkdir(parents=True)
        for name in ("results.jsonl", "DONE.json"):
            if (src / name).is_file():
                shutil.copy2(src / name, dest / name)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dest))
    run.clear_done(stage)
    return dest


def refresh(run: RunDir, stage: str, say: Callable[[str], None]) -> bool:
    """If ``stage`` is done but stale: say why, archive it, and clear its marker so it runs again."""
    reason = stale_reason(run, stage)
    if reason is None:
        return False
    dest = archive(run, stage)
    kept = f" (its old outputs: {dest})" if dest is not None else ""
    say(f"{stage}: stale, {reason}; running it again{kept}")
    return True


def upstream_warning(run: RunDir, stage: str) -> str | None:
    """One line when a stage before ``stage`` is stale: ``stage`` would run on out-of-date inputs."""
    for before in STAGES[: STAGES.index(stage)]:
        reason = stale_reason(run, before)
        if reason is not None:
            return (
                f"warning: {before} is stale, {reason}: {stage} runs on out-of-date inputs "
                "(`lanas reproduce` re-runs every stale stage)"
            )
    return None
