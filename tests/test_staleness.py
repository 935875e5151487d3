"""Stale stages (issue: growing the dataset after a complete run left fit and search stale,
and ``reproduce`` skipped them): every done-marker records the identity of its inputs;
``reproduce`` re-runs a stage whose inputs changed, keeping its old outputs under
``stale/``; a stage run alone on stale inputs says so in one line. Real local Ray, smoke
profile, on a copy of the session's reproduced run."""

import json

import pandas as pd
import pytest
from conftest import copy_run

from lanas_pipeline import cli
from lanas_pipeline.measure import run_measure
from lanas_pipeline.reproduce import reproduce
from lanas_pipeline.rows import dataset_dir
from lanas_pipeline.rundir import STAGES, RunDir
from lanas_pipeline.stages import Options
from lanas_pipeline.staleness import stale_reason, upstream_warning

pytestmark = pytest.mark.slow


def _reproduce(run, capsys):
    reproduce(run.path / "config.yaml", run.path, options=Options(progress=False))
    return capsys.readouterr().out


def test_a_grown_dataset_makes_fit_and_what_follows_stale_and_reproduce_reruns_them(reproduced, tmp_path, capsys):
    run = copy_run(reproduced, tmp_path / "run")
    out = _reproduce(run, capsys)
    assert all(f"[reproduce] {s}: complete, skipped" in out for s in STAGES) and "stale" not in out
    assert all(stale_reason(run, s) is None for s in STAGES)
    assert all("inputs" in json.loads((run.path / s / "DONE.json").read_text()) for s in STAGES)
    trained_before = (run.path / "evaluate" / "trained.jsonl").read_text().splitlines()
    searched_before = (run.path / "search" / "results.jsonl").read_text()

    run_measure(run, num_archs=62, progress=False)  # two more architectures after the run completed
    assert stale_reason(run, "measure") is None  # it measured more than the config asks for
    assert stale_reason(run, "fit") == "the dataset of cpu-t1-torch-b1 changed (63 -> 65 architectures)"
    assert stale_reason(run, "search") is None  # its predictor has not changed (yet)

    # a stage run alone on stale inputs says so, in one line, and runs
    assert cli.main(["report", "--config", str(run.path / "config.yaml"), "--run-dir", str(run.path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lanas report: warning: fit is stale, the dataset of cpu-t1-torch-b1 changed (63 -> 65 architectures): "
        "report runs on out-of-date inputs (`lanas reproduce` re-runs every stale stage)"
    ]
    assert upstream_warning(run, "fit") is None  # measure itself is current

    out = _reproduce(run, capsys)
    assert "[reproduce] measure: complete, skipped" in out
    for stage, why in (
        ("fit", "the dataset of cpu-t1-torch-b1 changed (63 -> 65 architectures)"),
        ("search", "the predictor of cpu-t1-torch-b1 was refitted"),
        ("evaluate", "the predictor of cpu-t1-torch-b1 was refitted"),
    ):
        assert f"[reproduce] {stage}: stale, {why}; running it again" in out, out
    assert all(stale_reason(run, s) is None for s in STAGES)
    # the old outputs are kept, not deleted: the predictor, the sweep, the evaluation and the report
    kept = {p.name.split("-")[0]: p for p in (run.path / "stale").iterdir()}
    assert set(kept) == {"fit", "search", "evaluate", "report"}
    assert (kept["search"] / "results.jsonl").read_text() == searched_before
    assert list(kept["fit"].glob("*/predictor.pt"))
    meta = json.loads(next((run.path / "fit").glob("*/predictor.json")).read_text())
    assert meta["rows"]["train"] + meta["rows"]["test"] + meta["rows"]["published"] >= 65
    # evaluate kept its per-architecture cache: what it trained before is not trained again
    trained_after = (run.path / "evaluate" / "trained.jsonl").read_text().splitlines()
    assert trained_after[: len(trained_before)] == trained_before
    ids = [json.loads(x)["arch_id"] for x in trained_after]
    assert len(ids) == len(set(ids))
    df = pd.read_parquet(dataset_dir(run))
    assert df.duplicated(["hardware", "arch_id"]).sum() == 0

    # a third run finds nothing stale and repeats nothing
    out = _reproduce(run, capsys)
    assert all(f"[reproduce] {s}: complete, skipped" in out for s in STAGES)

    # a config changed with --overwrite makes the stages that depend on what changed stale:
    # the search settings leave the dataset and the predictor current ...
    from lanas_pipeline.config import config_from_dict

    cfg = RunDir.existing(run.path).config
    changed = cfg.to_dict()
    changed["search"]["settings"]["epochs"] = 3
    other = RunDir.open(run.path, config_from_dict(changed), overwrite=True)
    assert [stale_reason(other, s) for s in STAGES] == [None, None] + ["the run's config changed"] * 3
    # ... the deployed network changes every stage
    changed["network"]["channels"] = 16
    other = RunDir.open(run.path, config_from_dict(changed), overwrite=True)
    assert all(stale_reason(other, s) == "the run's config changed" for s in STAGES)


def test_a_marker_without_inputs_is_current_and_an_unreadable_one_is_stale(tmp_path):
    from conftest import smoke_config

    run = RunDir.open(tmp_path / "run", smoke_config())
    assert stale_reason(run, "report") is None  # not done
    (run.stage("report") / "DONE.json").write_text(json.dumps({"finished_at": 0}))
    assert stale_reason(run, "report") is None  # written before markers recorded inputs
    (run.stage("report") / "DONE.json").write_text("{not json")
    assert stale_reason(run, "report") == "its done-marker is unreadable"


def test_a_marker_with_the_whole_configs_identity_is_current_and_a_new_lambda_grid_keeps_fit(tmp_path):
    from conftest import smoke_config

    run = RunDir.open(tmp_path / "run", smoke_config())
    # markers written before per-stage identities recorded the whole config's
    (run.stage("report") / "DONE.json").write_text(
        json.dumps({"inputs": {"config": run.config.identity(), "evaluate": "missing"}})
    )
    assert stale_reason(run, "report") is None
    other = smoke_config(**{"search.lambdas": [0.0, 0.5]})
    assert other.identity("fit") == run.config.identity("fit") and other.identity("search") != run.config.identity(
        "search"
    )
