"""The NAS-Bench-201 space against the benchmark's own tables: arch strings, the skeleton's
parameter counts, the encoding, and the vendored tables with their licences."""

import random
from importlib import resources

import numpy as np
import pytest
import torch

from lanas import nb201, nb201_tables
from lanas.nb201 import Cell, CellError
from lanas.nb201_network import Nb201Network, parameter_count


@pytest.fixture(scope="module")
def tables():
    return nb201_tables.load()


def test_every_arch_string_round_trips_and_ids_are_distinct(tables):
    cells = tables.cells()
    assert len(cells) == 15_625 == len(nb201.OPS) ** len(nb201.EDGES)
    assert [c.arch_str() for c in cells] == list(tables.arch_strs)
    assert len({c for c in cells}) == len({c.arch_id for c in cells}) == 15_625


@pytest.mark.parametrize(
    "text, message",
    [
        ("|nor_conv_3x3~0|+|none~0|none~1|", "3 nodes"),
        ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must read node 0"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NAS-Bench-201 ops"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "not a NAS-Bench-201 arch string"),
    ],
)
def test_malformed_arch_strings_are_refused_in_one_line(text, message):
    with pytest.raises(CellError, match=message) as err:
        Cell.from_arch_str(text)
    assert "\n" not in str(err.value)


def test_the_skeleton_is_the_benchmarks_by_parameter_count(tables):
    """1 % of the architectures, drawn at random: the built network's parameters equal the
    table's params_mb (C = 16, N = 5, 10 classes). Over all 15,625, 150 rows (0.96 %) of the
    table's params_mb differ from the network their arch string describes (120 of them
    with skip_connect on the first edge; ``lanas/tables/nb201/README.md``), so a sample
    may hold a few: at most 3 % here, and the cell that matches is the one named."""
    rows = random.Random(0).sample(range(len(tables.arch_strs)), 157)
    exact = [
        parameter_count(Nb201Network(Cell.from_arch_str(tables.arch_strs[i]))) / 1e6
        == pytest.approx(tables.params_mb[i], abs=5e-7)
        for i in rows
    ]
    assert sum(exact) >= 0.97 * len(rows)


def test_the_network_runs_forward_and_backward():
    net = Nb201Network(nb201.sample(1, seed=3)[0])
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()


def test_encoding_round_trips_and_alpha_has_the_same_layout():
    cells = nb201.sample(200, seed=1)
    x = nb201.encode_many(cells)
    assert x.shape == (200, nb201.ENCODING_SIZE)
    assert torch.all(x.reshape(200, len(nb201.EDGES), len(nb201.OPS)).sum(-1) == 1)
    assert [nb201.decode(row) for row in x] == cells
    alpha = torch.zeros(len(nb201.EDGES), len(nb201.OPS))
    alpha[torch.arange(len(nb201.EDGES)), [nb201.OPS.index(o) for o in cells[0].ops]] = 30.0
    assert torch.allclose(nb201.encode_alpha(alpha), x[0], atol=1e-6)
    assert nb201.decode(nb201.encode_alpha(alpha)) == cells[0]


def test_sampling_is_seeded_and_distinct():
    a, b = nb201.sample(500, seed=7), nb201.sample(500, seed=7)
    assert a == b and len(set(a)) == 500
    assert nb201.sample(500, seed=8) != a


def test_disconnected_cells_are_what_the_pixel3_runs_as_a_constant(tables):
    """Every architecture the Pixel 3's table times in microseconds has a cell whose
    output cannot depend on its input (202 of those 341 cells)."""
    flags = np.array([nb201.disconnected(c) for c in tables.cells()])
    assert flags.sum() == 341
    assert nb201.disconnected(Cell.from_arch_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|"))
    assert not nb201.disconnected(Cell.from_arch_str("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"))
    folded = tables.latency_ms["pixel3"] < 0.1
    assert folded.sum() == 202 and np.all(flags[folded])
    assert tables.latency_ms["pixel3"][~flags].min() > 1.0


def test_tables_ship_with_their_licences(tables):
    folder = resources.files("lanas.tables").joinpath("nb201")
    for name in ("LICENSE-latency-MIT", "LICENSE-accuracy-Apache-2.0", "README.md"):
        assert folder.joinpath(name).is_file(), name
    assert len(tables.devices) == 21
    assert all(np.all(v > 0) and np.all(np.isfinite(v)) for v in tables.latency_ms.values())
    best = int(np.argmax(tables.accuracy["cifar10"]))
    assert best == 6111 and tables.accuracy["cifar10"][best] == pytest.approx(91.61, abs=0.01)
    assert int(np.argmax(tables.accuracy["cifar100"])) == 9930


def test_the_space_latency_term_is_the_table_on_cells_and_the_exact_expectation_on_alpha(tables):
    from lanas.nb201_supernet import space_latency

    ms = tables.latency_ms["gold_6240"]
    term = space_latency(tables.cells(), list(ms))
    picks = [0, 77, 15624]
    assert torch.allclose(term(nb201.encode_many([tables.cells()[i] for i in picks])).double(),
                          torch.tensor(ms[picks]), rtol=1e-5)  # fmt: skip
    uniform = torch.full((1, nb201.ENCODING_SIZE), 1 / len(nb201.OPS))
    assert float(term(uniform)) == pytest.approx(ms.mean(), rel=1e-6)  # every cell equally likely
    # a skewed alpha: the expectation over its 15,625 cells, summed by brute force
    alpha = torch.randn(len(nb201.EDGES), len(nb201.OPS), requires_grad=True)
    p = torch.softmax(alpha, -1).detach().numpy()
    brute = sum(np.prod([p[e, nb201.OPS.index(op)] for e, op in enumerate(c.ops)]) * m
                for c, m in zip(tables.cells(), ms))  # fmt: skip
    value = term.latency_term(nb201.encode_alpha(alpha)) * term.typical
    assert value.item() == pytest.approx(brute, rel=1e-5)
    value.backward()
    assert torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0


def test_the_supernet_searches_and_a_large_lambda_picks_a_faster_cell(tables):
    from torch.utils.data import DataLoader, TensorDataset

    from lanas.nb201_network import Nb201Macro
    from lanas.nb201_supernet import Nb201SuperNet, space_latency
    from lanas.search import SearchSettings, search

    term = space_latency(tables.cells(), list(tables.latency_ms["titanx_1"]))
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 3, 16, 16), torch.randint(0, 10, (64,)))
    picked = {}
    for mode in ("darts", "gdas"):
        for lam in (0.0, 5.0):
            dl = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
            net = Nb201SuperNet(Nb201Macro(channels=4, cells_per_stage=1), mode)
            s = SearchSettings(mode="gdas", epochs=2, batch_size=16, a_lr=0.1)
            picked[mode, lam] = search(net, term, dl, dl, s, lam).genotype
        fast, free = (float(term(nb201.encode(picked[mode, lam]).unsqueeze(0))) for lam in (5.0, 0.0))
        assert isinstance(picked[mode, 5.0], Cell) and fast < free
