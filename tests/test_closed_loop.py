"""The closed loop (``search.rounds``) on a real local Ray: each round's derived
architectures are measured into the stage-1 dataset with their sampler and round, the
predictors are refitted with them, the loop survives an interruption between rounds and
a re-run adds nothing twice."""

import json

import pandas as pd
import pytest
from conftest import copy_fitted, smoke_config

from lanas_pipeline import dataset as ds
from lanas_pipeline import predictor_store
from lanas_pipeline.closed_loop import results_path
from lanas_pipeline.report.markdown import rounds_section
from lanas_pipeline.rows import dataset_dir
from lanas_pipeline.rundir import read_jsonl
from lanas_pipeline.search import stage as search_stage
from lanas_pipeline.search.stage import run_search

SPEC = "cpu-t1-torch-b1"


@pytest.fixture(scope="module")
def loop_run(fitted, tmp_path_factory):
    """A copy of the fitted smoke run whose config asks for one closed-loop round."""
    return copy_fitted(fitted[0], tmp_path_factory.mktemp("loop") / "run", smoke_config(**{"search.rounds": 1}))


def _dataset(run):
    df = pd.read_parquet(dataset_dir(run))
    return df[df["status"] == "ok"]


def test_a_closed_loop_interrupted_between_rounds_continues(loop_run, monkeypatch):
    run = loop_run
    before = _dataset(run)
    train0 = predictor_store.load_for(run, run.config.targets[0]).meta.rows["train"]
    assert set(before["sampler"]) == {"uniform", "published"} and before["round"].isna().all()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed between rounds")

    monkeypatch.setattr(search_stage, "run_fit", killed)  # the refit between rounds
    with pytest.raises(KeyboardInterrupt):
        run_search(run, progress=False)
    round0 = read_jsonl(results_path(run, 0))
    derived0 = {r["arch_id"] for r in round0}
    mid = _dataset(run)
    # round 0's derived architectures are in the dataset, marked, before the crash
    marked = mid[mid["sampler"] == "derived"]
    assert set(marked["arch_id"]) <= derived0 and set(marked["round"]) <= {0}
    assert derived0 <= set(mid["arch_id"])
    assert not run.is_done("search") and not results_path(run, 1).exists()
    logged = read_jsonl(run.path / "search" / "rounds.jsonl")
    assert [(x["round"], x["target"]) for x in logged] == [(0, SPEC)] and logged[0]["n"] == len(derived0)

    monkeypatch.undo()
    rows = run_search(run, progress=False)
    assert read_jsonl(results_path(run, 0)) == round0  # round 0 was not searched again
    assert rows == read_jsonl(results_path(run, 1)) and len(rows) == len(round0)
    assert run.is_done("search")
    stored = predictor_store.load_for(run, run.config.targets[0])
    assert stored.meta.round == 1  # refitted with round 0's architectures
    df = _dataset(run)
    assert df.duplicated(["hardware", "arch_id", *ds.SETTING_COLUMNS]).sum() == 0
    assert set(df.loc[df["sampler"] == "derived", "round"]) <= {0, 1}
    logged = read_jsonl(run.path / "search" / "rounds.jsonl")
    assert [(x["round"], x["target"]) for x in logged] == [(0, SPEC), (1, SPEC)]
    # the refitted predictor trained on the derived rows, and its metrics show the round's error
    assert stored.meta.rows["train"] == train0 + len(marked)
    assert "derived-round1" in stored.meta.ood and "derived-round0" not in stored.meta.ood
    md = (predictor_store.folder(run, stored.meta.hardware) / "metrics.md").read_text()
    assert "architectures derived by search round1" in md
    table = "\n".join(rounds_section(run))
    assert f"| 0 | {SPEC} |" in table and f"| 1 | {SPEC} |" in table and "search.rounds` = 1" in table


def test_a_rerun_of_the_loop_adds_nothing(loop_run):
    run = loop_run
    if not run.is_done("search"):
        pytest.skip("needs the finished loop of the test above")
    files = sorted(p.name for p in dataset_dir(run).rglob("*.parquet"))
    log = (run.path / "search" / "rounds.jsonl").read_bytes()
    meta = (predictor_store.folder(run, run.hardware_id(SPEC)) / "predictor.json").read_text()
    run_search(run, progress=False)
    assert sorted(p.name for p in dataset_dir(run).rglob("*.parquet")) == files  # nothing measured again
    assert (run.path / "search" / "rounds.jsonl").read_bytes() == log
    assert json.loads((predictor_store.folder(run, run.hardware_id(SPEC)) / "predictor.json").read_text()) == (
        json.loads(meta)
    )
    assert sorted(p.name for p in (run.path / "search" / "tune").iterdir()) == ["round0-sweep", "sweep"]
