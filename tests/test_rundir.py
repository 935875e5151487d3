import pytest
from conftest import smoke_config

from lanas_pipeline.errors import PipelineError
from lanas_pipeline.rundir import RunDir
from lanas_pipeline.staleness import mark_done


def test_same_config_reopens_and_other_config_is_refused(tmp_path):
    run = RunDir.open(tmp_path / "r", smoke_config())
    manifest = (tmp_path / "r" / "manifest.json").read_text()
    assert '"git_sha"' in manifest and '"torch"' in manifest
    RunDir.open(tmp_path / "r", smoke_config(**{"measure.num_archs": 500}))  # more archs: same run
    with pytest.raises(PipelineError, match=r"different config \(search.settings.epochs: 2 there, 5 now\)"):
        RunDir.open(tmp_path / "r", smoke_config(**{"search.settings.epochs": 5}))
    assert "epochs: 2" in (tmp_path / "r" / "config.yaml").read_text()  # not overwritten
    RunDir.open(tmp_path / "r", smoke_config(**{"search.settings.epochs": 5}), overwrite=True)
    assert run.stage("fit").is_dir()


def test_a_foreign_folder_is_not_taken_over(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(PipelineError, match="not a run directory"):
        RunDir.open(tmp_path / "mine", smoke_config())


def test_reopening_keeps_the_manifest_of_the_code_that_ran_and_a_finished_stage_updates_it(tmp_path, monkeypatch):
    """A command that only reopens the run (and may then be refused) leaves manifest.json
    as the stages wrote it, even when the code has moved on; a stage that finishes
    records the code that ran it."""
    import json

    import lanas_pipeline.rundir as rundir

    RunDir.open(tmp_path / "r", smoke_config())
    before = (tmp_path / "r" / "manifest.json").read_bytes()
    monkeypatch.setattr(rundir, "git_sha", lambda: "f" * 40)
    run = RunDir.open(tmp_path / "r", smoke_config())
    assert (tmp_path / "r" / "manifest.json").read_bytes() == before
    mark_done(run, "measure", {})
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["git_sha"] == "f" * 40
