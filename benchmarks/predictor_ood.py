"""Is the predictor right where the search goes? Uniform vs coverage sampling, 0-2 closed-loop rounds.

    .venv/bin/python benchmarks/predictor_ood.py [--runs runs/bench-ood] [--rounds 2] [--samplers uniform coverage]

For each sampler, a demo-profile run (``configs/demo.yaml``: both CPU targets, the same
measurement budget: 200 random architectures + the 3 published genotypes, then the
architectures each search round derives) with ``search.rounds: 2``: ``lanas measure``,
``lanas fit``, ``lanas search``. ``uniform`` draws all 200 uniformly; ``coverage`` draws
half of them from per-cell Dirichlet(0.3) op mixtures. The search's closed loop scores
the predictor of every round (0 = the plain pipeline, 1, 2 = after one / two refits with
the derived architectures) in ``search/rounds.jsonl``; this script collects per sampler,
round and target: (a) MAPE on the random test split (uniform samples), (b) mean
|predicted/measured - 1| on the architectures derived at every lambda, (c) MAPE on the
published genotypes, and the shipped predictor against the best baseline on (a).

``--measured-from DIR`` starts each run from the stage-1 rows of an earlier recording
(``DIR/<sampler>``: its random and published rows; the rows its search rounds derived
are dropped), so a change to fit or search is compared on the same measurements.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml
from common import lanas, record

ROOT = Path(__file__).resolve().parents[1]
SHARES = {"uniform": 0.0, "coverage": 0.5}


def config_for(runs: Path, sampler: str, rounds: int) -> Path:
    data = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    data["name"] = f"ood-{sampler}"
    data["measure"]["sampling"] = {"coverage_share": SHARES[sampler], "concentration": 0.3}
    data["search"]["rounds"] = rounds
    path = runs / f"{sampler}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def reuse_measured(source: Path, run: Path) -> None:
    """Copy ``source``'s run files and stage-1 dataset into ``run``, without the shards
    of derived architectures (each shard holds rows of one origin)."""
    import pyarrow.parquet as pq

    for name in ("config.yaml", "manifest.json"):
        shutil.copy(source / name, run / name)
    shutil.copytree(source / "measure", run / "measure", ignore=shutil.ignore_patterns("tmp"))
    for shard in (run / "measure").rglob("*.parquet"):
        if "derived" in set(pq.read_table(shard, columns=["sampler"]).column("sampler").to_pylist()):
            shard.unlink()


def run_one(runs: Path, sampler: str, rounds: int) -> dict:
    config, run = config_for(runs, sampler, rounds), runs / sampler
    walls = {}
    for stage in ("measure", "fit", "search"):
        print(f"[{sampler}] lanas {stage} ...", flush=True)
        walls[stage] = round(lanas(stage, "--config", str(config), "--run-dir", str(run)), 1)
    lines = [json.loads(x) for x in (run / "search" / "rounds.jsonl").read_text().splitlines() if x.strip()]
    return {"wall_s": walls, "rounds": lines}


def intervals(run: Path, rounds: int) -> list[dict]:
    """95 % bootstrap intervals of (b) and (c) per round and target. Rebuilds each round's
    predictor from the run's stage-1 dataset (rows of the training split, plus the derived
    rows of earlier rounds) -- possible because model selection chose the closed-form
    additive table in every cell; each rebuilt predictor must reproduce the recorded MAPE."""
    import numpy as np
    import pandas as pd
    import torch

    from lanas.predictor import additive_predictor
    from lanas.quality import paired_bootstrap
    from lanas_pipeline.closed_loop import results_path
    from lanas_pipeline.fit.data import split_row
    from lanas_pipeline.rundir import RunDir, read_jsonl

    rd = RunDir.existing(run)
    cfg = rd.config
    df = pd.read_parquet(run / "measure" / "dataset")
    df = df[df["status"] == "ok"].assign(sampler=lambda d: d["sampler"].fillna("uniform"))
    logged = {(x["round"], x["target"]): x for x in read_jsonl(run / "search" / "rounds.jsonl")}
    out = []
    for t in cfg.targets:
        d = df[df["hardware"] == rd.hardware_id(t.spec)]
        d = d.assign(split=[split_row(a, k, cfg.fit.test_fraction) for a, k in zip(d["arch_id"], d["sampler"])])
        for r in range(rounds + 1):
            x = logged[(r, t.spec)]
            if x["model"] != "additive":
                continue
            train = d[(d["split"] == "train") & ((d["sampler"] != "derived") | (d["round"] < r))]
            y = torch.tensor(train["latency_ratio"].to_numpy(), dtype=torch.float32)
            model = additive_predictor(cfg.space, torch.tensor(np.stack(train["encoding"])), y)
            derived = {row["arch_id"] for row in read_jsonl(results_path(rd, r))}
            e_b, e_c = _errors(model, d[d["arch_id"].isin(derived)]), _errors(model, d[d["sampler"] == "published"])
            assert abs(e_b.mean() - x["mape"]) < 1e-4, (run, r, t.spec, e_b.mean(), x["mape"])  # the same predictor
            ci = lambda e: paired_bootstrap(e, np.zeros_like(e), seed=0)  # noqa: E731 - interval of the mean
            b, c = ci(e_b), ci(e_c)
            out.append({"round": r, "target": t.spec, "derived": [b["mean"], b["lo"], b["hi"], len(e_b)],
                        "published": [c["mean"], c["lo"], c["hi"], len(e_c)]})  # fmt: skip
    return out


def _errors(model, frame):
    import numpy as np
    import torch

    with torch.no_grad():
        p = model(torch.tensor(np.stack(frame["encoding"]))).double().numpy()
    return np.abs(p / frame["latency_ratio"].to_numpy() - 1)


def table(results: dict) -> str:
    out = [
        "| sampler | round | target | train rows | chosen | (a) random test | best baseline (a) | "
        "(b) derived [95 % CI] (n, measured before) | (c) published [95 % CI] | coverage test | CV |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sampler, res in results.items():
        ci = {(x["round"], x["target"]): x for x in res.get("intervals", [])}
        for x in res["rounds"]:
            c = ci.get((x["round"], x["target"]), {})
            out.append(
                f"| {sampler} | {x['round']} | {x['target']} | {x['train_rows']} | {x['model']} | "
                f"{x['test_mape']:.2%} | {x['best_baseline']} {x['best_baseline_test_mape']:.2%} | "
                f"{x['mape']:.2%} {_ci(c.get('derived'))} ({x['n']}, {x['measured_before']}) | "
                f"{_pct(x['published_mape'])} {_ci(c.get('published'))} | {_pct(x['coverage_test_mape'])} | "
                f"{x['cv_mape']:.2%} |"
            )
    return "\n".join(out)


def _ci(x: list | None) -> str:
    return "" if not x else f"[{x[1]:.1%}, {x[2]:.1%}]"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/bench-ood")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--samplers", nargs="+", default=list(SHARES), choices=list(SHARES))
    ap.add_argument("--measured-from", help="an earlier --runs folder whose stage-1 rows to start from")
    args = ap.parse_args()
    runs = (ROOT / args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    if args.measured_from:
        for s in args.samplers:
            (runs / s).mkdir(exist_ok=True)
            reuse_measured((ROOT / args.measured_from).resolve() / s, runs / s)
    results = {s: run_one(runs, s, args.rounds) for s in args.samplers}
    for s in args.samplers:
        results[s]["intervals"] = intervals(runs / s, args.rounds)
    text = table(results)
    print(text)
    (ROOT / "benchmarks/results/predictor_ood.md").write_text(text + "\n")
    command = f"python benchmarks/predictor_ood.py --runs {args.runs} --rounds {args.rounds}" + (
        f" --measured-from {args.measured_from}" if args.measured_from else ""
    )
    record("predictor_ood", {"samplers": SHARES, "results": results}, command)


if __name__ == "__main__":
    main()
