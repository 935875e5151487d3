"""A runtime added through the registry (docs/runtimes.md): the TorchScript example,
installed as a plugin through a real entry point, is named by a target, refused when
misnamed, and measures a DARTS network with the interleaved protocol."""

import shutil
import sys

import pytest
from conftest import ROOT

import lanas.runtimes
import lanas.target
from lanas.genotype import published
from lanas.measure import LatencyMeter, MeasureSettings
from lanas.network import MacroSettings
from lanas.target import Target


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The example runtime as an installed package would be: its module and a dist-info
    with an entry point in the lanas.runtimes group, on sys.path."""
    shutil.copy(ROOT / "docs" / "examples" / "torchscript_runtime.py", tmp_path / "lanas_example_torchscript.py")
    info = tmp_path / "lanas_example_torchscript-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lanas-example-torchscript\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lanas.runtimes]\ntorchscript = lanas_example_torchscript\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lanas_example_torchscript", raising=False)  # imported (and registered) anew
    monkeypatch.setattr(lanas.target, "_ADDED", {})  # this test's registrations go with it
    monkeypatch.setattr(lanas.runtimes, "_REGISTERED", {})
    lanas.target._load_plugins.cache_clear()
    yield
    lanas.target._load_plugins.cache_clear()


def test_a_plugin_runtime_is_named_by_targets_and_measures_a_network(plugin):
    target = Target(runtime="torchscript", threads=1)  # the entry point is loaded on first look-up
    assert target.spec == "cpu-t1-torchscript-b1"
    assert lanas.runtimes.runtime_version("torchscript")  # the module it needs (torch) is recorded
    with pytest.raises(ValueError, match="runtime torchscript runs on device cpu only"):
        Target(device="cuda", runtime="torchscript")
    macro = MacroSettings(layers=3, channels=8, in_channels=1)
    meter = LatencyMeter(macro, target, MeasureSettings(warmup=2, repeats=5), resolution=8)
    m = meter.measure(published("darts_v2"))
    assert m.timing.ratio > 0 and m.timing.arch.median_ms > 0 and m.build_path == "traced"


def test_an_unknown_runtime_lists_the_registered_ones(plugin):
    with pytest.raises(
        ValueError, match=r"runtime must be one of \('torch', 'onnxruntime', 'openvino', 'torchscript'\)"
    ):
        Target(runtime="tensorrt")
    with pytest.raises(ValueError, match="a new runtime needs a new lower-case name"):
        lanas.runtimes.register(lanas.runtimes.Runtime("onnxruntime", "x", None, None))
