import pytest

from lanas.target import Target, pick


def test_spec_and_hardware_id_name_every_field_that_matters():
    t = Target(runtime="onnxruntime")
    assert t.spec == "cpu-t1-onnxruntime-b1"
    assert t.hardware_id("AMD EPYC 7B13 (64) @ 2.4GHz") == "cpu-AMD-EPYC-7B13-64-2-4GHz-t1-onnxruntime-b1"
    half = Target(device="cuda", dtype="float16", batch_size=32)
    assert half.spec == "cuda-torch-float16-b32"
    assert half.hardware_id("NVIDIA H100 80GB HBM3") == "cuda-NVIDIA-H100-80GB-HBM3-torch-float16-b32"
    specs = {Target(threads=2).spec, Target().spec, Target(batch_size=8).spec, Target(runtime="openvino").spec}
    assert len(specs) == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"device": "tpu"}, "device must be one of"),
        ({"runtime": "tvm"}, "runtime must be one of"),
        ({"dtype": "int8"}, "dtype must be one of"),
        ({"dtype": "float16"}, "dtype float16 is supported with runtime torch on cuda only"),
        ({"device": "cuda", "runtime": "onnxruntime", "dtype": "bfloat16"}, "with runtime torch on cuda only"),
        ({"device": "cuda", "runtime": "openvino"}, "openvino runs on device cpu only"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"threads": 0}, "threads must be >= 1"),
    ],
)
def test_invalid_targets_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Target(**kwargs)


def test_resources_never_share_a_core_and_cuda_takes_a_gpu():
    assert Target(threads=4).resource_options(1.0, 0.0) == (4.0, 0.0)
    assert Target(device="cuda").resource_options(1.0, 0.0) == (1.0, 1.0)


def test_pick_by_spec_or_hardware_id():
    targets = (Target(), Target(runtime="onnxruntime"))
    ids = {"cpu-t1-onnxruntime-b1": "cpu-X-t1-onnxruntime-b1"}
    assert pick(targets, "cpu-t1-onnxruntime-b1") is targets[1]
    assert pick(targets, "cpu-X-t1-onnxruntime-b1", ids) is targets[1]
    with pytest.raises(
        ValueError,
        match=r"unknown target 'gpu'; this run's targets: cpu-t1-torch-b1, "
        r"cpu-t1-onnxruntime-b1 \(cpu-X-t1-onnxruntime-b1\)",
    ):
        pick(targets, "gpu", ids)
