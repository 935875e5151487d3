import pytest
import torch

from lanas.data import DataSettings, load_splits, loader
from lanas.encoding import encode_genotype
from lanas.network import MacroSettings
from lanas.predictor import LatencyPredictor
from lanas.search import SearchSettings, build_supernet, latency_term, search
from lanas.space import SearchSpace
from lanas.supernet import MODES

SPACE = SearchSpace()
COST = {
    "none": 0.0,
    "max_pool_3x3": 0.1,
    "avg_pool_3x3": 0.1,
    "skip_connect": 0.05,
    "sep_conv_3x3": 1.0,
    "sep_conv_5x5": 2.0,
    "dil_conv_3x3": 0.6,
    "dil_conv_5x5": 1.2,
}


def toy_predictor() -> LatencyPredictor:
    """An additive predictor with known per-op costs (no MLP)."""
    p = LatencyPredictor.table(torch.tensor([COST[o] for o in SPACE.ops]).repeat(28), 1.0)
    p.typical.fill_(8.0)
    return p


@pytest.fixture(scope="module")
def loaders():
    splits = load_splits(DataSettings(limit=128))
    return loader(splits.train, 32, True), loader(splits.val, 32, True)


def _run(mode, lam, loaders, epochs=1, seed=0, **kw):
    torch.manual_seed(seed)
    settings = SearchSettings(mode=mode, layers=2, channels=8, epochs=epochs, batch_size=32, **kw)
    net = build_supernet(SPACE, MacroSettings(in_channels=1), settings)
    return net, search(net, toy_predictor(), *loaders, settings, lam)


@pytest.mark.parametrize("mode", MODES)
def test_one_epoch_search_returns_a_valid_genotype(mode, loaders):
    _, result = _run(mode, 0.5, loaders)
    result.genotype.validate(SPACE.ops)
    (m,) = result.history
    assert m["epoch"] == 1 and m["genotype"] == result.genotype.to_json()
    keys = ("train_acc", "val_acc", "train_ce", "val_ce", "latency_term", "predicted_latency_ratio")
    assert all(k in m for k in keys)


def test_large_lambda_ends_with_lower_predicted_latency(loaders):
    p = toy_predictor()
    net0, r0 = _run("gdas", 0.0, loaders, epochs=2, a_lr=0.05)
    net1, r1 = _run("gdas", 10.0, loaders, epochs=2, a_lr=0.05)

    def lat(g):
        return float(p(encode_genotype(g, SPACE).unsqueeze(0)).detach())

    assert float(latency_term(net1, p).detach()) < float(latency_term(net0, p).detach())
    assert lat(r1.genotype) < lat(r0.genotype)
    assert r1.history[-1]["predicted_latency_ratio"] == pytest.approx(lat(r1.genotype), rel=1e-5)


def _fresh(seed, settings):
    torch.manual_seed(seed)
    return build_supernet(SPACE, MacroSettings(in_channels=1), settings)


@pytest.mark.parametrize("mode", ["pcdarts", "gdas"])  # beta and Gumbel samples; darts adds neither
def test_a_resumed_search_is_the_uninterrupted_search(mode):
    """Interrupted after epoch 1 and resumed in a new network (other initial weights)
    with new loaders, the search ends with the same alpha, beta and weights as one
    that ran through: the snapshot restores the network and both optimisers, and each
    epoch's randomness (batch order, Gumbel samples) depends on (seed, epoch) alone."""
    splits = load_splits(DataSettings(limit=64))
    make = lambda: (loader(splits.train, 32, True, 5), loader(splits.val, 32, True, 6))  # noqa: E731
    settings = SearchSettings(mode=mode, layers=2, channels=8, epochs=2, batch_size=32, a_lr=0.05)
    through = _fresh(0, settings)
    search(through, toy_predictor(), *make(), settings, 1.0, seed=3)
    snaps = []
    search(_fresh(0, settings), toy_predictor(), *make(), settings, 1.0, seed=3, on_epoch=lambda m, s: snaps.append(s))
    resumed = _fresh(1, settings)
    assert not torch.equal(resumed.alpha, through.alpha)
    result = search(resumed, toy_predictor(), *make(), settings, 1.0, seed=3, state=snaps[0])
    assert [h["epoch"] for h in result.history] == [1, 2]
    after = resumed.state_dict()  # once: the supernet's state has ~1,100 entries
    for name, value in through.state_dict().items():
        assert torch.equal(after[name], value), name
    assert result.history == snaps[1]["history"]
    # ... and a different seed is a different search
    other = _fresh(0, settings)
    search(other, toy_predictor(), *make(), settings, 1.0, seed=4)
    assert not torch.equal(other.alpha, through.alpha)


def test_negative_lambda_is_refused(loaders):
    with pytest.raises(ValueError, match="lambda must be"):
        _run("gdas", -1.0, loaders)
