"""Latency budgets through the pipeline on a real local Ray: `lanas search --budget-ms`
adds budget trials to a run, evaluate measures what they derived, the report's budget
table says met or missed; unreachable and malformed budgets are refused before anything
is written."""

import csv

import pandas as pd
import pytest
from conftest import copy_fitted, lanas, smoke_config

from lanas.budget import reachable
from lanas_pipeline import predictor_store
from lanas_pipeline.errors import PipelineError
from lanas_pipeline.evaluate import run_evaluate
from lanas_pipeline.report.stage import run_report
from lanas_pipeline.report.tables import BUDGET_FIELDS
from lanas_pipeline.rows import dataset_dir
from lanas_pipeline.rundir import RunDir
from lanas_pipeline.search.penalties import measured_ratios
from lanas_pipeline.search.stage import run_search

SPEC = "cpu-t1-torch-b1"


@pytest.fixture(scope="module")
def run_copy(fitted, tmp_path_factory):
    return copy_fitted(fitted[0], tmp_path_factory.mktemp("budget") / "run")


def test_budgets_are_met_and_reported(run_copy):
    run = run_copy
    df = pd.read_parquet(dataset_dir(run))
    ms = df[df["status"] == "ok"]["latency_ratio"] * predictor_store.load_for(run, run.config.targets[0]).reference_ms
    budgets = (round(float(ms.quantile(0.3)), 3), round(float(ms.quantile(0.7)), 3))  # inside the measured range
    cfg = run.config.with_budgets({SPEC: budgets})
    rows = run_search(RunDir(run.path, cfg), progress=False)
    mine = {r["budget_ms"]: r for r in rows if r["budget_ms"] is not None}
    assert sorted(mine) == sorted(budgets) and len(rows) == 4  # lambda 0 and 2, and the two budgets
    for t, r in mine.items():
        assert r["in_window"] and 0.87 * t <= r["predicted_latency_ms"] <= 0.95 * t, r
        assert r["lam_updates"] > 0 and r["epochs"] >= cfg.search.settings.epochs
    results_file = run.path / "search" / "results.jsonl"
    before = results_file.read_bytes()
    again = run_search(RunDir(run.path, cfg), progress=False)  # every trial is there: nothing runs, nothing doubles
    assert results_file.read_bytes() == before and len(again) == 4

    run_evaluate(RunDir(run.path, cfg), progress=False)
    run_report(RunDir(run.path, cfg))
    with open(run.path / "report" / "budgets.csv") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames[:6] == ["target", "budget_ms", "predicted_ms", "measured_ms", "test_acc", "met"]
        assert reader.fieldnames == BUDGET_FIELDS
        table = list(reader)
    assert sorted(float(r["budget_ms"]) for r in table) == sorted(budgets)
    tolerance = cfg.fit.max_val_mape  # the smoke predictor is only held to this error
    for r in table:
        measured, t = float(r["measured_ms"]), float(r["budget_ms"])
        assert r["met"] == str(measured <= t) and r["target"] == SPEC
        assert measured <= t * (1 + tolerance), r
    report = (run.path / "report" / "report.md").read_text()
    assert "## Latency budgets" in report and f"of {len(budgets)} budgets met" in report


def test_a_budget_no_architecture_meets_is_refused_before_searching(run_copy):
    run = run_copy
    stored = predictor_store.load_for(run, run.config.targets[0])
    measured = measured_ratios(run, run.config.targets[0], stored.meta.hardware)
    df = pd.read_parquet(dataset_dir(run))  # 60 random, 3 published, and what a search here derived
    assert len(measured) == (df["status"] == "ok").sum() >= 63
    fastest, slowest = (v * stored.reference_ms for v in reachable(stored.predict_ratio, run.config.space, measured))
    assert fastest > 0
    tune_dirs = (
        sorted(p.name for p in (run.path / "search" / "tune").glob("*")) if (run.path / "search").exists() else []
    )
    results = run.path / "search" / "results.jsonl"
    before = results.read_bytes() if results.exists() else None
    with pytest.raises(
        PipelineError,
        match=rf"^budget {fastest * 0.5:g} ms on {SPEC} is below what the search space "
        r"reaches there: its fastest known architecture takes",
    ):
        run_search(RunDir(run.path, run.config.with_budgets({SPEC: (fastest * 0.5,)})), progress=False)
    with pytest.raises(
        PipelineError, match=rf"^budget {slowest * 3:g} ms on {SPEC} is above the slowest known architecture"
    ):
        run_search(RunDir(run.path, run.config.with_budgets({SPEC: (slowest * 3,)})), progress=False)
    assert (results.read_bytes() if results.exists() else None) == before
    now = sorted(p.name for p in (run.path / "search" / "tune").glob("*")) if (run.path / "search").exists() else []
    assert now == tune_dirs


@pytest.mark.parametrize(
    "value, named",
    [
        ("cpu-t1-torch-b1", "'cpu-t1-torch-b1': expected TARGET=MS"),
        ("cpu-t1-torch-b1=fast", "'cpu-t1-torch-b1=fast': expected TARGET=MS"),
        ("cpu-t1-torch-b1=-2", "'cpu-t1-torch-b1=-2': expected TARGET=MS"),
        ("=3", "'=3': expected TARGET=MS"),
        ("gpu-x=3", "search.budgets_ms: 'gpu-x' is not a target of this config"),
    ],
)
def test_a_malformed_budget_flag_is_one_line_and_writes_nothing(tmp_path, value, named, capsys):
    r = lanas(
        capsys, "search", "--config", "configs/smoke.yaml", "--run-dir", str(tmp_path / "r"), "--budget-ms", value
    )
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("lanas: error: ") and named in line
    assert not (tmp_path / "r").exists()


def test_budget_config_is_checked():
    with pytest.raises(Exception, match=r"search\.budgets_ms: 'cpu-t9' is not a target"):
        smoke_config(**{"search.budgets_ms": {"cpu-t9": [3.0]}})
    with pytest.raises(Exception, match="budgets must be finite numbers of ms > 0"):
        smoke_config(**{"search.budgets_ms": {SPEC: [0]}})
    cfg = smoke_config(**{"search.lambdas": [], "search.budgets_ms": {SPEC: [3.0]}})  # budgets alone are a sweep
    assert cfg.search.budget_list() == [(SPEC, 3.0)]
    with_budgets = smoke_config(**{"search.budgets_ms": {SPEC: [3.0]}})
    assert with_budgets.identity() == smoke_config().identity()  # a run may gain budgets


def test_a_refused_budget_from_the_cli_leaves_the_run_as_it_was(fitted, tmp_path, capsys):
    """`lanas search --budget-ms` with a budget below the space's reach is refused in one
    line and writes nothing: the run's config.yaml does not keep the refused budget."""
    from lanas_pipeline.config import dump_config

    run = copy_fitted(fitted[0], tmp_path / "run")
    (tmp_path / "c.yaml").write_text(dump_config(run.config))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    r = lanas(capsys, "search", "--config", tmp_path / "c.yaml", "--run-dir", run.path, "--budget-ms", f"{SPEC}=0.0001")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "is below what the search space reaches there" in r.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
