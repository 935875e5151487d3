"""Predictor quality on a demo-profile dataset measured by stage 1 on this machine.

    .venv/bin/python benchmarks/predictor_quality.py [--archs 2000] [--noise-archs 100]

Measures (or resumes) --archs architectures with `lanas measure` into
runs/bench-predictor, re-measures --noise-archs of them in a second run directory for
the noise floor, then fits the shipped predictor (lanas.predictor, the demo profile's
settings) and every baseline on the same arch_id-hash split as `lanas fit`, and a
learning curve (test MAPE against the number of training rows). The predictor is
trained in-process here (the model, not Ray Train, is what is benchmarked).
Targets: MAPE <= 5 % (stretch 3 %), >= 95 % within +-10 %, tau >= 0.9, no worse than the
best baseline.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from common import RESULTS, record

from lanas import quality
from lanas.encoding import group_matrix
from lanas.genotype import Genotype
from lanas.predictor import LatencyPredictor, train_predictor
from lanas_pipeline import dataset as ds
from lanas_pipeline.config import load_config
from lanas_pipeline.fit.data import split_of
from lanas_pipeline.measure import measure_jsonl_path, run_measure
from lanas_pipeline.ray_env import init_ray
from lanas_pipeline.rows import dataset_dir
from lanas_pipeline.rundir import RunDir


def arrays(rows):
    x = torch.tensor(np.stack([r["encoding"] for r in rows]), dtype=torch.float32)
    y = torch.tensor([r["latency_ratio"] for r in rows], dtype=torch.float32)
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--archs", type=int, default=2000)
    ap.add_argument("--noise-archs", type=int, default=100)
    ap.add_argument("--run-dir", default="runs/bench-predictor")
    ap.add_argument("--target", default="cpu-t1-torch-b1", help="the target measured and fitted")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config, {"name": "bench-predictor"})
    init_ray(num_cpus=2)
    run = RunDir.open(args.run_dir, cfg)
    run_measure(run, num_archs=args.archs, progress=True, target=args.target)
    rows = [r for r in ds.read_table(dataset_dir(run), run.hardware_id(args.target)).to_pylist() if r["status"] == "ok"]
    # noise floor: re-measure some of the same architectures in a second run directory
    again = RunDir.open(f"{args.run_dir}-again", cfg)
    subset = [Genotype.from_json(r["genotype"]) for r in rows[: args.noise_archs]]
    gfile = measure_jsonl_path(again, subset)
    run_measure(again, genotypes_file=str(gfile), progress=False, target=args.target)
    first = {r["arch_id"]: r for r in rows}
    second = [
        r for r in ds.read_table(dataset_dir(again), again.hardware_id(args.target)).to_pylist() if r["status"] == "ok"
    ]
    noise = statistics.median(abs(r["latency_ratio"] / first[r["arch_id"]]["latency_ratio"] - 1) for r in second)

    fit = cfg.fit
    split = {
        k: [r for r in rows if split_of(r["arch_id"], fit.val_fraction, fit.test_fraction) == k]
        for k in ("train", "val", "test")
    }
    (xtr, ytr), (xva, yva), (xte, yte) = (arrays(split[k]) for k in ("train", "val", "test"))
    groups = group_matrix(cfg.space)
    ref_ms = statistics.median(r["ref_latency_ms"] for r in rows)

    def fit_all(n: int) -> dict[str, dict]:
        xs, ys = xtr[:n], ytr[:n]
        torch.manual_seed(cfg.seed)
        p = LatencyPredictor.for_space(cfg.space, fit.model.hidden)
        train_predictor(p, (xs, ys), (xva, yva), fit.model, seed=cfg.seed)
        with torch.no_grad():
            preds = {"predictor": p(xte).numpy()}
        preds["lut"] = quality.fit_lut(xs.numpy(), ys.numpy()).predict(xte.numpy())
        preds["lut_op"] = quality.fit_lut((xs @ groups).numpy(), ys.numpy()).predict((xte @ groups).numpy())
        preds["trees"] = quality.fit_trees(xs.numpy(), ys.numpy(), cfg.seed).predict(xte.numpy())
        return {k: quality.regression_metrics(v, yte.numpy(), ref_ms) for k, v in preds.items()}

    full = fit_all(len(xtr))
    macro, res = cfg.macro(), cfg.data.resolution
    sample = np.random.default_rng(0).choice(len(split["train"]), size=min(500, len(split["train"])), replace=False)
    flops_tr = [quality.network_flops(Genotype.from_json(split["train"][i]["genotype"]), macro, res) for i in sample]
    slope, icpt = quality.fit_flops(flops_tr, ytr.numpy()[sample])
    flops_te = np.array([quality.network_flops(Genotype.from_json(r["genotype"]), macro, res) for r in split["test"]])
    full["flops"] = quality.regression_metrics(slope * flops_te + icpt, yte.numpy(), ref_ms)
    sizes = [n for n in (50, 100, 200, 400, 800, 1600) if n < len(xtr)] + [len(xtr)]
    curve = {}
    for n in sizes:
        m = fit_all(n)
        curve[n] = {k: m[k]["mape"] for k in ("predictor", "lut", "lut_op", "trees")}
        print(f"train rows {n:5d}: " + ", ".join(f"{k} {v:.2%}" for k, v in curve[n].items()), flush=True)

    lines = [
        f"# Predictor quality, demo profile ({len(rows)} architectures measured here)",
        "",
        f"Split by arch_id hash: train {len(xtr)}, val {len(xva)}, test {len(xte)}. Noise floor (median relative "
        f"difference of {len(second)} re-measured architectures, normalised latency): {noise:.2%}.",
        "",
        "| model | MAPE | within +-10% | Kendall tau |",
        "|---|---|---|---|",
    ]
    for k, v in full.items():
        lines.append(f"| {k} | {v['mape']:.2%} | {v['within_10pct']:.1%} | {v['kendall_tau']:.3f} |")
    lines += [
        "",
        "Learning curve (test MAPE):",
        "",
        "| train rows | predictor | lut | lut_op | trees |",
        "|---|---|---|---|---|",
    ]
    for n, v in curve.items():
        lines.append(f"| {n} | {v['predictor']:.2%} | {v['lut']:.2%} | {v['lut_op']:.2%} | {v['trees']:.2%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (RESULTS / "predictor_quality.md").write_text(text)
    record(
        "predictor_quality",
        {
            "rows": len(rows),
            "split": {k: len(v) for k, v in split.items()},
            "noise_floor": noise,
            "test": full,
            "learning_curve": curve,
            "targets": {"mape": "<= 0.05 (stretch 0.03)", "within_10pct": ">= 0.95", "kendall_tau": ">= 0.9"},
        },
        f"python benchmarks/predictor_quality.py --archs {args.archs} --noise-archs {args.noise_archs}",
    )


if __name__ == "__main__":
    main()
