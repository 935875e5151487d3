"""search.loggers: which of Tune's experiment loggers a sweep gets."""

import importlib.util

import pytest
from conftest import smoke_config
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

from lanas_pipeline.config import ConfigError
from lanas_pipeline.errors import PipelineError
from lanas_pipeline.search.stage import loggers


def test_the_default_loggers_are_tunes_own_and_each_can_be_left_out(tmp_path):
    kinds = lambda names: {type(c) for c in loggers(names, tmp_path / "mlruns", "x")}  # noqa: E731
    assert smoke_config().search.loggers == ("tensorboard", "csv")
    assert kinds(("tensorboard", "csv")) == {JsonLoggerCallback, CSVLoggerCallback, TBXLoggerCallback}
    assert kinds(()) == {JsonLoggerCallback}  # result.json: what Tune itself reads back
    with pytest.raises(ConfigError, match="loggers must be distinct names out of"):
        smoke_config(**{"search.loggers": ["wandb"]})


def test_loggers_do_not_change_what_a_run_is():
    assert smoke_config(**{"search.loggers": []}).identity() == smoke_config().identity()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="MLflow is installed here")
def test_mlflow_without_mlflow_installed_is_one_line(tmp_path):
    with pytest.raises(PipelineError, match=r"MLflow is not installed: pip install 'lanas\[mlflow\]'"):
        loggers(("mlflow",), tmp_path / "mlruns", "x")
