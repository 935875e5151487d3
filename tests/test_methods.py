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
from lanas.random_search import candidate_pool, pick, score_candidate, score_within_budget
from lanas.space import SearchSpace
from lanas.train import TrainSettings
from lanas_pipeline.compare import compare_methods, section
from lanas_pipeline.config import ConfigError
from lanas_pipeline.evaluate import accuracy, candidate_name
from lanas_pipeline.search.plan import plan, trial_key

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


def test_random_search_draws_across_the_latency_range_and_a_large_lambda_picks_a_faster_architecture():
    from lanas.data import DataSettings, load_splits, loader

    macro = MacroSettings(2, 4, 1, 1, 10)
    table, _ = flops_table(SPACE, MacroSettings(5, 16, 3, 1, 10), 8, SPACE.sample_unique(30, 1))
    pool = candidate_pool(SPACE, 40, seed=0)
    assert len({g.arch_id for g in pool}) == 40 and pool == candidate_pool(SPACE, 40, seed=0)
    # a search cut short by its budget scored a prefix of the pool a larger one would score, odd counts too
    assert all(candidate_pool(SPACE, n, seed=0) == pool[:n] for n in (1, 6, 7, 13))
    with torch.no_grad():
        ratio = table.latency_term(torch.stack([encode_genotype(g, SPACE) for g in pool]))
        uniform = table.latency_term(torch.stack([encode_genotype(g, SPACE) for g in SPACE.sample_unique(40, 5)]))
    assert float(ratio.min()) < float(uniform.min())  # coverage samples reach below uniform ones
    splits = load_splits(DataSettings(limit=64))
    settings = TrainSettings(epochs=1, batch_size=64)

    def score(g):
        torch.manual_seed(0)
        return score_candidate(g, macro, loader(splits.train, 64, True, 0), loader(splits.val, 64, False), settings,
                               "cpu")  # fmt: skip

    scored = score_within_budget(pool[:6], score, budget_s=1e6)
    again = score_within_budget(pool[:6], score, budget_s=1e6, scored=scored[:3])  # resumed: nothing re-scored
    assert [s["genotype"] for s in again] == [s["genotype"] for s in scored]
    assert again[3]["val_ce"] == pytest.approx(scored[3]["val_ce"])
    picks = pick(scored, SPACE, {"t": table}, [0.0, 100.0])
    assert [(p["target"], p["lam"]) for p in picks] == [(None, 0.0), ("t", 100.0)]
    assert picks[0]["proxy_val_ce"] == min(s["val_ce"] for s in scored)
    assert picks[1]["latency_term"] == pytest.approx(float(min(ratio[:6])))


def test_random_search_stays_inside_its_budget():
    fake = iter([2.0, 3.0, 2.5, 2.0, 9.0, 1.0])  # seconds each candidate's proxy training takes

    def score(g):
        return {"genotype": g.to_json(), "val_ce": 1.0, "val_acc": 0.5, "train_s": next(fake)}

    seen = []
    scored = score_within_budget(SPACE.sample_unique(6, 0), score, budget_s=10.0, on_candidate=seen.append)
    # 2 + 3 + 2.5 = 7.5; the slowest so far (3 s) would end at 10.5 > 10: the fourth never starts
    assert [s["train_s"] for s in scored] == [2.0, 3.0, 2.5] and len(seen) == 3
    assert sum(s["train_s"] for s in scored) <= 10.0
    one = score_within_budget(SPACE.sample_unique(2, 0), score, budget_s=0.5)
    assert len(one) == 1  # the first candidate always runs: a search without one has no pick


def test_the_plan_has_one_trial_per_method_lambda_target_and_seed_and_shares_lambda_zero():
    cfg = smoke_config(**{"search.methods": METHODS, "search.seeds": [0, 1, 2], "search.lambdas": [0.0, 0.1, 1.0]})
    trials = plan(cfg)
    by = {m: [t for t in trials if t["method"] == m] for m in METHODS}
    # lambda = 0 once per seed (ladnas, shared); per lambda > 0: ladnas and lut per target, flops once
    assert len(by["ladnas"]) == 3 * (1 + 2) and len(by["lut"]) == 3 * 2 and len(by["flops"]) == 3 * 2
    assert len(by["random"]) == 3  # one per seed: its candidates serve every lambda and target
    assert all(t["target"] is None for t in by["flops"])
    assert len({trial_key(t) for t in trials}) == len(trials)
    names = {candidate_name({**t, "lam": t["lam"] or 0.0}) for t in trials}
    assert len(names) == len(trials)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"search.methods": ["ladnas", "luts"]}, "search: methods must be distinct names out of"),
        ({"search.methods": []}, "search: methods must be distinct names out of"),
        ({"search.random_epochs": 0}, "search: random_candidates and random_epochs must be >= 1"),
        ({"search.random_budget_s": -1}, "search: random_budget_s must be a finite number of seconds >= 0"),
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
        "- LA-DNAS vs FLOPs penalty: **wins** on hypervolume" in md
        and "| random search (proxy training, same time) | 8 |" in md
    )
    two_seeds = compare_methods([r for r in rows if r["seed"] < 2])  # a bootstrap over 2 seeds is no interval
    assert two_seeds["versus_ladnas"]["lut"]["hypervolume"]["verdict"] is None
    assert two_seeds["methods"]["lut"]["hypervolume"]["lo"] is None


def test_latency_matched_random_and_the_trivial_network_are_peers_with_verdicts():
    rows = [_row(None, None, None, 0.80, 2.0, name="trivial", kind="baseline")]  # fast, far less accurate
    for s in range(4):
        rows += [_row("ladnas", 0.0, s, 0.95, 10.0), _row("ladnas", 1.0, s, 0.949, 5.0)]
        rows += [_row(None, 1.0, s, 0.90 - 0.001 * s, 5.1, name=f"matched-{s}", kind="matched")]
    c = compare_methods(rows)
    assert c["methods"]["matched"]["architectures"] == 8  # each seed: its lambda = 0 and its partner
    assert c["methods"]["trivial"]["architectures"] == 1 and c["methods"]["trivial"]["saved"]["mean"] == 0.0
    assert c["versus_ladnas"]["matched"]["hypervolume"]["verdict"] == "wins"
    assert c["versus_ladnas"]["matched"]["saved"]["verdict"] == "wins"  # the partner lost accuracy: nothing saved
    assert c["versus_ladnas"]["trivial"]["hypervolume"]["verdict"] == "wins"
    md = "\n".join(section("t", c, None))
    assert "- LA-DNAS vs latency-matched random (λ = 0 + partners): **wins** on hypervolume" in md


def test_accuracy_over_training_seeds_is_a_mean_with_its_spread():
    trained = {("a", s): {"test_acc": acc, "val_acc": None, "train_acc": 1.0, "params": 7}
               for s, acc in ((0, 0.90), (1, 0.94))}  # fmt: skip
    a = accuracy(trained, "a", (0, 1))
    assert a["test_acc"] == pytest.approx(0.92) and a["test_acc_std"] == pytest.approx(0.02828, rel=1e-3)
    assert a["test_accs"] == [0.90, 0.94] and a["val_acc"] is None


@pytest.mark.slow
def test_every_method_runs_through_reproduce_and_the_same_seeds_derive_the_same_genotypes(fitted, tmp_path, capsys):
    from lanas_pipeline.reproduce import reproduce
    from lanas_pipeline.search.stage import run_search
    from lanas_pipeline.stages import Options

    cfg = smoke_config(**{"search.methods": METHODS, "evaluate.seeds": [0, 1]})  # one search seed: the plan's seeds
    # are the plan test's (above); what runs here is every method through Tune, twice the same
    run = copy_fitted(fitted[0], tmp_path / "run", cfg)
    reproduce(run.path / "config.yaml", run.path, options=Options(progress=False))
    out = capsys.readouterr().out
    assert "x methods ['ladnas', 'lut', 'flops', 'random']" in out
    searched = [json.loads(x) for x in (run.path / "search" / "results.jsonl").read_text().splitlines()]
    # lambda 0 (shared), ladnas, lut and flops at lambda 2, random's picks at lambda 0 and 2
    assert sorted((r["method"], r["lam"], r["seed"]) for r in searched) == sorted(
        (m, lam, s) for s in (0,) for m, lam in
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
    for peer in ("LUT (ProxylessNAS/FBNet)", "FLOPs penalty", "random search (proxy training, same time)"):
        line = next(x for x in md.splitlines() if x.startswith(f"- LA-DNAS vs {peer}:"))
        assert "fewer than 3 search seeds, no interval: no verdict" in line  # one seed (verdicts: unit test)

    # seed 0 again, from scratch, every method: the same genotypes
    # random search's wall-clock budget decides how many candidates it trains: the same count, the same picks
    scored = next(r["candidates"] for r in searched if r["method"] == "random" and r["seed"] == 0)
    assert all(r["proxy_s"] <= r["budget_s"] for r in searched if r["method"] == "random")
    same = {"search.methods": METHODS, "search.random_candidates": scored, "search.random_budget_s": 1e6}
    again = copy_fitted(fitted[0], tmp_path / "again", smoke_config(**same))
    run_search(again, progress=False)
    rerun = [json.loads(x) for x in (again.path / "search" / "results.jsonl").read_text().splitlines()]
    key = lambda r: (r["method"], r["target"] or "", r["lam"], r["seed"])  # noqa: E731
    assert len(rerun) == 6 and all(r["seed"] == 0 for r in rerun)
    assert {key(r): r["genotype"] for r in rerun} == {key(r): r["genotype"] for r in searched}


def test_run_directories_made_before_methods_existed_keep_their_identity():
    plain, peers = smoke_config(), smoke_config(**{"search.methods": ["ladnas", "lut"], "evaluate.seeds": [0, 1]})
    assert "methods" not in plain.identity_dict()["search"] and "seeds" not in plain.identity_dict()["evaluate"]
    assert peers.identity_dict()["search"]["methods"] == ["ladnas", "lut"] and plain.identity() != peers.identity()
    assert plain.train_seeds() == (plain.seed,) and peers.train_seeds() == (0, 1)
