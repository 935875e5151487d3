"""The Python API: its documented example runs as written (a real local Ray), and a
finished run loads as typed candidates."""

import doctest
import tempfile

import pytest
from conftest import copy_run

import lanas_pipeline.api
from lanas_pipeline.api import Candidate, load
from lanas_pipeline.errors import PipelineError


@pytest.mark.slow
def test_the_documented_example_runs(reproduced, monkeypatch, tmp_path):
    monkeypatch.chdir(lanas_pipeline.api.__file__.rsplit("/pipeline/", 1)[0])  # the example names configs/smoke.yaml
    # the example's fresh run directory holds the session's reproduced smoke run (the same profile, so
    # every stage is complete): the example goes through the API's reproduce, which skips what is done,
    # and reads the result; the stages themselves are tested on their own
    copy_run(reproduced, tmp_path / "run")
    monkeypatch.setattr(tempfile, "mkdtemp", lambda: str(tmp_path))
    result = doctest.testmod(lanas_pipeline.api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_a_run_without_a_report_is_refused(tmp_path):
    with pytest.raises(PipelineError, match="has no report yet"):
        load(tmp_path)


def test_candidates_read_from_the_report_csv():
    row = {"name": "lam0-seed0", "kind": "searched", "method": "ladnas", "target": "t", "searched_for": "",
           "lam": "0.0", "seed": "0", "test_acc": "0.9", "measured_latency_ms": "", "predicted_latency_ms": "1.5",
           "on_front": "True"}  # fmt: skip
    c = Candidate.from_csv(row, {"lam0-seed0": "{}"})
    assert (c.lam, c.seed, c.measured_latency_ms, c.searched_for, c.on_front, c.genotype) == (0.0, 0, None, None,
                                                                                              True, "{}")  # fmt: skip
