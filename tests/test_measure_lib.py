import gc

import numpy as np
import pytest
import torch

from lanas.genotype import published
from lanas.measure import LatencyMeter, MeasureSettings, Timing, hardware_id, paired_timing
from lanas.network import MacroSettings, Network
from lanas.runtimes import compile_builds, example_input
from lanas.space import SearchSpace
from lanas.target import Target

MACRO = MacroSettings(layers=3, channels=8)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino"])
def test_interleaved_measurement_gives_consistent_statistics(runtime):
    meter = LatencyMeter(MACRO, Target(runtime=runtime), MeasureSettings(warmup=1, repeats=6), resolution=8)
    m = meter.measure(SearchSpace().sample_unique(1, 0)[0])
    t = m.timing
    assert t.arch.repeats == t.reference.repeats == 6
    assert 0 < t.arch.p10_ms <= t.arch.median_ms <= t.arch.p90_ms
    assert t.ratio_p10 <= t.ratio <= t.ratio_p90 and t.timed_s > 0
    assert torch.get_num_threads() == 1 and gc.isenabled()  # restored after timing
    if runtime == "torch":
        assert m.export_s == 0.0
    else:
        assert m.export_s > 0 and m.compile_s > 0


def test_reference_measured_against_itself_is_about_one():
    meter = LatencyMeter(MACRO, Target(), MeasureSettings(warmup=2, repeats=9), resolution=8)
    assert 0.5 < meter.measure(published("darts_v2")).timing.ratio < 2.0


def test_hardware_id_and_settings_validation():
    hw = hardware_id(Target(threads=2, runtime="onnxruntime"))
    assert hw.startswith("cpu-") and hw.endswith("-t2-onnxruntime-b1")
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        MeasureSettings(repeats=0)
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        MeasureSettings(warmup=-1)
    with pytest.raises(ValueError, match="builds must be >= 1"):
        MeasureSettings(builds=0)
    assert Timing.of([1.0, 2.0, 3.0]).median_ms == 2.0


def test_the_p10s_statistic_keeps_the_fast_mode_of_calls_now_and_then_slowed():
    # 20 pairs; the architecture takes 2 ms and the reference 1 ms, but every third call of
    # each is slowed by half a millisecond, not on the same pairs
    arch = [2.5 if i % 3 == 0 else 2.0 for i in range(20)]
    ref = [1.5 if i % 3 == 1 else 1.0 for i in range(20)]
    fast = paired_timing(arch, ref, "p10s")
    assert fast.ratio == pytest.approx(2.0) and fast.arch.repeats == 20
    paired = paired_timing(arch, ref)  # the default: median of the per-pair ratios
    assert paired.ratio == pytest.approx(2.0) and paired.ratio_p10 < 2.0 < paired.ratio_p90
    slowed, steady = [2.5 if i % 5 < 3 else 2.0 for i in range(20)], [1.0] * 20  # most calls slowed
    assert paired_timing(slowed, steady).ratio == pytest.approx(2.5)  # the pair median follows the slow mode
    assert paired_timing(slowed, steady, "p10s").ratio == pytest.approx(2.0)  # p10s keeps the fast one
    with pytest.raises(ValueError, match="statistic must be one of pair_median, p10s"):
        MeasureSettings(statistic="mean")
    m = LatencyMeter(MACRO, Target(runtime="openvino"), MeasureSettings(1, 6, statistic="p10s"), resolution=8)
    t = m.measure(published("darts_v1")).timing
    assert t.ratio == pytest.approx(t.arch.p10_ms / t.reference.p10_ms)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino"])
def test_builds_share_the_pairs_over_separate_builds_of_both_networks(runtime):
    net = Network(published("darts_v1"), MACRO)
    x = example_input(MACRO.in_channels, 8, Target(runtime=runtime))
    one, *more = compile_builds(net, x, Target(runtime=runtime), 3)
    assert len(more) == 2 and all(b.export_s == 0.0 for b in more)  # one export serves every build
    with torch.no_grad():
        out = [torch.as_tensor(np.asarray(b.run() if runtime == "torch" else b.run()[0])) for b in (one, *more)]
    assert all(torch.allclose(o.reshape(out[0].shape), out[0], atol=1e-5) for o in out)  # the same network
    meter = LatencyMeter(MACRO, Target(runtime=runtime), MeasureSettings(warmup=1, repeats=7, builds=3), resolution=8)
    assert len({id(r.run) for r in meter.references}) == 3
    t = meter.measure(published("darts_v1")).timing
    assert t.arch.repeats == t.reference.repeats == 9  # 3 pairs per build, 3 builds
    assert t.ratio_p10 <= t.ratio <= t.ratio_p90


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cuda_timing_path(dtype):
    target = Target(device="cuda", dtype=dtype, batch_size=8)
    assert hardware_id(target).startswith("cuda-")
    m = LatencyMeter(MACRO, target, MeasureSettings(warmup=2, repeats=5), resolution=8).measure(published("darts_v1"))
    assert m.timing.arch.median_ms > 0
