"""Deployment runtimes: the ONNX export runs every op of the space with the torch
output; an op a runtime cannot export is a failed row; a missing runtime is one line."""

import os
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, smoke_config
from torch import nn

from lanas.genotype import Genotype
from lanas.network import MacroSettings, Network
from lanas.ops import register
from lanas.runtimes import compile_for, export_onnx
from lanas.space import SearchSpace
from lanas.target import Target
from lanas_pipeline import dataset as ds
from lanas_pipeline.records import Setting

EVERY_OP = list(SearchSpace().choosable_ops)  # the 7 DARTS ops a genotype can choose


def every_op_genotype() -> Genotype:
    """All seven choosable ops in both cells (stride 1 and stride 2 variants)."""
    pairs = [(EVERY_OP[i % 7], inp) for i, inp in enumerate([0, 1, 0, 2, 1, 3, 2, 4])]
    return Genotype.from_dict(
        {
            "normal": [list(p) for p in pairs],
            "normal_concat": [2, 3, 4, 5],
            "reduce": [list(p) for p in reversed(pairs[:2])] + [list(p) for p in pairs[2:]],
            "reduce_concat": [2, 3, 4, 5],
        }
    )


def test_every_op_is_in_the_network_under_test():
    g = every_op_genotype()
    assert {op for op, _ in g.normal} == set(EVERY_OP) and {op for op, _ in g.reduce} == set(EVERY_OP)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_onnx_runtimes_give_the_torch_output(runtime):
    torch.manual_seed(0)
    net = Network(every_op_genotype(), MacroSettings(layers=5, channels=8)).eval()
    for m in net.modules():  # non-trivial batch-norm statistics, so folding them is exercised
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        want = net(x).numpy()
    out = compile_for(net, x, Target(runtime=runtime, batch_size=2)).run()
    got = out[0] if runtime == "onnxruntime" else next(iter(out.values()))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-3, atol=1e-4)


def test_export_has_a_dynamic_batch():
    import onnxruntime as ort

    net = Network(every_op_genotype(), MacroSettings(layers=3, channels=8)).eval()
    session = ort.InferenceSession(export_onnx(net, torch.zeros(1, 1, 8, 8), dynamic_batch=True))
    assert session.run(None, {"x": np.zeros((5, 1, 8, 8), np.float32)})[0].shape == (5, 10)


class _FFT(nn.Module):
    def forward(self, x):
        return torch.fft.fft2(x).real


def test_an_op_a_runtime_cannot_export_is_a_failed_row_nothing_lost(tmp_path, monkeypatch):
    from lanas import ops
    from lanas_pipeline.measure import measure_genotypes

    # registered for this test only: the registry is global, and other tests list its ops
    monkeypatch.setattr(ops, "_REGISTRY", dict(ops._REGISTRY))
    register("fft_test")(lambda c, stride, affine: _FFT() if stride == 1 else nn.AvgPool2d(1, stride))
    space = SearchSpace(("none", "sep_conv_3x3", "fft_test"))
    shape = every_op_genotype().to_dict()
    good = Genotype.from_dict(
        {**shape, **{c: [["sep_conv_3x3", p[1]] for p in shape[c]] for c in ("normal", "reduce")}}, space.ops
    )
    bad = Genotype.from_dict({**good.to_dict(), "normal": [["fft_test", p[1]] for p in good.normal]}, space.ops)
    cfg = smoke_config()
    for runtime, bad_status in (("torch", "ok"), ("onnxruntime", "failed")):
        setting = Setting(Target(runtime=runtime), cfg.macro(), 8, space.ops)
        out = measure_genotypes([good, bad], setting, cfg.measure.protocol, 0)
        rows = {r["arch_id"]: r for r in out["rows"]}
        assert rows[good.arch_id]["status"] == "ok" and rows[good.arch_id]["latency_ms"] > 0
        assert rows[bad.arch_id]["status"] == bad_status
        if bad_status == "failed":
            r = rows[bad.arch_id]
            assert "fft" in r["error"] and r.get("latency_ms") is None and r.get("latency_ratio") is None
            assert r["encoding"] is not None and r["runtime"] == "onnxruntime"
            ds.write_shard(tmp_path / "d", out["hardware"], out["rows"], tmp_path / "t")
            back = ds.read_table(tmp_path / "d").to_pylist()
            assert {b["arch_id"]: b["status"] for b in back} == {good.arch_id: "ok", bad.arch_id: "failed"}


def test_a_missing_runtime_is_one_line_before_anything_runs(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "openvino.py").write_text("raise ImportError(\"No module named 'openvino'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)])}
    run = tmp_path / "run"
    import subprocess

    for cmd in ("measure", "reproduce"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "lanas_pipeline",
                cmd,
                "--config",
                "configs/targets-smoke.yaml",
                "--run-dir",
                str(run),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [
            "lanas: error: target cpu-t1-openvino-b1: runtime 'openvino' is not installed (No module named "
            "'openvino'); pip install openvino, or pip install 'lanas[openvino]'"
        ]
        assert not run.exists()
