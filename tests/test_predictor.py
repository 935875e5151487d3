import numpy as np
import pytest
import torch

from lanas.encoding import encode_alpha, encode_genotype, encoding_size
from lanas.predictor import LatencyPredictor, PredictorSettings, relative_error, train_predictor
from lanas.space import SearchSpace

SPACE = SearchSpace()


def _data(n, seed):
    gs = SPACE.sample_unique(n, seed)
    x = torch.stack([encode_genotype(g, SPACE) for g in gs])
    gen = torch.Generator().manual_seed(1)
    w = torch.rand(x.shape[1], generator=gen)
    y = 1.0 + x @ w * 0.1 + 0.05 * (x[:, :10].sum(1) * x[:, 100:110].sum(1))  # additive + interaction
    return x, y


def test_training_beats_a_constant_and_stores_its_normalisation():
    x, y = _data(300, 0)
    p = LatencyPredictor(x.shape[1], hidden=(32,))
    metrics = train_predictor(p, (x[:240], y[:240]), (x[240:], y[240:]), PredictorSettings(epochs=30, hidden=(32,)))
    const = relative_error(torch.full_like(y[240:], float(y[:240].median())), y[240:]).mean()
    assert metrics["val_mape"] < 0.5 * float(const)
    assert float(p.mean) == float(y[:240].mean()) and float(p.typical) == float(y[:240].median())
    state = p.state_dict()
    q = LatencyPredictor(x.shape[1], hidden=(32,))
    q.load_state_dict(state)
    assert torch.equal(q(x), p(x))


def test_gradient_wrt_relaxed_encoding_is_finite_and_nonzero():
    p = LatencyPredictor(encoding_size(SPACE))
    x, y = _data(50, 0)
    train_predictor(p, (x, y), (x, y), PredictorSettings(epochs=2))
    alpha = torch.randn(2, 14, 8, requires_grad=True)
    p.latency_term(encode_alpha(alpha)).sum().backward()
    assert torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_additive_fit_minimises_relative_not_absolute_error(seed):
    """Latency spans several-fold (fast pooling cells to slow convolution cells) with
    multiplicative noise; the additive term is fitted for relative error, so it beats
    unweighted least squares on the relative squared error it is judged by."""
    from sklearn.linear_model import RidgeCV

    from lanas.encoding import group_matrix
    from lanas.predictor import RIDGE_GRID, additive_predictor

    x, _ = _data(400, seed)
    groups = (x @ group_matrix(SPACE)).double().numpy()
    cost = np.random.default_rng(seed).uniform(0.0, 1.0, groups.shape[1]) ** 3  # a few ops dominate
    y = (0.05 + groups @ cost) * np.exp(np.random.default_rng(seed + 1).normal(0, 0.1, len(x)))
    yt = torch.tensor(y, dtype=torch.float32)
    with torch.no_grad():
        ours = additive_predictor(SPACE, x, yt)(x).double().numpy()
    plain = RidgeCV(alphas=RIDGE_GRID).fit(groups, y).predict(groups)
    rel = lambda p: float(np.mean(((p - y) / y) ** 2))  # noqa: E731
    assert rel(ours) < rel(plain)
