import pytest
import torch

from lanas.ops import DARTS_OPS, build_op, op_names, register


@pytest.mark.parametrize("name", op_names())
@pytest.mark.parametrize("stride", [1, 2])
def test_op_forward_backward_and_every_parameter_gets_a_gradient(name, stride):
    op = build_op(name, 8, stride)
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    y = op(x)
    assert y.shape == (2, 8, 8 // stride, 8 // stride)
    (y * torch.randn_like(y)).sum().backward()
    for pname, p in op.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    if name != "none":
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_registry_has_the_eight_darts_primitives():
    assert DARTS_OPS == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )


def test_unknown_op_and_duplicate_registration_are_errors():
    with pytest.raises(KeyError, match="unknown op 'conv_9x9'"):
        build_op("conv_9x9", 8, 1)
    with pytest.raises(ValueError, match="already registered"):
        register("none")(lambda c, s, a: None)
