"""Stage 1 on a real local Ray: the dataset, resume, interruption and bad input."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow.dataset as pads
import pytest
from conftest import ROOT, kill_worker_while, run_cli, smoke_config

from lanas.genotype import published
from lanas_pipeline import dataset as ds
from lanas_pipeline.errors import PipelineError
from lanas_pipeline.measure import published_probes, run_measure
from lanas_pipeline.rows import dataset_dir
from lanas_pipeline.rundir import RunDir

PROBES = len(published_probes(smoke_config()))  # the published genotypes stage 1 measures beside the random ones


def test_smoke_measurement_reads_back_everywhere(measured_run, ray_start):
    root = dataset_dir(measured_run)
    t = pads.dataset(str(root), format="parquet", partitioning="hive").to_table()
    assert t.num_rows == 60 + PROBES
    for col in (
        "arch_id",
        "genotype",
        "encoding",
        "hardware",
        "device",
        "runtime",
        "batch_size",
        "threads",
        "resolution",
        "channels",
        "layers",
        "dtype",
        "latency_ms",
        "latency_p10_ms",
        "latency_p90_ms",
        "ref_latency_ms",
        "latency_ratio",
        "repeats",
        "torch_version",
        "runtime_version",
        "export_s",
        "compile_s",
        "measured_at",
        "seed",
        "status",
    ):
        assert col in t.column_names, col
    df = pd.read_parquet(root)
    assert len(df) == 60 + PROBES and not df["arch_id"].duplicated().any()
    assert df["sampler"].value_counts().to_dict() == {"uniform": 60, "published": PROBES} and df["round"].isna().all()
    ok = df[df["status"] == "ok"]
    assert (ok["latency_ms"] > 0).all() and (ok["latency_p10_ms"] <= ok["latency_p90_ms"]).all()
    assert (ok["latency_ratio_p10"] <= ok["latency_ratio"]).all() and (
        ok["latency_ratio"] <= ok["latency_ratio_p90"]
    ).all()
    assert set(df["hardware"]) == {measured_run.hardware_id("cpu-t1-torch-b1")}
    assert len(set(len(e) for e in df["encoding"])) == 1
    rd = ray_start.data.read_parquet(str(root))
    assert rd.count() == 60 + PROBES and "hardware" in rd.schema().names
    assert (root.parent / f"latency_hist_{df['hardware'].iloc[0]}.png").is_file()


def test_rerun_skips_what_is_measured_and_genotypes_file_adds_exactly_those(measured_run, tmp_path):
    import shutil

    shutil.copytree(measured_run.path, tmp_path / "run")  # the shared fixture keeps its rows
    run = RunDir.existing(tmp_path / "run")
    again = run_measure(run, progress=False)
    n = 60 + PROBES
    assert again["new_rows"] == 0 and again["targets"]["cpu-t1-torch-b1"]["rows"] == n
    new = run.config.space.sample_unique(2, seed=99)
    f = tmp_path / "g.jsonl"
    f.write_text("".join(g.to_json() + "\n" for g in (*new, new[0], published("darts_v1"))))  # a repeat, a known one
    out = run_measure(run, genotypes_file=str(f), progress=False)
    assert out["new_rows"] == 2 and out["targets"]["cpu-t1-torch-b1"]["rows"] == n + 2
    assert run_measure(run, genotypes_file=str(f), progress=False)["new_rows"] == 0
    df = pd.read_parquet(dataset_dir(run))
    assert set(df.loc[df["sampler"] == "genotypes", "arch_id"]) == {g.arch_id for g in new}
    assert len(pd.read_parquet(dataset_dir(measured_run))) == n


def test_bad_inputs_fail_cleanly_and_write_nothing(measured_run, tmp_path):
    before = sorted(p.name for p in dataset_dir(measured_run).rglob("*.parquet"))
    f = tmp_path / "g.jsonl"
    f.write_text(published("darts_v1").to_json() + "\n" + '{"normal": []}\n')
    with pytest.raises(Exception, match=r"g.jsonl:2: genotype fields must be"):
        run_measure(measured_run, genotypes_file=str(f), progress=False)
    with pytest.raises(PipelineError, match="--num-archs must be > 0"):
        run_measure(measured_run, num_archs=0, progress=False)
    assert sorted(p.name for p in dataset_dir(measured_run).rglob("*.parquet")) == before


def test_run_dir_from_another_config_is_refused(measured_run):
    with pytest.raises(PipelineError, match="different config"):
        RunDir.open(measured_run.path, smoke_config(**{"network.channels": 16}))


@pytest.mark.slow
def test_interrupted_run_is_completed_by_a_rerun_without_duplicates(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        (ROOT / "configs" / "smoke.yaml")
        .read_text()
        .replace("chunk_size: 10", "chunk_size: 4")
        .replace("num_archs: 60", "num_archs: 40")
    )
    run = tmp_path / "run"
    args = [sys.executable, "-m", "lanas_pipeline", "measure", "--config", str(cfg), "--run-dir", str(run), "--quiet"]
    proc = subprocess.Popen(
        args, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    part = run / "measure" / "dataset"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(part.rglob("*.parquet"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    shards = len(list(part.rglob("*.parquet")))
    assert len(ds.check_dataset(part)) == shards  # every file in the dataset is a whole, readable shard
    rows = pd.read_parquet(part)
    assert 2 <= shards and len(rows) < 40 + PROBES, "the run should have been interrupted part-way"
    half = run / "measure" / "tmp" / "part-killed-mid-write.parquet"  # what a writer killed mid-shard leaves
    half.parent.mkdir(exist_ok=True)
    half.write_bytes(b"PAR1 half a shard")
    r = run_cli("measure", "--config", str(cfg), "--run-dir", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"{len(rows)} already measured" in r.stdout
    assert "[ray] started a local Ray; dashboard: http://127.0.0.1:" in r.stdout  # where to watch it
    assert f"partial shard(s) an interrupted run left in {half.parent}" in r.stdout and not half.exists()
    df = pd.read_parquet(part)
    assert len(df) == 40 + PROBES and df["arch_id"].is_unique
    assert not list((run / "measure" / "tmp").glob("*"))  # no temporary file left
    wanted = smoke_config().space.sample_unique(40, 0) + published_probes(smoke_config())
    assert set(df["arch_id"]) == {g.arch_id for g in wanted}


def test_a_measuring_worker_killed_mid_chunk_is_retried_and_every_row_lands_once(ray_start, tmp_path):
    """SIGKILL the Ray worker process while it runs a measuring task: Ray retries the
    task (``measure.max_retries``) and the dataset ends with every architecture once."""
    run = RunDir.open(tmp_path / "run", smoke_config(**{"measure.num_archs": 20}))
    # the measuring task's worker, not the hardware probe's
    killed, _ = kill_worker_while("ray::measure[cpu-t1-torch-b1]", lambda: run_measure(run, progress=False))
    assert killed is not None, "no measuring worker was caught running"
    df = pd.read_parquet(dataset_dir(run))
    assert len(df) == 20 + PROBES and df["arch_id"].is_unique
    wanted = run.config.space.sample_unique(20, run.config.seed) + published_probes(run.config)
    assert set(df["arch_id"]) == {g.arch_id for g in wanted}


def test_a_failed_measurement_is_a_row_with_its_error_never_a_number(tmp_path):
    from lanas.genotype import Genotype
    from lanas_pipeline.measure import measure_genotypes

    cfg = smoke_config()
    good = published("darts_v2")
    # built directly, bypassing validation: node 2 reads input 7, which does not exist
    broken = Genotype((("sep_conv_3x3", 7),) + good.normal[1:], good.normal_concat, good.reduce, good.reduce_concat)
    out = measure_genotypes([good, broken], cfg.setting(cfg.targets[0]), cfg.measure.protocol, 0)
    ok, failed = out["rows"]
    assert ok["status"] == "ok" and ok["latency_ms"] > 0
    assert failed["status"] == "failed" and "IndexError" in failed["error"]
    assert all(failed.get(k) is None for k in ("latency_ms", "latency_p10_ms", "latency_ratio", "ref_latency_ms"))
    ds.write_shard(tmp_path / "d", out["hardware"], out["rows"], tmp_path / "t")
    back = {r["arch_id"]: r for r in ds.read_table(tmp_path / "d").to_pylist()}
    assert back[broken.arch_id]["latency_ms"] is None and back[broken.arch_id]["status"] == "failed"


def test_several_targets_one_partition_each_and_target_selection(ray_start, tmp_path):
    from conftest import ROOT as root_dir

    from lanas_pipeline.config import load_config

    cfg = load_config(root_dir / "configs" / "targets-smoke.yaml", {"measure.chunk_size": 3})
    run = RunDir.open(tmp_path / "run", cfg)
    with pytest.raises(PipelineError, match=r"unknown target 'cpu-t9-torch-b1'; this run's targets: cpu-t1-torch-b1"):
        run_measure(run, num_archs=4, progress=False, target="cpu-t9-torch-b1")
    first = run_measure(run, num_archs=4, progress=False, target="cpu-t1-onnxruntime-b1")
    n = 4 + PROBES
    assert first["new_rows"] == n and list(first["targets"]) == ["cpu-t1-onnxruntime-b1"]
    assert not run.is_done("measure")  # one target alone does not complete the stage
    ids = run.hardware_ids()
    assert set(ids) == {"cpu-t1-onnxruntime-b1"} and ids["cpu-t1-onnxruntime-b1"].endswith("-t1-onnxruntime-b1")
    second = run_measure(run, num_archs=4, progress=False)  # the other two targets only
    assert second["new_rows"] == 2 * n and set(run.hardware_ids()) == {t.spec for t in cfg.targets}
    assert run.is_done("measure")
    df = pd.read_parquet(dataset_dir(run))
    assert df.groupby("hardware").size().to_dict() == {run.hardware_id(t.spec): n for t in cfg.targets}
    assert set(df["runtime"]) == {"torch", "onnxruntime", "openvino"} and (df["status"] == "ok").all()
    onnx = df[df["runtime"] != "torch"]
    assert (onnx["export_s"] > 0).all() and (df[df["runtime"] == "torch"]["export_s"] == 0).all()
    # the same architecture by its hardware id, too
    again = run_measure(run, num_archs=4, progress=False, target=ids["cpu-t1-onnxruntime-b1"])
    assert again["new_rows"] == 0
