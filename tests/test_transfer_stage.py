"""`lanas fit --transfer-from` on the fitted smoke run: refusals before anything is written."""

import json
import shutil

import pytest
from conftest import run_cli

from lanas_pipeline import predictor_store
from lanas_pipeline.errors import PipelineError
from lanas_pipeline.predictor_store import stored_metas
from lanas_pipeline.rundir import RunDir
from lanas_pipeline.transfer import run_transfer

SPEC = "cpu-t1-torch-b1"


def _foreign(run, tmp_path, **changes):
    """A copy of the run's predictor folder as if it came from another run (other hardware), with ``changes``."""
    src = predictor_store.folder(run, run.hardware_id(SPEC))
    dst = tmp_path / "other"
    shutil.copytree(src, dst)
    meta = json.loads((dst / "predictor.json").read_text())
    meta.update(hardware="cpu-Other-t1-torch-b1", **changes)
    (dst / "predictor.json").write_text(json.dumps(meta))
    return dst


@pytest.fixture()
def run_copy(fitted, tmp_path):
    run, _ = fitted
    shutil.copytree(run.path, tmp_path / "run", ignore=shutil.ignore_patterns("search", "evaluate", "report", "ray"))
    return RunDir.existing(tmp_path / "run")


def test_transfer_from_another_space_or_layout_is_refused(run_copy, tmp_path):
    run = run_copy
    before = (predictor_store.folder(run, run.hardware_id(SPEC)) / "predictor.pt").read_bytes()
    other_ops = _foreign(run, tmp_path / "a", ops=["none", "skip_connect", "sep_conv_3x3"])
    with pytest.raises(PipelineError, match="does not match the run: ops"):
        run_transfer(run, SPEC, str(other_ops), 20)
    other_layout = _foreign(run, tmp_path / "b", layout_version=99)
    with pytest.raises(PipelineError, match="does not match the run: layout_version is 99"):
        run_transfer(run, SPEC, str(other_layout), 20)
    with pytest.raises(PipelineError, match="that is cpu-t1-torch-b1's own predictor"):
        run_transfer(run, SPEC, SPEC, 20)
    assert (predictor_store.folder(run, run.hardware_id(SPEC)) / "predictor.pt").read_bytes() == before


def test_more_samples_than_measured_says_so_and_a_transfer_is_recorded(run_copy, tmp_path):
    run = run_copy
    source = _foreign(run, tmp_path)
    r = run_cli(
        "fit",
        "--config",
        str(run.path / "config.yaml"),
        "--run-dir",
        str(run.path),
        "--target",
        SPEC,
        "--transfer-from",
        str(source),
        "--samples",
        "1000",
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"lanas: error: --samples 1000: 63 architectures are measured on {SPEC} and a transfer needs 3 to 63; measure "
        f"more with `lanas measure --target {SPEC} --num-archs N --select diverse`"
    ]
    meta = run_transfer(run, SPEC, str(source), 20)  # the run's own rows, through a predictor from "elsewhere"
    assert meta.transferred_from["samples"] == 20 and meta.rows == {
        "train": 20,
        "val": 0,
        "test": 43,
    }  # 60 random + 3 published measured
    assert meta.val["mape"] == meta.transferred_from["loo_mape"][meta.transferred_from["model"]]
    # eager: no compiled graph to count; the repeated ops per edge group, summed
    assert meta.transferred_from["costs"] == ["mflops", "aten_ops", "modules", "op_repeats"]
    assert stored_metas(run)[SPEC].transferred_from["source"] == str(source)
    stored = predictor_store.load_for(run, run.config.targets[0], gate=False)  # loads as an ordinary predictor
    assert float(stored.model.typical) > 0


def test_diverse_picks_for_a_new_target_are_valid_distinct_and_repeatable(run_copy, tmp_path):
    from lanas_pipeline.transfer import diverse_genotypes

    source = str(_foreign(run_copy, tmp_path))
    picked = diverse_genotypes(run_copy, source, SPEC, 6)
    assert len({g.arch_id for g in picked}) == 6 and all(run_copy.config.space.expresses(g) for g in picked)
    assert [g.arch_id for g in picked] == [g.arch_id for g in diverse_genotypes(run_copy, source, SPEC, 6)]
