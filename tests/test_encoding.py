import pytest
import torch

from lanas.encoding import (
    LAYOUT_VERSION,
    decode,
    derive_genotype,
    encode_alpha,
    encode_genotype,
    encode_relaxed,
    encoding_size,
    genotype_weights,
)
from lanas.genotype import PUBLISHED, published
from lanas.space import SearchSpace

SPACE = SearchSpace()


def _genotypes():
    return SPACE.sample_unique(10, 0) + [published(n) for n in PUBLISHED]


def test_layout():
    assert LAYOUT_VERSION == 1
    assert encoding_size(SPACE) == 2 * 14 * 8
    e = encode_genotype(published("darts_v2"), SPACE)
    assert e.shape == (224,) and e.sum() == 16  # 8 edges per cell, one-hot
    # node masses: every node carries 2 in both cells
    w = e.reshape(2, 14, 8).sum(-1)
    for start, n in ((0, 2), (2, 3), (5, 4), (9, 5)):
        assert torch.all(w[:, start : start + n].sum(-1) == 2)


@pytest.mark.parametrize("g", _genotypes(), ids=lambda g: g.arch_id[:8])
def test_discrete_round_trip(g):
    assert decode(encode_genotype(g, SPACE), SPACE) == g


@pytest.mark.parametrize("g", _genotypes(), ids=lambda g: g.arch_id[:8])
def test_one_hot_weights_encode_like_the_genotype(g):
    weights = genotype_weights(g, SPACE)
    assert torch.equal(encode_relaxed(weights, torch.ones(2, 14)), encode_genotype(g, SPACE))
    # logits that are one-hot in the limit: alpha large on the chosen op, beta on the chosen edges
    alpha = 50.0 * weights
    beta = 50.0 * (weights.sum(-1) > 0).float()
    assert torch.allclose(encode_alpha(alpha, beta), encode_genotype(g, SPACE), atol=1e-6)
    assert derive_genotype(alpha, beta, SPACE) == g


def test_relaxed_encoding_keeps_node_mass_and_is_differentiable():
    alpha = torch.randn(2, 14, 8, requires_grad=True)
    beta = torch.randn(2, 14, requires_grad=True)
    for b in (None, beta):
        e = encode_alpha(alpha, b)
        w = e.reshape(2, 14, 8).sum(-1)
        for start, n in ((0, 2), (2, 3), (5, 4), (9, 5)):
            assert torch.allclose(w[:, start : start + n].sum(-1), torch.full((2,), 2.0))
    (encode_alpha(alpha, beta) * torch.randn(224)).sum().backward()
    assert alpha.grad.abs().sum() > 0 and beta.grad.abs().sum() > 0


def test_derivation_never_picks_none_and_is_valid():
    alpha = torch.zeros(2, 14, 8)
    alpha[..., 0] = 10.0  # 'none' strongest everywhere
    alpha[..., 4] = 1.0  # then sep_conv_3x3
    g = derive_genotype(alpha, None, SPACE)
    g.validate(SPACE.ops)
    assert {op for op, _ in g.normal + g.reduce} == {"sep_conv_3x3"}


def test_relaxed_edge_mass_is_a_genotype_point_even_when_beta_concentrates():
    # 2 * softmax(beta) would put a mass of 2 on edge 9; no genotype has more than 1 per edge
    beta = torch.zeros(2, 14)
    beta[:, 9] = 200.0
    w = encode_alpha(torch.zeros(2, 14, 8), beta).reshape(2, 14, 8).sum(-1)
    assert w.max() <= 1.0 + 1e-6
    assert torch.allclose(w[:, 9:14], torch.tensor([1.0, 0.25, 0.25, 0.25, 0.25]).expand(2, 5))


def test_relaxed_edge_weights_are_the_inclusion_probabilities_of_sampled_genotypes():
    from lanas.encoding import inclusion_probabilities

    logits = torch.tensor([2.0, -1.0, 0.5, 0.0, -3.0])
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(5)
    n = 20000
    for _ in range(n):
        counts[torch.multinomial(torch.softmax(logits, 0), 2, replacement=False, generator=gen)] += 1
    assert torch.allclose(inclusion_probabilities(logits), counts / n, atol=0.015)


def test_pcdarts_forward_edge_weights_sum_to_one_per_node():
    from lanas.network import MacroSettings
    from lanas.supernet import SuperNet

    net = SuperNet(SPACE, MacroSettings(layers=3, channels=8, in_channels=1), "pcdarts", 4)
    with torch.no_grad():
        net.beta.normal_()
    w = net.edge_weights()
    for start, n in ((0, 2), (2, 3), (5, 4), (9, 5)):
        assert torch.allclose(w[:, start : start + n].sum(-1), torch.ones(2))
