"""Ray's recovery promises, held in this pipeline: a process SIGKILLed mid-work on a real
local Ray (the session's), on copies of the session's smoke run. The other kills are in
test_measure_stage.py (a measuring worker, the measuring driver) and test_e2e.py (the
driver mid-sweep and mid-evaluate)."""

import json

import pytest
from conftest import copy_fitted, kill_worker_while, smoke_config

from lanas_pipeline.errors import PipelineError
from lanas_pipeline.fit.stage import run_fit
from lanas_pipeline.rundir import RunDir
from lanas_pipeline.search.stage import run_search

pytestmark = pytest.mark.slow
EPOCHS = 6  # long enough to kill a trial between its first checkpoint and its end


def _epochs(trial_dir) -> list[int]:
    return [json.loads(x)["epoch"] for x in (trial_dir / "result.json").read_text().splitlines() if x.strip()]


def test_a_search_trial_killed_mid_search_continues_from_its_checkpoint(fitted, tmp_path):
    """SIGKILL the Tune trial's worker after its second epoch's checkpoint (by then Tune
    holds the first, so the restore cannot be from scratch): Tune restores the trial from
    a checkpoint (``search.max_failures``) and it ends as the same trial run through, its
    row saying the epoch it resumed from."""
    cfg = smoke_config(**{"search.lambdas": [2.0], "search.settings.epochs": EPOCHS})
    through = copy_fitted(fitted[0], tmp_path / "through", cfg)
    killed_run = copy_fitted(fitted[0], tmp_path / "killed", cfg)
    [whole] = run_search(through, progress=False)

    trial = killed_run.path / "search" / "tune" / "sweep" / "trial000"
    killed, rows = kill_worker_while(
        "ray::ImplicitFunc.train",
        lambda: run_search(killed_run, progress=False),
        ready=lambda: (trial / "checkpoint_000001").is_dir() and not (trial / f"checkpoint_{EPOCHS - 1:06d}").is_dir(),
    )
    assert killed is not None, "the trial's worker was not caught between its second and last checkpoint"
    [resumed] = rows
    assert resumed["epochs"] == whole["epochs"] == EPOCHS
    assert resumed["genotype"] == whole["genotype"] and resumed["val_acc"] == pytest.approx(whole["val_acc"])
    assert resumed["predicted_latency_ms"] == pytest.approx(whole["predicted_latency_ms"])
    # restored from an epoch's checkpoint, not started again; the run through never resumed
    assert 1 <= resumed["resumed_from_epoch"] < EPOCHS and whole["resumed_from_epoch"] == 0
    # Tune's result.json after a restore is its storage copy plus what followed, which can
    # miss the last reports before the kill; it ends at the last epoch all the same
    assert _epochs(trial)[-1] == EPOCHS


def test_a_train_worker_killed_mid_fit_is_recovered_or_refused_in_one_line_and_a_rerun_fits(measured_run, tmp_path):
    """SIGKILL one Ray Train worker while it trains. Train restarts the worker group
    (``fit.max_failures``) where it can; where its controller gives up instead (Ray 2.60's
    Train V2 does when the worker dies inside ``run_train_fn``), the stage fails with one
    clear line, marks nothing done and writes no predictor, and a re-run fits."""
    import shutil

    shutil.copytree(measured_run.path, tmp_path / "run", ignore=shutil.ignore_patterns("fit", "search"))
    run = RunDir.existing(tmp_path / "run")
    try:
        killed, summary = kill_worker_while("ray::RayTrainWorker.run_train_fn", lambda: run_fit(run))
        assert killed is not None, "no Train worker was caught training"
    except PipelineError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("the Ray Train job fitting the predictors failed (")
        assert "died" in message and message.endswith("no predictor was written: run `lanas fit` again")
        assert not run.is_done("fit") and not list((run.path / "fit").glob("*/predictor.pt"))
        summary = run_fit(run)
    assert run.is_done("fit") and set(summary["targets"]) == {t.spec for t in run.config.targets}
    assert all((run.path / "fit" / s["hardware"] / "predictor.pt").is_file() for s in summary["targets"].values())
