"""Stage 2 on a real local Ray: Ray Train fit, checkpoint, predict, quality gate, bad input."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import run_cli, smoke_config

from lanas.encoding import encode_alpha, encode_genotype
from lanas.genotype import published
from lanas_pipeline import dataset as ds
from lanas_pipeline import predictor_store
from lanas_pipeline.errors import PipelineError
from lanas_pipeline.fit.stage import run_fit
from lanas_pipeline.rows import dataset_dir
from lanas_pipeline.rundir import RunDir

SPEC = "cpu-t1-torch-b1"


def test_fit_exports_a_checked_predictor_with_baselines(fitted):
    run, summary = fitted
    hw = run.hardware_id(SPEC)
    folder = predictor_store.folder(run, hw)
    for name in ("predictor.pt", "predictor.json", "metrics.json", "metrics.md", "scatter.png"):
        assert (folder / name).is_file(), name
    assert (run.path / "fit" / "DONE.json").is_file() and (run.path / "fit" / "metrics.md").is_file()
    meta = json.loads((folder / "predictor.json").read_text())
    assert meta["hardware"] == summary["targets"][SPEC]["hardware"] == hw and meta["layout_version"] == 1
    assert meta["target"] == {"device": "cpu", "runtime": "torch", "dtype": "float32", "batch_size": 1, "threads": 1}
    assert set(meta["baselines"]) == {"lut", "lut_op", "trees", "flops"}
    for key in ("mape", "rmse_ms", "within_5pct", "within_10pct", "kendall_tau", "spearman_rho"):
        assert math.isfinite(meta["test"][key]), key
    v = meta["versus_best_baseline"]
    assert v["lo"] <= v["mean"] <= v["hi"] and v["n"] == meta["rows"]["test"]
    # 60 uniform samples split train / test, the 3 published genotypes held out
    assert meta["rows"]["train"] + meta["rows"]["test"] == 60 and meta["rows"]["published"] == 3
    assert meta["ood"]["published"]["predictor"]["n"] == 3 and meta["round"] == 0
    # model selection by cross-validation: the gate's figure is the chosen candidate's out-of-fold MAPE
    sel = meta["selection"]
    assert sel["chosen"] in ("additive", "mlp") and sel["folds"] == 3 and sel["rows"] == meta["rows"]["train"]
    assert meta["val"] == sel["cv"][sel["chosen"]] and sel["cv"]["mlp"]["n"] == meta["rows"]["train"]
    assert meta["hidden"] == ([] if sel["chosen"] == "additive" else list(run.config.fit.model.hidden))
    # data parallel: two Ray Train workers, each on its half of the training rows
    assert run.config.fit.num_workers == 2 and meta["train_metrics"]["world_size"] == 2
    assert meta["train_metrics"]["train_rows_per_worker"] == math.ceil(meta["rows"]["train"] / 2)
    md = (folder / "metrics.md").read_text()
    assert "lookup table" in md and "cross-validation" in md and "published genotypes (never trained on) | 3 |" in md
    side = (run.path / "fit" / "metrics.md").read_text()
    assert f"| {SPEC} | `{hw}` |" in side and "paired-bootstrap" in side
    # the recorded test and published MAPE are those of the saved predictor on its own rows,
    # recomputed here from the Parquet rows without Ray
    import pandas as pd

    from lanas_pipeline.fit.data import split_of

    df = pd.read_parquet(dataset_dir(run))
    df = df[(df["hardware"] == hw) & (df["status"] == "ok")]
    split = df["arch_id"].map(lambda a: split_of(a, run.config.fit.test_fraction))
    split[df["sampler"] == "published"] = "published"
    model = predictor_store.load(folder).model
    for name, recorded in (("test", meta["test"]), ("published", meta["ood"]["published"]["predictor"])):
        rows = df[split == name]
        assert len(rows) == meta["rows"][name]
        with torch.no_grad():
            pred = model(torch.tensor(np.stack(rows["encoding"].to_numpy()), dtype=torch.float32)).numpy()
        mape = float(abs(pred / rows["latency_ratio"].to_numpy() - 1).mean())
        assert mape == pytest.approx(recorded["mape"], rel=1e-4), name


def test_checkpoint_reload_gives_the_same_predictions(fitted):
    run, _ = fitted
    a = predictor_store.load_for(run, run.config.targets[0], gate=False)
    b = predictor_store.load(predictor_store.folder(run, a.meta.hardware), run.config, run.config.targets[0])
    x = torch.stack([encode_genotype(g, run.config.space) for g in run.config.space.sample_unique(5, 7)])
    assert torch.equal(a.predict_ratio(x), b.predict_ratio(x))
    alpha = torch.randn(2, 14, 8, requires_grad=True)
    a.model.latency_term(encode_alpha(alpha)).backward()
    assert torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0


def test_predict_cli_prints_one_json_line_per_genotype(fitted, tmp_path):
    run, _ = fitted
    f = tmp_path / "g.jsonl"
    f.write_text(published("darts_v1").to_json() + "\n" + published("darts_v2").to_json() + "\n")
    r = run_cli("predict", "--run-dir", str(run.path), "--genotypes", str(f))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["arch_id"] for x in lines] == [published("darts_v1").arch_id, published("darts_v2").arch_id]
    assert all(x["predicted_latency_ms"] > 0 and x["target"] == SPEC for x in lines)
    r = run_cli("predict", "--run-dir", str(run.path), "--genotypes", str(f), "--target", "cpu-t1-openvino-b1")
    assert r.returncode == 2 and r.stderr.strip() == (
        f"lanas: error: unknown target 'cpu-t1-openvino-b1'; this run's targets: {SPEC} ({run.hardware_id(SPEC)})"
    )


def test_a_predictor_fitted_with_fewer_sharing_features_loads_with_its_own(fitted, tmp_path):
    """Predictors fitted before the FactorizedReduce ("shift") feature, and before the
    repeat features, keep loading, with the features they were fitted on; sharing or
    repeat buffers of another encoding are refused."""
    from lanas.encoding import EDGE_GROUPS, sharing_features
    from lanas.predictor import LatencyPredictor

    run, _ = fitted
    where = predictor_store.folder(run, run.hardware_id(SPEC))
    state = torch.load(where / predictor_store.WEIGHTS, weights_only=True)
    groups, shared = 3 * len(run.config.space.ops), state["share_scatter"].shape[1]
    assert state["additive.weight"].shape[1] == groups + shared + len(EDGE_GROUPS)  # fitted with the repeats
    drop = groups + sharing_features(run.config.space).index((1, "shift"))
    keep = [i for i in range(groups + shared) if i != drop]  # and no repeat features: an older layout
    state["additive.weight"] = state["additive.weight"][:, keep]
    state["share_scatter"] = state["share_scatter"][:, [i - groups for i in keep[groups:]]]
    repeat_gather = state.pop("repeat_gather")
    state.pop("repeat_scatter")
    old = tmp_path / "old"
    shutil.copytree(where, old)
    torch.save(state, old / predictor_store.WEIGHTS)
    loaded = predictor_store.load(old, run.config, run.config.targets[0])
    x = torch.stack([encode_genotype(g, run.config.space) for g in run.config.space.sample_unique(5, 7)])
    expected = LatencyPredictor.from_state(state, loaded.meta.hidden)
    assert loaded.model.share_scatter.shape[1] == len(sharing_features(run.config.space)) - 1
    assert loaded.model.repeat_width == 0 and torch.equal(loaded.model(x), expected(x))
    bad = {**state, "repeat_gather": repeat_gather[:-1], "repeat_scatter": torch.eye(len(EDGE_GROUPS))}
    torch.save(bad, old / predictor_store.WEIGHTS)
    with pytest.raises(PipelineError, match="do not fit predictor.json: repeat features of"):
        predictor_store.load(old, run.config, run.config.targets[0])
    state["share_gather"] = state["share_gather"][:-1]
    torch.save(state, old / predictor_store.WEIGHTS)
    with pytest.raises(PipelineError, match="do not fit predictor.json: sharing features of"):
        predictor_store.load(old, run.config, run.config.targets[0])


def test_mismatched_predictor_and_quality_gate(fitted, tmp_path):
    from lanas.target import Target

    run, _ = fitted
    where = predictor_store.folder(run, run.hardware_id(SPEC))
    other = smoke_config(**{"space.ops": ["none", "skip_connect", "sep_conv_3x3"]})
    with pytest.raises(PipelineError, match="does not match the run: ops"):
        predictor_store.load(where, other)
    with pytest.raises(PipelineError, match="does not match the run: target is Target.*runtime='torch'"):
        predictor_store.load(where, run.config, Target(runtime="onnxruntime"))
    with pytest.raises(PipelineError, match="does not match the run: macro is .*in_channels=1"):
        predictor_store.load(where, smoke_config(**{"data.dataset": "cifar10", "data.root": "x"}))
    foreign = tmp_path / "foreign"
    shutil.copytree(where, foreign)
    (foreign / "predictor.json").write_text(json.dumps({"hardware": "x", "weights": "y"}))
    with pytest.raises(PipelineError, match="is not predictor metadata of this version: unknown config key weights"):
        predictor_store.load(foreign)
    stored = predictor_store.load_for(run, run.config.targets[0], gate=False)
    with pytest.raises(PipelineError, match="exceeds the quality gate"):
        predictor_store.check_quality(stored, max_mape=1e-6)
    predictor_store.check_quality(stored, max_mape=1e-6, force=True)
    assert stored.meta.val["mape"] > 0 and stored.meta.val["n"] == stored.meta.rows["train"]


def test_quality_gate_decides_on_validation_not_test(fitted):
    import dataclasses

    run, _ = fitted
    stored = predictor_store.load_for(run, run.config.targets[0], gate=False)

    def with_mapes(val, test):
        meta = dataclasses.replace(
            stored.meta, val={**stored.meta.val, "mape": val}, test={**stored.meta.test, "mape": test}
        )
        return predictor_store.StoredPredictor(stored.model, meta)

    predictor_store.check_quality(with_mapes(val=0.05, test=0.50), max_mape=0.10)  # test would refuse
    with pytest.raises(PipelineError, match="validation MAPE 50.0% exceeds"):
        predictor_store.check_quality(with_mapes(val=0.50, test=0.05), max_mape=0.10)  # test would accept


def _copy_run(run, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(run.path / "measure", dst / "measure", ignore=shutil.ignore_patterns("DONE.json"))
    shutil.copy(run.path / "config.yaml", dst / "config.yaml")
    shutil.copy(run.path / "manifest.json", dst / "manifest.json")
    return RunDir.existing(dst)


def test_bad_datasets(measured_run, ray_start, tmp_path):
    empty = RunDir.open(tmp_path / "empty", smoke_config())
    with pytest.raises(PipelineError, match="latency dataset .* is empty"):
        run_fit(empty)
    run = _copy_run(measured_run, tmp_path, "copy")
    with pytest.raises(PipelineError, match="unknown target 'cuda-none'"):
        run_fit(run, target="cuda-none")
    # NaN / negative / zero latencies are dropped (counted); too few rows remain to split
    hw = ds.hardware_partitions(dataset_dir(run))[0]
    rows = ds.read_table(dataset_dir(run), hw).to_pylist()
    for f in dataset_dir(run).rglob("*.parquet"):
        f.unlink()
    for i, r in enumerate(rows):
        r.pop("hardware")
        if i % 10:
            r["latency_ratio"] = [float("nan"), -1.0, 0.0][i % 3]
    ds.write_shard(dataset_dir(run), hw, rows, tmp_path / "tmp")
    with pytest.raises(PipelineError, match="too few rows to split: 7 usable rows"):
        run_fit(run)
    assert not (run.path / "fit" / hw / "predictor.pt").exists()


def test_fit_refuses_a_resource_the_cluster_lacks_before_training(measured_run, ray_start, tmp_path):
    run = _copy_run(measured_run, tmp_path, "resources")
    cfg = smoke_config(**{"fit.resources_per_worker.custom": {"latency_node": 1}})
    with pytest.raises(
        PipelineError,
        match=r"^fit \(each of 2 Ray Train workers\) needs latency_node=1 per task, "
        r"and the Ray cluster has 0 \(CPU=2",
    ):
        run_fit(RunDir(run.path, cfg))
    assert not (run.path / "fit" / "ray").exists() and not list((run.path / "fit").glob("*/predictor.pt"))


def test_search_refuses_a_gpu_the_cluster_lacks_before_any_trial(fitted):
    from lanas_pipeline.search.stage import run_search

    run, _ = fitted
    cfg = smoke_config(**{"search.resources.num_gpus": 1})
    with pytest.raises(
        PipelineError, match=r"^search \(each Tune trial\) needs GPU=1 per task, and the Ray cluster has 0"
    ):
        run_search(RunDir(run.path, cfg), progress=False)
    assert not (run.path / "search").exists()


def test_invalid_genotype_json_is_one_line_and_exit_2(fitted, tmp_path):
    run, _ = fitted
    f = tmp_path / "bad.jsonl"
    f.write_text(
        published("darts_v1").to_json()
        + "\n"
        + published("darts_v1").to_json().replace("sep_conv_3x3", "conv_7x7", 1)
        + "\n"
    )
    r = run_cli("predict", "--run-dir", str(run.path), "--genotypes", str(f))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"lanas: error: {f}:2: normal[0]: unknown op 'conv_7x7' (space ops: {', '.join(run.config.space.ops)})"
    ]
