import pytest
import torch

from lanas.genotype import published
from lanas.measure import LatencyMeter, MeasureSettings, Timing, hardware_id
from lanas.network import MacroConfig
from lanas.space import SearchSpace


def test_interleaved_measurement_gives_consistent_statistics():
    s = MeasureSettings(warmup=1, repeats=5)
    meter = LatencyMeter(MacroConfig(layers=3, channels=8), s)
    t = meter.measure(SearchSpace().sample_unique(1, 0)[0])
    assert t.arch.repeats == t.reference.repeats == 5
    assert 0 < t.arch.p10_ms <= t.arch.median_ms <= t.arch.p90_ms
    assert t.ratio == pytest.approx(t.arch.median_ms / t.reference.median_ms)
    assert t.ratio_p10 <= t.ratio_p90 and t.timed_s > 0
    assert torch.get_num_threads() == 1  # restored


def test_reference_measured_against_itself_is_about_one():
    s = MeasureSettings(warmup=2, repeats=9)
    meter = LatencyMeter(MacroConfig(layers=3, channels=8), s)
    assert 0.5 < meter.measure(published("darts_v2")).ratio < 2.0


def test_hardware_id_and_settings_validation():
    assert hardware_id(MeasureSettings(threads=2)).startswith("cpu-") and hardware_id(MeasureSettings(threads=2)).endswith("-t2")
    with pytest.raises(ValueError, match="device must be"):
        MeasureSettings(device="tpu")
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        MeasureSettings(repeats=0)
    assert Timing.of([1.0, 2.0, 3.0]).median_ms == 2.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_timing_path():
    s = MeasureSettings(device="cuda", batch_size=8, warmup=2, repeats=5)
    assert hardware_id(s).startswith("cuda-")
    t = LatencyMeter(MacroConfig(layers=3, channels=8), s).measure(published("darts_v1"))
    assert t.arch.median_ms > 0
