"""LA-DNAS against its peers (``search.methods``): lut, flops and random search run in the
same Tune sweep; every candidate is trained with several seeds; the report compares the
methods with intervals over the search seeds. Library parts on their own, then the whole
loop through ``reproduce`` on the smoke profile with a real local Ray."""

import json

import numpy as np
import pytest
import torch
from conftest import copy_fitted, smoke_config

from lanas.encoding import encode_genotype
from lanas.network import MacroSettings
from lanas.penalty import flops_table, lut_table
from lanas.quality import network_flops
from lanas.search import SearchSettings, build_supernet, random_search
from lanas.space import SearchSpace
from pipeline.compare import compare_methods, section
from pipeline.config import ConfigError
from pipeline.evaluate import accuracy, candidate_name
from pipeline.search import plan, trial_key

SPACE = SearchSpace()
METHODS = ["ladnas", "lut", "flops", "random"]


def test_the_flops_table_is_exact_on_architectures_it_was_not_fitted_on():
    macro = MacroSettings(3, 8, 3, 1, 10)
    table, worst = flops_table(SPACE, macro, 8, SPACE.sample_unique(30, 1))
    assert worst < 1e-3
    for g in SPACE.sample_unique(5, 99):
        with torch.no_grad():
            mflops = float(table(encode_genotype(g, SPACE)[None]))
        assert mflops * 1e6 == pytest.approx(network_flops(g, macro, 8), rel=1e-3)


def test_the_lookup_table_has_one_entry_per_cell_edge_and_op_and_learns_an_additive_cost():
    rng = np.random.default_rng(0)
    cost = torch.tensor(rng.uniform(0.5, 2.0, 2 * 14 * len(SPACE.ops)), dtype=torch.float32)
    x = torch.stack([encode_genotype(g, SPACE) for g in SPACE.sample_unique(400, 3)])
    table = lut_table(SPACE, x, 1.0 + x @ cost)
    assert table.pool.shape == (2 * 14 * len(SPACE.ops),) * 2 and table.mlp is None
    held = torch.stack([encode_genotype(g, SPACE) for g in SPACE.sample_unique(420, 3)[400:]])
    with torch.no_grad():
        rel = ((table(held) - (1.0 + held @ cost)) / (1.0 + held @ cost)).abs()
    assert float(rel.max()) < 0.02


def test_a_subnetwork_with_shared_weights_runs_only_the_genotypes_ops():
    torch.manual_seed(0)
    net = build_supernet(SPACE, MacroSettings(3, 8, 3, 1, 10), SearchSettings(layers=2, channels=8)).train()
    g = SPACE.sample_unique(1, 5)[0]
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        before = net.forward_genotype(x, g)
        chosen = {(0, node, inp) for node, inp, _ in g.edges("normal")}
        # perturb the weights of every op on an edge the normal cell does not use
        for cell in (c for c in net.cells if not c.reduction):
            for e, edge in enumerate(cell.edges):
                from lanas.topology import edge_index

                if not any(edge_index(node, inp) == e for _, node, inp in chosen):
                    for p in edge.parameters():
                        p.add_(1.0)
        after = net.forward_genotype(x, g)
    assert torch.allclose(before, after)


def test_random_search_is_seeded_and_a_large_lambda_picks_a_faster_architecture():
    from lanas.data import DataSettings, load_splits, loader

    splits = load_splits(DataSettings(limit=128))
    settings = SearchSettings(layers=2, channels=8, epochs=1, batch_size=64)
    table, _ = flops_table(SPACE, MacroSettings(3, 8, 3, 1, 10), 8, SPACE.sample_unique(30, 1))

    def run():
        torch.manual_seed(0)
        net = build_supernet(SPACE, MacroSettings(3, 8, 3, 1, 10), settings)
        train, val = loader(splits.train, 64, True, 0), loader(splits.val, 64, True, 1)
        return random_search(net, {"t": table}, [0.0, 100.0], train, val, settings, 30, seed=0)

    a, b = run(), run()
    assert [p["genotype"] for p in a] == [p["genotype"] for p in b]
    assert [(p["target"], p["lam"]) for p in a] == [(None, 0.0), ("t", 100.0)]
    assert a[1]["latency_term"] <= a[0]["latency_term"]


def test_the_plan_has_one_trial_per_method_lambda_target_and_seed_and_shares_lambda_zero():
    cfg = smoke_config(**{"search.methods": METHODS, "search.seeds": [0, 1, 2], "search.lambdas": [0.0, 0.1, 1.0]})
    trials = plan(cfg)
    by = {m: [t for t in trials if t["method"] == m] for m in METHODS}
    # lambda = 0 once per seed (ladnas, shared); per lambda > 0: ladnas and lut per target, flops once
    assert len(by["ladnas"]) == 3 * (1 + 2) and len(by["lut"]) == 3 * 2 and len(by["flops"]) == 3 * 2
    assert len(by["random"]) == 3  # one per seed: its supernet serves every lambda and target
    assert all(t["target"] is None for t in by["flops"])
    assert len({trial_key(t) for t in trials}) == len(trials)
    names = {candidate_name({**t, "lam": t["lam"] or 0.0}) for t in trials}
    assert len(names) == len(trials)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"search.methods": ["ladnas", "luts"]}, "search: methods must be distinct names out of"),
        ({"search.methods": []}, "search: methods must be distinct names out of"),
        (
            {"search.methods": ["random"], "search.settings.mode": "pcdarts"},
            "search: method random scores sub-networks",
        ),
        ({"evaluate.seeds": [0, 0]}, "evaluate: seeds must be distinct"),
    ],
)
def test_method_and_seed_settings_are_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        smoke_config(**override)


def _row(method, lam, seed, acc, ms, name=None, kind="searched"):
    return {"name": name or f"{method}-{lam}-{seed}", "kind": kind, "method": method, "lam": lam, "seed": seed,
            "arch_id": f"{method}{lam}{seed}{acc}{ms}", "test_acc": acc, "test_acc_std": 0.002,
            "measured_latency_ms": ms, "trial_path": f"{method}{lam}{seed}", "search_s": 10.0}  # fmt: skip


def test_the_comparison_calls_a_win_a_loss_and_a_tie_from_paired_seed_intervals():
    rows = []
    for s in range(4):
        jitter = 0.0005 * s  # within the seed noise (0.002)
        rows += [_row("ladnas", 0.0, s, 0.95, 10.0), _row("ladnas", 1.0, s, 0.95 - jitter, 5.0)]
        rows += [_row("lut", 1.0, s, 0.95 - jitter, 5.0 + 0.05 * (-1) ** s)]  # as good: a tie
        rows += [_row("flops", 1.0, s, 0.90, 9.5 - 0.1 * s)]  # slower and worse: LA-DNAS wins
        rows += [_row("random", 0.0, s, 0.96, 4.0 - 0.1 * s), _row("random", 1.0, s, 0.96, 3.5 - 0.1 * s)]  # loses
    c = compare_methods(rows)
    v = {m: c["versus_ladnas"][m]["hypervolume"]["verdict"] for m in ("lut", "flops", "random")}
    assert v == {"lut": "ties", "flops": "wins", "random": "loses"}
    assert c["methods"]["ladnas"]["saved"]["mean"] == pytest.approx(0.5)
    assert c["methods"]["flops"]["saved"]["mean"] == 0.0  # its lambda > 0 architecture lost accuracy
    assert c["methods"]["ladnas"]["architectures"] == 8 and c["methods"]["lut"]["search_s"] == 40.0
    md = "\n".join(section("t", c, None))
    assert "- LA-DNAS vs LUT (ProxylessNAS/FBNet): **ties** on hypervolume (difference " in md
    assert (
        "- LA-DNAS vs FLOPs penalty: **wins** on hypervolume" in md and "| random search (weight sharing) | 8 |" in md
    )
    two_seeds = compare_methods([r for r in rows if r["seed"] < 2])  # a bootstrap over 2 seeds is no interval
    assert two_seeds["versus_ladnas"]["lut"]["hypervolume"]["verdict"] is None
    assert two_seeds["methods"]["lut"]["hypervolume"]["lo"] is None


def test_accuracy_over_training_seeds_is_a_mean_with_its_spread():
    trained = {("a", s): {"test_acc": acc, "val_acc": None, "train_acc": 1.0, "params": 7}
               for s, acc in ((0, 0.90), (1, 0.94))}  # fmt: skip
    a = accuracy(trained, "a", (0, 1))
    assert a["test_acc"] == pytest.approx(0.92) and a["test_acc_std"] == pytest.approx(0.02828, rel=1e-3)
    assert a["test_accs"] == [0.90, 0.94] and a["val_acc"] is None


@pytest.mark.slow
def test_every_method_runs_through_reproduce_and_the_same_seeds_derive_the_same_genotypes(fitted, tmp_path, capsys):
    from pipeline.reproduce import reproduce
    from pipeline.search import run_search
    from pipeline.stages import Options

    cfg = smoke_config(**{"search.methods": METHODS, "search.seeds": [0, 1], "evaluate.seeds": [0, 1]})
    run = copy_fitted(fitted[0], tmp_path / "run", cfg)
    reproduce(run.path / "config.yaml", run.path, options=Options(progress=False))
    out = capsys.readouterr().out
    assert "x methods ['ladnas', 'lut', 'flops', 'random']" in out
    searched = [json.loads(x) for x in (run.path / "search" / "results.jsonl").read_text().splitlines()]
    # per seed: lambda 0 (shared), ladnas, lut and flops at lambda 2, random's picks at lambda 0 and 2
    assert sorted((r["method"], r["lam"], r["seed"]) for r in searched) == sorted(
        (m, lam, s) for s in (0, 1) for m, lam in
        [("ladnas", 0.0), ("ladnas", 2.0), ("lut", 2.0), ("flops", 2.0), ("random", 0.0), ("random", 2.0)]
    )  # fmt: skip
    assert all(r["search_s"] > 0 for r in searched)
    evaluated = [json.loads(x) for x in (run.path / "evaluate" / "results.jsonl").read_text().splitlines()]
    assert all(r["train_seeds"] == [0, 1] and len(r["test_accs"]) == 2 for r in evaluated)
    assert {r["method"] for r in evaluated if r["kind"] == "searched"} == set(METHODS)
    report = run.path / "report"
    assert (report / "methods.png").stat().st_size > 0
    header = (report / "pareto.csv").read_text().splitlines()[0].split(",")
    assert "method" in header and "test_acc_std" in header
    methods = json.loads((report / "analysis.json").read_text())["methods"]["cpu-t1-torch-b1"]
    assert set(methods["methods"]) == set(METHODS)
    md = (report / "report.md").read_text()
    for peer in ("LUT (ProxylessNAS/FBNet)", "FLOPs penalty", "random search (weight sharing)"):
        line = next(x for x in md.splitlines() if x.startswith(f"- LA-DNAS vs {peer}:"))
        assert "fewer than 3 search seeds, no interval: no verdict" in line  # two seeds (verdicts: unit test)

    # seed 0 again, from scratch, every method: the same genotypes
    again = copy_fitted(fitted[0], tmp_path / "again", smoke_config(**{"search.methods": METHODS}))
    run_search(again, progress=False)
    rerun = [json.loads(x) for x in (again.path / "search" / "results.jsonl").read_text().splitlines()]
    key = lambda r: (r["method"], r["target"] or "", r["lam"], r["seed"])  # noqa: E731
    assert len(rerun) == 6 and all(r["seed"] == 0 for r in rerun)
    assert {key(r): r["genotype"] for r in rerun} == {key(r): r["genotype"] for r in searched if r["seed"] == 0}


def test_run_directories_made_before_methods_existed_keep_their_identity():
    plain, peers = smoke_config(), smoke_config(**{"search.methods": ["ladnas", "lut"], "evaluate.seeds": [0, 1]})
    assert "methods" not in plain.identity_dict()["search"] and "seeds" not in plain.identity_dict()["evaluate"]
    assert peers.identity_dict()["search"]["methods"] == ["ladnas", "lut"] and plain.identity() != peers.identity()
    assert plain.train_seeds() == (plain.seed,) and peers.train_seeds() == (0, 1)
