from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lanas.encoding import encode_genotype
from lanas.network import MacroSettings
from lanas.space import SearchSpace
from lanas.target import Target
from lanas_pipeline import dataset as ds
from lanas_pipeline.errors import PipelineError
from lanas_pipeline.records import Setting


def _rows(n, hw_seed=0):
    space = SearchSpace()
    setting = Setting(Target(), MacroSettings(3, 8), 8, space.ops)
    out = []
    for g in space.sample_unique(n, hw_seed):
        out.append(
            {
                "arch_id": g.arch_id,
                "genotype": g.to_json(),
                "encoding": encode_genotype(g, space).tolist(),
                "layout_version": 1,
                **setting.columns(),
                "device_name": "x",
                "runtime_version": "1",
                "export_s": 0.0,
                "compile_s": 0.0,
                "status": "ok",
                "error": None,
                "latency_ms": 1.5,
                "latency_p10_ms": 1.4,
                "latency_p90_ms": 1.6,
                "ref_latency_ms": 1.0,
                "latency_ratio": 1.5,
                "latency_ratio_p10": 1.4,
                "latency_ratio_p90": 1.6,
                "repeats": 5,
                "warmup": 1,
                "torch_version": "x",
                "measured_at": datetime.now(timezone.utc),
                "seed": 0,
                "node": "n",
            }
        )
    return out


def test_shards_round_trip_partitioned_by_hardware(tmp_path):
    root = tmp_path / "dataset"
    ds.write_shard(root, "cpu-a-t1", _rows(3), tmp_path / "tmp")
    ds.write_shard(root, "cuda-b", _rows(2, 1), tmp_path / "tmp")
    assert list((tmp_path / "tmp").iterdir()) == []  # temp files were renamed into place
    t = ds.read_table(root)
    assert t.num_rows == 5 and set(t.column("hardware").to_pylist()) == {"cpu-a-t1", "cuda-b"}
    assert ds.read_table(root, "cuda-b").num_rows == 2
    assert ds.hardware_partitions(root) == ["cpu-a-t1", "cuda-b"]
    assert len(ds.measured_keys(root)) == 5


def test_corrupt_and_foreign_files_are_named_and_left_alone(tmp_path):
    root = tmp_path / "dataset"
    ds.write_shard(root, "cpu-a-t1", _rows(2), tmp_path / "tmp")
    bad = root / "hardware=cpu-a-t1" / "part-zz.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(PipelineError, match="corrupt Parquet file in the latency dataset: .*part-zz.parquet"):
        ds.read_table(root)
    assert bad.read_bytes() == b"PAR1 not really"
    bad.unlink()
    pq.write_table(pa.table({"arch_id": ["x"], "latency": [1.0]}), root / "hardware=cpu-a-t1" / "other.parquet")
    with pytest.raises(PipelineError, match=r"foreign schema .*other.parquet \(missing columns"):
        ds.measured_keys(root)
    (root / "hardware=cpu-a-t1" / "other.parquet").unlink()
    (root / "notes.txt").write_text("hi")
    with pytest.raises(PipelineError, match="foreign file in the latency dataset: .*notes.txt"):
        ds.check_dataset(root)


def test_the_setting_is_the_one_definition_of_the_setting_columns():
    space = SearchSpace()
    a = Setting(Target(runtime="onnxruntime"), MacroSettings(3, 8), 8, space.ops)
    b = Setting(Target(runtime="torch"), MacroSettings(3, 8), 8, space.ops)
    assert tuple(a.columns()) == ds.SETTING_COLUMNS and a.key() != b.key()
    assert all(c in ds.FILE_SCHEMA.names for c in ds.SETTING_COLUMNS)
    row = {**a.columns(), "arch_id": "x"}
    assert ds.setting_of(row) == a.key()


def test_shards_from_before_the_sampler_column_are_read_as_uniform(tmp_path):
    """A dataset written by an earlier release (no sampler / round columns) stays usable:
    its rows read back with nulls, which count as uniform samples; new shards beside it
    keep their origin."""
    old = pa.Table.from_pylist(_rows(3), schema=ds.FILE_SCHEMA)
    old = old.drop_columns(list(ds.OPTIONAL_COLUMNS))
    part = tmp_path / "hardware=a"
    part.mkdir()
    pq.write_table(old, part / "part-old.parquet")
    new = [{**r, "sampler": "derived", "round": 1} for r in _rows(2, hw_seed=1)]
    ds.write_shard(tmp_path, "a", new, tmp_path.parent / "tmp")
    assert len(ds.check_dataset(tmp_path)) == 2
    rows = ds.read_table(tmp_path).to_pylist()
    assert sorted((ds.sampler_of(r), r["round"]) for r in rows) == [("derived", 1)] * 2 + [("uniform", None)] * 3
    # a shard lacking a required column is still foreign
    pq.write_table(old.drop_columns(["latency_ratio"]), part / "part-bad.parquet")
    with pytest.raises(PipelineError, match=r"foreign schema .*\(missing columns \['latency_ratio'\]"):
        ds.check_dataset(tmp_path)


def test_measured_row_type_has_the_dataset_columns():
    """The typed dataset row and the Parquet schema name the same columns (plus the partition)."""
    from lanas_pipeline import dataset
    from lanas_pipeline.records import MeasuredRow

    assert set(MeasuredRow.__annotations__) == {*dataset.FILE_SCHEMA.names, dataset.PARTITION}
