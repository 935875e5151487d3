"""Devices outside the cluster, from the command line: select -> time -> import -> fit ->
predict on a NAS-Bench-201 run whose sources are published tables, a device that is not
in the run timed from a CSV (its published latencies stand in for the owner's timings).
No Ray: these commands start none."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pyarrow.dataset as pads
import pytest
import yaml
from conftest import NB201_SOURCES, lanas, nb201_config_text
from scipy.stats import spearmanr

from lanas import nb201_tables

NEW = "2080ti_1"  # not in the run; not a held-out device of benchmarks/nb201_devices.py
K = 10


@pytest.fixture(scope="module")
def tables():
    return nb201_tables.load()


@pytest.fixture
def run(nb201_run, tmp_path):
    shutil.copytree(nb201_run, tmp_path / "run")
    return tmp_path / "run"


def _timed_csv(path, archs, tables, device=NEW):
    index = {s: i for i, s in enumerate(tables.arch_strs)}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "latency_ms"])
        for a in archs:
            w.writerow([a, tables.latency_ms[device][index[a]]])
    return path


def _rows(run, device):
    part = run / "measure" / "dataset" / f"hardware={device}"
    return pads.dataset(str(part), format="parquet").to_table().to_pylist() if part.is_dir() else []


def test_a_new_device_from_a_csv_select_import_fit_predict(run, tmp_path, capsys, tables):
    sources = ",".join(NB201_SOURCES)
    r = lanas(capsys, "select", "--run-dir", run, "--target", NEW, "--num-archs", K, "--transfer-from", sources,
              "--out", tmp_path / "to_measure.jsonl")  # fmt: skip
    assert r.returncode == 0, r.stderr
    picked = [json.loads(x)["arch"] for x in (tmp_path / "to_measure.jsonl").read_text().splitlines()]
    assert len(set(picked)) == K
    # the owner times them; the CSV holds the published figures of a device the run never saw
    _timed_csv(tmp_path / "timed.csv", picked, tables)
    r = lanas(capsys, "import", "--run-dir", run, "--target", NEW, "--table", tmp_path / "timed.csv",
              "--source", "TensorRT on the desk")  # fmt: skip
    assert r.returncode == 0 and f"{K} rows added" in r.stdout, r.stderr
    rows = _rows(run, NEW)
    assert len(rows) == K and {x["runtime"] for x in rows} == {"imported"}
    assert {x["source"] for x in rows} == {"TensorRT on the desk"} and {x["genotype"] for x in rows} == set(picked)
    listed = yaml.safe_load((run / "config.yaml").read_text())["imported"]
    assert listed[-1] == {"name": NEW, "table": str(tmp_path / "timed.csv"), "source": "TensorRT on the desk"}
    r = lanas(capsys, "fit", "--run-dir", run, "--target", NEW, "--transfer-from", sources)
    assert r.returncode == 0 and "leave-one-out MAPE" in r.stdout, r.stderr
    model = json.loads((run / "fit" / NEW / "crossdevice.json").read_text())
    assert model["timed"] == K and model["candidates"] == 15625 and model["sources"] == list(NB201_SOURCES)
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(s) + "\n" for s in tables.arch_strs))
    r = lanas(capsys, "predict", "--run-dir", run, "--target", NEW, "--genotypes", tmp_path / "all.jsonl")
    assert r.returncode == 0, r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["arch"] for x in out] == list(tables.arch_strs)
    predicted = np.array([x["predicted_latency_ms"] for x in out])
    upper = np.array([x["upper_latency_ms"] for x in out])
    true = tables.latency_ms[NEW]
    # ten timings and four other devices rank the 15,625 architectures of a device never seen
    assert spearmanr(predicted, true).statistic > 0.9
    assert np.all(upper >= predicted) and np.mean(true <= upper) > 0.8
    assert sum("timed_latency_ms" in x for x in out) == K


def test_importing_a_table_again_adds_nothing_and_a_config_reopens_the_run(run, tmp_path, capsys, tables):
    _timed_csv(tmp_path / "t.csv", tables.arch_strs[:5], tables)
    for added in (5, 0):
        r = lanas(capsys, "import", "--run-dir", run, "--target", NEW, "--table", tmp_path / "t.csv")
        assert r.returncode == 0 and f"{added} rows added" in r.stdout, r.stderr
    assert len(_rows(run, NEW)) == 5
    # the profile the run was made with still opens it; the device the import added stays listed
    cfg = tmp_path / "profile.yaml"
    cfg.write_text(nb201_config_text())
    r = lanas(capsys, "import", "--config", cfg, "--run-dir", run)
    assert r.returncode == 0 and r.stdout.count(": 0 rows added") == len(NB201_SOURCES) + 1, r.stdout + r.stderr
    assert NEW in [d["name"] for d in yaml.safe_load((run / "config.yaml").read_text())["imported"]]


def test_a_transfer_needs_three_timings(run, tmp_path, capsys, tables):
    _timed_csv(tmp_path / "t.csv", tables.arch_strs[:2], tables)
    assert lanas(capsys, "import", "--run-dir", run, "--target", NEW, "--table", tmp_path / "t.csv").returncode == 0
    r = lanas(capsys, "fit", "--run-dir", run, "--target", NEW, "--transfer-from", "titanx_1,gold_6240")
    assert r.returncode == 2 and "a transfer needs 3 or more" in r.stderr
    assert not (run / "fit" / NEW).exists()


def test_a_darts_run_takes_imported_genotype_tables_too(tmp_path, capsys):
    from lanas.space import SearchSpace

    genotypes = SearchSpace().sample_unique(12, seed=3)
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 5, len(genotypes))
    for name, scale, rows in (("board-a", 1.0, genotypes), ("board-b", 2.5, genotypes[:4])):
        with open(tmp_path / f"{name}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["genotype", "latency_ms"])
            w.writerows([g.to_json(), scale * b] for g, b in zip(rows, base))
    argv = ("import", "--config", "configs/smoke.yaml", "--run-dir", tmp_path / "run")
    for name in ("board-a", "board-b"):
        r = lanas(capsys, *argv, "--target", name, "--table", tmp_path / f"{name}.csv")
        assert r.returncode == 0, r.stderr
    r = lanas(capsys, "select", "--run-dir", tmp_path / "run", "--target", "board-b", "--num-archs", 3,
              "--transfer-from", "board-a", "--out", tmp_path / "pick.jsonl")  # fmt: skip
    assert r.returncode == 0, r.stderr
    picked = [json.loads(x)["arch_id"] for x in (tmp_path / "pick.jsonl").read_text().splitlines()]
    assert len(picked) == 3 and not set(picked) & {g.arch_id for g in genotypes[:4]}  # none timed already
    assert lanas(capsys, "fit", "--run-dir", tmp_path / "run", "--target", "board-b", "--transfer-from",
                 "board-a").returncode == 0  # fmt: skip
    (tmp_path / "g.jsonl").write_text("".join(g.to_json() + "\n" for g in genotypes))
    r = lanas(capsys, "predict", "--run-dir", tmp_path / "run", "--target", "board-b", "--genotypes",
              tmp_path / "g.jsonl")  # fmt: skip
    out = [json.loads(x)["predicted_latency_ms"] for x in r.stdout.splitlines()]
    assert r.returncode == 0 and np.allclose(out, 2.5 * base, rtol=1e-3)  # an exact multiple is learnt exactly


def test_a_device_with_a_few_hundred_timings_gets_the_whole_space_from_its_own_predictor(run, tmp_path, capsys, tables):
    import dataclasses

    from lanas_pipeline.nb201_stages import load_space_latency, run_space_latency
    from lanas_pipeline.rundir import RunDir

    rng = np.random.default_rng(1)
    picked = [tables.arch_strs[i] for i in rng.choice(len(tables.arch_strs), 300, replace=False)]
    _timed_csv(tmp_path / "t.csv", picked, tables)
    assert lanas(capsys, "import", "--run-dir", run, "--target", NEW, "--table", tmp_path / "t.csv").returncode == 0
    stored = RunDir.existing(run)
    search = dataclasses.replace(stored.config.search, devices=(NEW, "titanx_1"))
    sources = run_space_latency(RunDir(run, dataclasses.replace(stored.config, search=search)))
    assert sources == {NEW: "predicted", "titanx_1": "table"}
    arch, ms, source = load_space_latency(stored, NEW)
    assert arch == list(tables.arch_strs) and source == "predicted"
    assert spearmanr(ms, tables.latency_ms[NEW]).statistic > 0.95  # 300 timings of its own
    assert np.allclose(load_space_latency(stored, "titanx_1")[1], tables.latency_ms["titanx_1"])
