"""Stage 4 -- ``lanas evaluate``: train each candidate from scratch, then measure it on
every target.

Candidates: every derived genotype of the sweep (lambda = 0 among them when in the grid;
a latency budget's as kind ``budget``), the published genotypes whose ops the space has,
the trivial no-convolution baseline (``evaluate.trivial``), ``evaluate.random_archs``
random architectures as a reference cloud, and (``evaluate.matched_random``) for every
architecture searched with lambda > 0 the random architecture whose predicted latency on
its target is closest to its own (out of ``MATCH_POOL`` samples, half uniform and half
coverage-sampled with a small Dirichlet concentration, so that the pool reaches the
latency floor where large lambdas land: uniform samples alone never do): the baseline a
search must beat at equal latency (for LA-DNAS's own architectures). Phase 1 trains each
distinct architecture once per training seed (``evaluate.seeds``), in parallel Ray tasks
(``evaluate.resources``), keeping the first seed's weights in ``evaluate/weights/`` (for
``lanas export``). Phase 2, after all training has finished,
measures every candidate on every target with the stage-1 code, protocol and resources
(so no training runs beside a timing) into ``evaluate/latency/`` -- a dataset of the
stage-1 schema: the cross-target latency matrix. Both phases append as results arrive
and skip what is already there on a re-run.

``results.jsonl`` has one row per (candidate, target): accuracy (the same on every
target; the mean over the training seeds, with ``test_acc_std`` and every seed's
``test_accs``), measured and predicted latency on that target.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from lanas.data import load_splits, loader
from lanas.encoding import encode_genotype
from lanas.genotype import PUBLISHED, Genotype, published, trivial
from lanas.network import Network
from lanas.space import LATENCY_RANGE, SearchSpace, sample_mixed
from lanas.train import accuracy_and_loss, train_network

from . import dataset as ds
from .config import RunConfig
from .fanout import check_resources, fan_out, slots
from .measure import measure_into, missing, probe_same_hardware
from .predictor_store import StoredPredictor, load_all
from .records import (
    LATENCY_RATIO,
    MEASURED_MS,
    PREDICTED_MS,
    TEST_ACC,
    Candidate,
    EvaluatedRow,
    MeasuredRow,
    TrialResult,
)
from .rundir import RunDir, read_jsonl, write_jsonl
from .search.plan import method_of
from .staleness import mark_done

RANDOM_SEED_OFFSET = 10_000  # random reference architectures use seed + this
MATCH_SEED_OFFSET = 20_000  # ... and the pool of latency-matched ones seed + this
MATCH_POOL = 4096  # samples the latency-matched random architectures are chosen from
EVAL_BATCH = 512  # images per forward pass when scoring val and test
TRAIN_RETRIES = 2  # retries of a training task whose worker died
METHOD_PREFIX = {"random": "rs"}  # candidate names of other methods: prefix (rs: random search, not the cloud)


def candidate_name(row: TrialResult) -> str:
    """``lam0-seed0`` (shared by every target), ``lam0.3-seed0-cpu-t1-onnxruntime-b1``,
    ``budget0.2ms-seed0-cpu-t1-onnxruntime-b1``; other methods than ladnas are prefixed
    (``lut-lam0.3-seed0-cpu-t1-torch-b1``, ``flops-lam0.3-seed0``, ``rs-lam0-seed0``)."""
    if row.get("budget_ms") is not None:
        return f"budget{row['budget_ms']:g}ms-seed{row['seed']}-{row['target']}"
    method = method_of(row)
    base = (
        "" if method == "ladnas" else f"{METHOD_PREFIX.get(method, method)}-"
    ) + f"lam{row['lam']:g}-seed{row['seed']}"
    return f"{base}-{row['target']}" if row["target"] else base


def _row(name: str, kind: str, genotype: Genotype, **extra: Any) -> Candidate:
    return {
        "name": name,
        "kind": kind,
        "method": None,
        "lam": None,
        "seed": None,
        "searched_for": None,
        "budget_ms": None,
        "genotype": genotype.to_json(),
        **extra,
    }


def candidates(run: RunDir, stored: dict[str, StoredPredictor]) -> list[Candidate]:
    cfg = run.config
    out = [
        {
            "name": candidate_name(r),
            "kind": "searched" if r.get("budget_ms") is None else "budget",
            "method": method_of(r),
            "lam": r["lam"],
            "seed": r["seed"],
            "searched_for": r["target"],
            "budget_ms": r.get("budget_ms"),
            "genotype": r["genotype"],
            "search_s": r.get("search_s"),
            "trial_path": r.get("trial_path"),
        }
        for r in run.stage_results("search")
    ]
    named = [(n, "published", published(n)) for n in PUBLISHED] if cfg.evaluate.published else []
    if cfg.evaluate.trivial:
        named.append(("trivial", "baseline", trivial()))
    out += [_row(n, kind, g) for n, kind, g in named if cfg.space.expresses(g)]
    for i, g in enumerate(
        cfg.space.sample_unique(cfg.evaluate.random_archs, cfg.seed + RANDOM_SEED_OFFSET)
        if cfg.evaluate.random_archs
        else []
    ):
        out.append(_row(f"random-{i}", "random", g))
    if cfg.evaluate.matched_random:
        searched = [c for c in out if c["kind"] == "searched" and c["lam"] > 0 and c["method"] == "ladnas"]
        out += matched_random(cfg, searched, stored)
    for c in out:
        c["arch_id"] = Genotype.from_json(c["genotype"], cfg.space.ops).arch_id
    return out


def match_pool(space: SearchSpace, seed: int) -> list[Genotype]:
    """The architectures latency-matched partners are chosen from (``lanas.space.LATENCY_RANGE``)."""
    return [g for g, _ in sample_mixed(space, MATCH_POOL, seed + MATCH_SEED_OFFSET, LATENCY_RANGE)]


def matched_random(cfg: RunConfig, searched: list[Candidate], stored: dict[str, StoredPredictor]) -> list[Candidate]:
    """For each searched architecture, the random one (out of ``MATCH_POOL``, drawn by
    ``lanas.space.LATENCY_RANGE``) whose predicted latency on the target it was searched for is
    closest to its own."""
    if not searched:
        return []
    pool = match_pool(cfg.space, cfg.seed)
    x_pool = torch.stack([encode_genotype(g, cfg.space) for g in pool])
    out = []
    for spec in dict.fromkeys(c["searched_for"] for c in searched):
        predictor = stored[spec]  # lambda > 0 searches always have a target
        pool_ms = predictor.predict_ratio(x_pool)
        for c in (c for c in searched if c["searched_for"] == spec):
            own = predictor.predict_ratio(
                encode_genotype(Genotype.from_json(c["genotype"], cfg.space.ops), cfg.space)[None]
            )
            best = int((pool_ms / own - 1).abs().argmin())
            out.append(
                _row(f"matched-{c['name']}", "matched", pool[best], lam=c["lam"], seed=c["seed"], searched_for=spec)
            )
    return out


def train_candidate(genotype_json: str, cfg: RunConfig, seed: int) -> dict[str, Any]:
    """Inside a Ray task: train from scratch with training seed ``seed`` on the train
    split (train + val with ``evaluate.train.with_val``: then there is no validation
    accuracy), score on val and test. Returns the scores and the trained weights of the
    deployed network (without the auxiliary head, which only helps training)."""
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, int(cfg.evaluate.resources.num_cpus)))
    device = "cuda" if cfg.evaluate.resources.num_gpus > 0 and torch.cuda.is_available() else "cpu"
    g = Genotype.from_json(genotype_json, cfg.space.ops)
    s = cfg.evaluate.train
    splits = load_splits(cfg.data, cutout=s.cutout, with_val=s.with_val)
    torch.manual_seed(seed)
    net = Network(g, cfg.macro(), auxiliary=s.auxiliary_weight > 0)
    metrics = train_network(net, loader(splits.train, s.batch_size, True, seed), s, device)
    val_acc = None if s.with_val else accuracy_and_loss(net, loader(splits.val, EVAL_BATCH, False), device)[0]
    test_acc, test_loss = accuracy_and_loss(net, loader(splits.test, EVAL_BATCH, False), device)
    state = {k: v.cpu() for k, v in net.state_dict().items() if not k.startswith("aux_head.")}
    return {
        "arch_id": g.arch_id,
        "train_seed": seed,
        TEST_ACC: test_acc,
        "test_loss": test_loss,
        "val_acc": val_acc,
        "train_acc": metrics["train_acc"],
        "params": sum(p.numel() for k, p in net.named_parameters() if not k.startswith("aux_head.")),
        "train_s": time.perf_counter() - t0,
        "state": state,
    }


def weights_path(run: RunDir, arch_id: str) -> Path:
    return run.stage("evaluate") / "weights" / f"{arch_id}.pt"


def train_all(run: RunDir, unique: dict[str, str], progress: bool) -> dict[tuple[str, int], dict[str, Any]]:
    """Phase 1: train every architecture with every training seed not trained yet; returns
    (arch_id, seed) -> scores. The weights are kept for the first seed (``lanas export``)."""
    import ray
    from tqdm import tqdm

    cfg = run.config
    seeds = cfg.train_seeds()
    trained_file = run.stage("evaluate") / "trained.jsonl"
    trained = {}
    for r in read_jsonl(trained_file):
        key = (r["arch_id"], r.get("train_seed", cfg.seed))  # lines from before training seeds: the run's seed
        if key[1] != seeds[0] or weights_path(run, r["arch_id"]).is_file():
            trained[key] = r
    todo = [(a, s) for a in unique for s in seeds if (a, s) not in trained]
    print(
        f"[evaluate] {len(unique)} distinct architectures x {len(seeds)} training seed(s) {list(seeds)}; training "
        f"{len(todo)} for {cfg.evaluate.train.epochs} epochs, {len(unique) * len(seeds) - len(todo)} already trained",
        flush=True,
    )
    what, options = cfg.resource_asks()["evaluate"]
    check_resources(what, options)
    task = ray.remote(train_candidate).options(name="evaluate.train", max_retries=TRAIN_RETRIES, **options)
    bar = tqdm(total=len(todo), unit="net", desc="evaluate.train", disable=not progress)
    weights_path(run, "x").parent.mkdir(exist_ok=True)

    with trained_file.open("a", encoding="utf-8") as fh:

        def keep(key: tuple[str, int], r: dict[str, Any]) -> None:
            state = r.pop("state")
            if key[1] == seeds[0]:
                path = weights_path(run, key[0])
                tmp = path.with_name(f".{path.name}.tmp")
                torch.save(state, tmp)
                tmp.replace(path)  # weights first: a line in trained.jsonl implies its weights exist
            trained[key] = r
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            bar.update(1)

        fan_out(
            lambda k: task.remote(unique[k[0]], cfg, k[1]), todo, cfg.evaluate.max_in_flight or slots(options), keep
        )
    bar.close()
    return trained


def accuracy(trained: dict[tuple[str, int], dict[str, Any]], arch_id: str, seeds: tuple[int, ...]) -> dict[str, Any]:
    """An architecture's scores over its training seeds: the mean accuracy (test, val,
    train), the test accuracy's sample standard deviation and every seed's test accuracy."""
    rs = [trained[(arch_id, s)] for s in seeds]
    tests = [r[TEST_ACC] for r in rs]
    vals = [r["val_acc"] for r in rs if r["val_acc"] is not None]
    return {
        TEST_ACC: statistics.mean(tests),
        "test_acc_std": statistics.stdev(tests) if len(tests) > 1 else None,
        "test_accs": tests,
        "train_seeds": list(seeds),
        "val_acc": statistics.mean(vals) if vals else None,
        "train_acc": statistics.mean(r["train_acc"] for r in rs),
        "params": rs[0]["params"],
    }


def measure_all(run: RunDir, unique: dict[str, str], progress: bool) -> dict[tuple[str, str], MeasuredRow]:
    """Phase 2: every architecture on every target; returns (spec, arch_id) -> dataset row."""
    cfg = run.config
    root = run.stage("evaluate") / "latency"
    ids = probe_same_hardware(run, cfg.targets)
    genotypes = [Genotype.from_json(g, cfg.space.ops) for g in unique.values()]
    todo = missing(root, cfg, cfg.targets, ids, genotypes)
    if any(todo.values()):
        print(
            f"[evaluate] measuring real latency: {', '.join(f'{len(v)} on {ids[k]}' for k, v in todo.items())}",
            flush=True,
        )
        measure_into(run, root, todo, cfg.measure.max_in_flight, progress, name="evaluate.measure")
    table = ds.read_table(root).to_pylist()
    out = {}
    for t in cfg.targets:
        key = cfg.setting(t).key()
        for r in table:
            if r[ds.PARTITION] == ids[t.spec] and ds.setting_of(r) == key:
                out[(t.spec, r["arch_id"])] = r
    return out


def run_evaluate(run: RunDir, progress: bool = True) -> list[EvaluatedRow]:
    cfg = run.config
    t0 = time.perf_counter()
    stored = load_all(run, gate=False)
    cands = candidates(run, stored)
    unique = {c["arch_id"]: c["genotype"] for c in cands}
    trained = train_all(run, unique, progress)
    rows = measure_all(run, unique, progress)
    scores = {a: accuracy(trained, a, cfg.train_seeds()) for a in unique}

    # join: accuracy, measured and predicted latency, per target
    x = torch.stack([encode_genotype(Genotype.from_json(c["genotype"], cfg.space.ops), cfg.space) for c in cands])
    results = []
    for t in cfg.targets:
        p = stored[t.spec]
        for c, ratio in zip(cands, p.predict_ratio(x).tolist()):
            tr, m = scores[c["arch_id"]], rows.get((t.spec, c["arch_id"]), {})
            ok = m.get("status") == "ok"
            results.append(
                {
                    **c,
                    "target": t.spec,
                    "hardware": p.meta.hardware,
                    **tr,
                    "measured_latency_ratio": m.get(LATENCY_RATIO) if ok else None,
                    MEASURED_MS: m[LATENCY_RATIO] * p.reference_ms if ok else None,
                    "measured_raw_ms": m.get("latency_ms") if ok else None,
                    "measurement_error": None if ok else (m.get("error") or "not measured"),
                    "predicted_latency_ratio": ratio,
                    PREDICTED_MS: ratio * p.reference_ms,
                    "prediction_error": (ratio / m[LATENCY_RATIO] - 1.0) if ok else None,
                }
            )
    write_jsonl(run.stage("evaluate") / "results.jsonl", results)
    print_matrix(cfg, results)
    mark_done(
        run, "evaluate", {"candidates": len(cands), "targets": len(cfg.targets), "wall_s": time.perf_counter() - t0}
    )
    return results


def print_matrix(cfg: RunConfig, results: list[EvaluatedRow]) -> None:
    """One line per candidate: test accuracy, then measured ms on each target."""
    specs = [t.spec for t in cfg.targets]
    by = {(r["name"], r["target"]): r for r in results}
    print(f"[evaluate] {'candidate':<36} {'test acc':>8}  " + "  ".join(f"{s:>24}" for s in specs), flush=True)
    for name in dict.fromkeys(r["name"] for r in results):
        first = by[(name, specs[0])]
        cells = []
        for s in specs:
            ms = by[(name, s)][MEASURED_MS]
            cells.append(f"{'failed' if ms is None else f'{ms:.3f} ms':>24}")
        print(f"[evaluate] {name:<36} {100 * first[TEST_ACC]:7.1f}%  " + "  ".join(cells), flush=True)
