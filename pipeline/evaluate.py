"""Stage 4 -- ``lanas evaluate``: train each candidate from scratch, then measure it.

Candidates: every derived genotype of the sweep (lambda = 0 among them when in the
grid), the published genotypes whose ops the space has, and ``evaluate.random_archs``
random architectures as a reference cloud. Phase 1 trains them in parallel Ray tasks
(``evaluate.resources``); phase 2, after all training has finished, measures their real
latency with the stage-1 task, protocol and resources (so no training runs beside a
timing), into ``evaluate/latency/`` -- a dataset of the stage-1 schema. Both phases
append as results arrive and skip what is already there on a re-run.
"""
from __future__ import annotations

import json
import time
from typing import Any

import torch

from lanas.data import load_splits, loader
from lanas.encoding import encode_genotype
from lanas.genotype import PUBLISHED, Genotype, published
from lanas.network import Network
from lanas.train import evaluate as evaluate_net
from lanas.train import train_network
from pipeline import dataset as ds
from pipeline.config import RunConfig
from pipeline.fit import load_checked
from pipeline.measure import measure_genotypes, setting_key
from pipeline.rundir import RunDir, read_jsonl, write_jsonl

RANDOM_SEED_OFFSET = 10_000  # random reference architectures use seed + this


def candidates(run: RunDir) -> list[dict[str, Any]]:
    cfg = run.config
    out = [{"name": f"lambda={r['lam']:g} seed={r['seed']}", "kind": "searched", "lam": r["lam"], "seed": r["seed"],
            "genotype": r["genotype"]} for r in run.stage_results("search")]
    if cfg.evaluate.published:
        for name in PUBLISHED:
            g = published(name)
            if all(op in cfg.space.ops for op, _ in g.normal + g.reduce):
                out.append({"name": name, "kind": "published", "lam": None, "seed": None, "genotype": g.to_json()})
    for i, g in enumerate(cfg.space.sample_unique(cfg.evaluate.random_archs, cfg.seed + RANDOM_SEED_OFFSET)
                          if cfg.evaluate.random_archs else []):
        out.append({"name": f"random-{i}", "kind": "random", "lam": None, "seed": None, "genotype": g.to_json()})
    for c in out:
        c["arch_id"] = Genotype.from_json(c["genotype"], cfg.space.ops).arch_id
    return out


def train_candidate(genotype_json: str, cfg: RunConfig) -> dict[str, Any]:
    """Inside a Ray task: train from scratch on the train split, score on val and test."""
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, int(cfg.evaluate.resources.num_cpus)))
    device = "cuda" if cfg.evaluate.resources.num_gpus > 0 and torch.cuda.is_available() else "cpu"
    g = Genotype.from_json(genotype_json, cfg.space.ops)
    splits = load_splits(cfg.data)
    torch.manual_seed(cfg.seed)
    net = Network(g, cfg.macro())
    s = cfg.evaluate.train
    metrics = train_network(net, loader(splits.train, s.batch_size, True, cfg.seed), s, device)
    val_acc, _ = evaluate_net(net, loader(splits.val, 512, False), device)
    test_acc, test_loss = evaluate_net(net, loader(splits.test, 512, False), device)
    return {"arch_id": g.arch_id, "test_acc": test_acc, "test_loss": test_loss, "val_acc": val_acc,
            "train_acc": metrics["train_acc"], "params": sum(p.numel() for p in net.parameters()),
            "train_s": time.perf_counter() - t0}


def run_evaluate(run: RunDir, progress: bool = True) -> list[dict[str, Any]]:
    import ray
    from tqdm import tqdm

    cfg = run.config
    t0 = time.perf_counter()
    stored = load_checked(run, gate=False)
    hw = stored.meta["hardware"]
    folder = run.stage("evaluate")
    cands = candidates(run)
    unique = {c["arch_id"]: c["genotype"] for c in cands}

    # phase 1: training, in parallel
    trained_file = folder / "trained.jsonl"
    trained = {r["arch_id"]: r for r in read_jsonl(trained_file)}
    todo = [a for a in unique if a not in trained]
    print(f"[evaluate] {len(cands)} candidates ({len(unique)} distinct architectures); training {len(todo)} "
          f"for {cfg.evaluate.train.epochs} epochs, {len(trained)} already trained", flush=True)
    task = ray.remote(train_candidate).options(name="evaluate.train", max_retries=2, **cfg.evaluate.resources.ray_options())
    pending = {task.remote(unique[a], cfg): a for a in todo}
    bar = tqdm(total=len(todo), unit="arch", desc="evaluate.train", disable=not progress)
    with trained_file.open("a", encoding="utf-8") as fh:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            r = ray.get(done[0])
            pending.pop(done[0])
            trained[r["arch_id"]] = r
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            bar.update(1)
    bar.close()

    # phase 2: real latency, with the stage-1 protocol, after training has finished
    lat_root = folder / "latency"
    key = (hw, *setting_key(cfg))
    have = ds.measured_keys(lat_root)
    to_measure = [Genotype.from_json(unique[a], cfg.space.ops) for a in unique if (*key, a) not in have]
    if to_measure:
        print(f"[evaluate] measuring the real latency of {len(to_measure)} architectures on {hw}", flush=True)
        mtask = ray.remote(measure_genotypes).options(name=f"evaluate.measure[{hw}]", max_retries=cfg.measure.max_retries,
                                                      **cfg.measure.resources.ray_options())
        size = cfg.measure.chunk_size
        refs = [mtask.remote(to_measure[i : i + size], cfg.space, cfg.macro(), cfg.measure.protocol, cfg.seed)
                for i in range(0, len(to_measure), size)]
        while refs:
            done, refs = ray.wait(refs, num_returns=1)
            out = ray.get(done[0])
            ds.write_shard(lat_root, out["hardware"], out["rows"], folder / "tmp")
    rows = {r["arch_id"]: r for r in ds.read_table(lat_root, hw).to_pylist() if ds.setting_of(r) == setting_key(cfg)}

    # join: accuracy, measured and predicted latency
    ref_ms = stored.reference_ms
    x = torch.stack([encode_genotype(Genotype.from_json(c["genotype"], cfg.space.ops), cfg.space) for c in cands])
    predicted = stored.predict_ratio(x).tolist()
    results = []
    for c, p in zip(cands, predicted):
        t, m = trained[c["arch_id"]], rows.get(c["arch_id"], {})
        ok = m.get("status") == "ok"
        results.append({**c, **{k: t[k] for k in ("test_acc", "val_acc", "train_acc", "params")},
                        "measured_latency_ratio": m.get("latency_ratio") if ok else None,
                        "measured_latency_ms": m["latency_ratio"] * ref_ms if ok else None,
                        "measured_raw_ms": m.get("latency_ms") if ok else None,
                        "measurement_error": None if ok else (m.get("error") or "not measured"),
                        "predicted_latency_ratio": p, "predicted_latency_ms": p * ref_ms,
                        "prediction_error": (p / m["latency_ratio"] - 1.0) if ok else None})
    write_jsonl(folder / "results.jsonl", results)
    for r in results:
        lat = f"{r['measured_latency_ms']:.3f} ms" if r["measured_latency_ms"] is not None else "failed"
        print(f"[evaluate] {r['name']:<22} test acc {r['test_acc']:.3f}  measured {lat}  "
              f"predicted {r['predicted_latency_ms']:.3f} ms", flush=True)
    run.mark_done("evaluate", {"candidates": len(results), "wall_s": time.perf_counter() - t0})
    return results

