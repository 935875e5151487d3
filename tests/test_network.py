import pytest
import torch

from lanas.genotype import PUBLISHED, published
from lanas.network import MacroSettings, Network
from lanas.space import SearchSpace
from lanas.supernet import MODES, SuperNet

GENOTYPES = SearchSpace().sample_unique(3, 1) + [published(n) for n in PUBLISHED]


@pytest.mark.parametrize("g", GENOTYPES, ids=lambda g: g.arch_id[:8])
@pytest.mark.parametrize("in_channels, res, layers", [(1, 8, 5), (3, 16, 3)])
def test_network_for_sampled_and_published_genotypes(g, in_channels, res, layers):
    net = Network(g, MacroSettings(layers=layers, channels=8, in_channels=in_channels, num_classes=10))
    net.set_drop_path(0.2)
    out = net(torch.randn(4, in_channels, res, res))
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_macro_validation():
    with pytest.raises(ValueError, match="channels must be even"):
        MacroSettings(channels=7)
    with pytest.raises(ValueError, match="layers must be >= 1"):
        MacroSettings(layers=0)


@pytest.mark.parametrize("mode", MODES)
def test_supernet_forward_gives_arch_gradients(mode):
    net = SuperNet(SearchSpace(), MacroSettings(layers=3, channels=8), mode)
    net(torch.randn(8, 1, 8, 8)).logsumexp(1).sum().backward()
    assert net.alpha.grad is not None and net.alpha.grad.abs().sum() > 0
    if mode == "pcdarts":
        assert net.beta.grad.abs().sum() > 0
    assert {id(p) for p in net.weight_parameters()}.isdisjoint({id(p) for p in net.arch_parameters()})


def test_supernet_rejects_bad_mode_and_partial_channels():
    with pytest.raises(ValueError, match="search mode"):
        SuperNet(SearchSpace(), MacroSettings(), "enas")
    with pytest.raises(ValueError, match="divisible by partial_channels"):
        SuperNet(SearchSpace(), MacroSettings(channels=6), "pcdarts", partial_channels=4)


def test_auxiliary_head_trains_but_never_runs_in_the_deployed_forward():
    from lanas.train import TrainSettings, train_network

    macro = MacroSettings(layers=6, channels=8, in_channels=3)
    torch.manual_seed(0)
    net = Network(published("darts_v2"), macro, auxiliary=True)
    x = torch.randn(4, 3, 32, 32)
    logits, aux = net.forward_with_aux(x)
    assert logits.shape == aux.shape == (4, 10)
    net.eval()
    plain = Network(published("darts_v2"), macro)
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("aux_head.")})
    plain.eval()
    assert torch.equal(net(x), plain(x))  # the deployed forward is the network without the head
    data = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))]
    before = net.aux_head.classifier.weight.detach().clone()
    train_network(net, data, TrainSettings(epochs=1, batch_size=8, auxiliary_weight=0.4))
    assert not torch.equal(before, net.aux_head.classifier.weight)  # the auxiliary loss reached the head
