"""Does the lookup table need to know what a compiled graph merges, or which ops repeat?
The additive table with and without the sharing features (``--compare sharing``, the
default) or with and without the repeat features on top of them (``--compare repeats``),
on the same measured rows.

    .venv/bin/python benchmarks/predictor_sharing.py [--runs runs/bench-peers runs/demo] [--seeds 5]
    .venv/bin/python benchmarks/predictor_sharing.py --compare repeats --runs RUN [RUN ...]

Reads finished runs (``benchmarks/peers.py`` makes ``runs/bench-peers``, ``make demo``
makes ``runs/demo``; both measure 100 uniform + 100 coverage random architectures of the
demo network on eager PyTorch and ONNX Runtime). Per run and target, the pipeline's
additive table (``lanas.predictor.additive_predictor``, relative-error ridge) is fitted
with the features compared on and off by 5-fold cross-validation over the random rows,
repeated over ``--seeds`` fold assignments, and scored on

* (a) the held-out uniform rows, and the held-out coverage rows;
* (b) the architectures searches derived (the measure stage's ``derived`` rows and the
  evaluate stage's latency rows: every method, lambda and seed), none of them fitted on;
* (c) the published genotypes;

MAPE and Kendall tau of each, and the paired bootstrap interval of the per-architecture
|error| difference (sharing - plain, or repeats - sharing; below 0: the first is better).
Recorded as ``results/predictor_<compare>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import record

ROOT = Path(__file__).resolve().parents[1]
FOLDS = 5
TABLES = {"plain": (False, False), "sharing": (True, False), "repeats": (True, True)}  # (sharing, repeats)
COMPARE = {"sharing": ("sharing", "plain"), "repeats": ("repeats", "sharing")}  # (with, without)


def rows(run_dir: Path):
    """runtime -> (random frame, out-of-distribution frame) of one finished run."""
    import pandas as pd

    measured = pd.read_parquet(run_dir / "measure" / "dataset")
    frames = [measured]
    if (run_dir / "evaluate" / "latency").is_dir():
        frames.append(pd.read_parquet(run_dir / "evaluate" / "latency"))
    df = pd.concat(frames, ignore_index=True)
    df = df[(df["status"] == "ok") & np.isfinite(df["latency_ratio"]) & (df["latency_ratio"] > 0)]
    out = {}
    for runtime, d in df.groupby("runtime"):
        rand = d[d["sampler"].isin(["uniform", "coverage"])].drop_duplicates("arch_id")
        ood = d[~d["arch_id"].isin(set(rand["arch_id"]))].copy()
        ood["set"] = np.where(ood["sampler"] == "published", "published", "derived")
        ood = ood.groupby("arch_id", as_index=False).agg(
            {"latency_ratio": "median", "encoding": "first", "set": "first"}
        )  # an architecture measured in both stages: the median of its ratios
        out[runtime] = (rand.reset_index(drop=True), ood)
    return out


SETS = ("uniform", "coverage", "derived", "published")


def scored_sets(rand, ood, pred, seeds: int, new: str, old: str) -> dict[str, dict]:
    """Per set (the held-out uniform and coverage rows, the derived and the published
    architectures; a set without rows is left out): its size, each arm's MAPE and Kendall
    tau (per seed, then their mean), and the paired bootstrap interval of the
    per-architecture |error| (averaged over seeds) of ``new`` minus ``old``, with its
    verdict. ``pred``: arm -> {"random": [seeds, len(rand)], "ood": [seeds, len(ood)]}."""
    from lanas import quality

    out = {}
    for name in SETS:
        if name in ("uniform", "coverage"):
            part, frame, where = (rand["sampler"] == name).to_numpy(), rand, "random"
        else:
            part, frame, where = (ood["set"] == name).to_numpy() if len(ood) else np.zeros(0, bool), ood, "ood"
        y, p = frame["latency_ratio"].to_numpy(float)[part], {a: pred[a][where][:, part] for a in (new, old)}
        if len(y) == 0:
            continue
        m = {a: [quality.regression_metrics(p[a][k], y) for k in range(seeds)] for a in p}
        err = {a: np.abs(p[a] / y - 1).mean(0) for a in p}
        diff = quality.paired_bootstrap(err[new], err[old], seed=0)
        out[name] = {
            "n": int(len(y)),
            **{f"{q}_{a}": float(np.mean([v[q] for v in m[a]])) for a in m for q in ("mape", "kendall_tau")},
            f"{new}_minus_{old}": diff,
            "verdict": quality.verdict(diff),
        }
    return out


def table_row(run: str, runtime: str, name: str, c: dict, new: str, old: str) -> str:
    """One markdown row of :func:`scored_sets`' cell ``c``: old and new side by side."""
    d = c[f"{new}_minus_{old}"]
    return (
        f"| {run} | {runtime} | {name} | {c['n']} | {c[f'mape_{old}']:.2%} | {c[f'mape_{new}']:.2%} | "
        f"{c[f'kendall_tau_{old}']:.3f} | {c[f'kendall_tau_{new}']:.3f} | "
        f"{d['mean']:+.2%} [{d['lo']:+.2%}, {d['hi']:+.2%}] ({c['verdict']}) |"
    )


def cross_fitted(y: np.ndarray, n_ood: int, seeds: int, arms, fit) -> dict[str, dict[str, np.ndarray]]:
    """Per arm, per seed: out-of-fold predictions on the ``y`` rows (:data:`FOLDS` folds,
    shuffled by the seed) and, on the ``n_ood`` other rows, every fold's prediction
    averaged. ``fit(arm, train_mask)`` fits one arm on those rows and returns
    ``(predict_rows(mask), predict_ood())``."""
    pred = {a: {"random": np.zeros((seeds, len(y))), "ood": np.zeros((seeds, n_ood))} for a in arms}
    for seed in range(seeds):
        fold = np.random.default_rng(seed).permutation(len(y)) % FOLDS
        for f in range(FOLDS):
            tr, te = fold != f, fold == f
            for arm in arms:
                predict_rows, predict_ood = fit(arm, tr)
                pred[arm]["random"][seed, te] = predict_rows(te)
                if n_ood:
                    pred[arm]["ood"][seed] += predict_ood() / FOLDS
    return pred


def evaluate(rand, ood, space, seeds: int, arms: tuple[str, str]):
    """Per-row predictions of both tables (``arms``, of :data:`TABLES`) on every set
    (:func:`cross_fitted`)."""
    import torch

    from lanas.predictor import additive_predictor

    xr = torch.tensor(np.stack(rand["encoding"].to_numpy()), dtype=torch.float32)
    yr = rand["latency_ratio"].to_numpy(float)
    xo = torch.tensor(np.stack(ood["encoding"].to_numpy()), dtype=torch.float32) if len(ood) else None

    def fit(arm, tr):
        model = additive_predictor(space, xr[tr], torch.as_tensor(yr[tr], dtype=torch.float32), *TABLES[arm])

        def predict(x):
            with torch.no_grad():
                return model(x).double().numpy()

        return lambda te: predict(xr[te]), lambda: predict(xo)

    return cross_fitted(yr, len(ood), seeds, arms, fit)


def main() -> None:
    from lanas_pipeline.config import load_config

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="+", default=["runs/bench-peers", "runs/demo"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--compare", choices=tuple(COMPARE), default="sharing")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = {}
    on, off = COMPARE[args.compare]
    head = f"| run | runtime | set | n | MAPE {off} | MAPE {on} | tau {off} | tau {on} | {on} - {off} [95 % CI] |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for run in args.runs:
        run_dir = ROOT / run
        space = load_config(run_dir / "config.yaml").space
        for runtime, (rand, ood) in rows(run_dir).items():
            pred = evaluate(rand, ood, space, args.seeds, (on, off))
            cell = scored_sets(rand, ood, pred, args.seeds, on, off)
            lines += [table_row(run, runtime, name, c, on, off) for name, c in cell.items()]
            results[f"{run} | {runtime}"] = cell
    print("\n".join(lines))
    name = f"predictor_{args.compare}"
    (ROOT / "benchmarks" / "results" / f"{name}.md").write_text("\n".join(lines) + "\n")
    record(
        name,
        {
            "compared": [on, off],
            "runs": args.runs,
            "seeds": args.seeds,
            "folds": FOLDS,
            "wall_s": time.perf_counter() - t0,
            "results": results,
        },  # fmt: skip
        f".venv/bin/python benchmarks/predictor_sharing.py --runs {' '.join(args.runs)} --seeds {args.seeds}"
        + (f" --compare {args.compare}" if args.compare != "sharing" else ""),
    )


if __name__ == "__main__":
    main()
