"""Does the lookup table need to know which two ops share a node? The additive table with
and without per-node op-pair counts, on the same measured rows.

    .venv/bin/python benchmarks/predictor_node_pairs.py [--runs runs/bench-targets-long-b3/main ...] [--seeds 5]

A cell node is ``op_a(x_i) + op_b(x_j)``. A compiled graph may fuse the add into the
last convolution (a sum post-op) or into a fused element-wise subgraph, depending on
what the two ops are: OpenVINO's per-architecture count of Eltwise and Subgraph nodes
is the one the table's features do not explain (``benchmarks/README.md``, the
nodes-per-kind rows). The candidate feature, per cell type and unordered op pair
(a, b): how many nodes combine a and b, computed from the encoding as the sum over a
node's pairs of distinct incoming edges of ``x_e[a] * x_e'[b]`` -- exact on a genotype,
smooth in relaxed weights, so a search could use it.

Per run and runtime, 5-fold cross-validation over the random rows (uniform and
coverage), repeated over ``--seeds`` fold assignments, of a relative-error ridge
(scikit-learn's RidgeCV, rows weighted by 1 / y^2, as ``lanas.predictor.fit_additive``)
on the pipeline's table features (``LatencyPredictor.for_space``: op counts per edge
group and the sharing features) with and without the pair counts; scored on the
held-out uniform and coverage rows and on the published genotypes (fitted on every
fold's rows, averaged). MAPE and Kendall tau of each, and the paired bootstrap interval
of the per-architecture |error| difference (pairs - plain; below 0: the pairs help).
A finding, not adopted: the pipeline's table has no pair features.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record  # noqa: E402
from predictor_sharing import cross_fitted, rows, scored_sets, table_row  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ARMS = ("plain", "pairs")
ALPHAS = tuple(10.0**k for k in range(-3, 5))


def node_pairs(x: np.ndarray, k: int) -> np.ndarray:
    """``[N, 2 * K(K+1)/2]``: per cell type and unordered op pair, the nodes whose two
    incoming edges carry that pair (relaxed encodings: the sum over a node's pairs of
    distinct edges of the product of their op masses)."""
    from lanas.topology import CELL_TYPES, NODES, NUM_EDGES, node_edges

    w = x.reshape(len(x), len(CELL_TYPES), NUM_EDGES, k)
    upper = np.triu_indices(k)
    out = []
    for c in range(len(CELL_TYPES)):
        m = np.zeros((len(x), k, k))
        for node in NODES:
            e = w[:, c, node_edges(node)]  # [N, edges, K]
            s = e.sum(1)
            m += s[:, :, None] * s[:, None, :] - np.einsum("nek,nel->nkl", e, e)  # ordered pairs of distinct edges
        m[:, range(k), range(k)] /= 2  # symmetric: a != b once above the diagonal, a == b twice on it
        out.append(m[:, upper[0], upper[1]])
    return np.concatenate(out, axis=1)


def features(x, space) -> dict[str, np.ndarray]:
    import torch

    from lanas.predictor import LatencyPredictor

    table = LatencyPredictor.for_space(space, ()).table_features(torch.as_tensor(x, dtype=torch.float32))
    table = table.double().numpy()
    return {"plain": table, "pairs": np.column_stack([table, node_pairs(x, len(space.ops))])}


def evaluate(rand, ood, space, seeds: int):
    """Per arm: predictions on the random rows (out of fold) and on the other rows (every
    fold's fit, averaged), per seed (:func:`predictor_sharing.cross_fitted`)."""
    from sklearn.linear_model import RidgeCV

    xr, yr = np.stack(rand["encoding"].to_numpy()), rand["latency_ratio"].to_numpy(float)
    fr = features(xr, space)
    fo = features(np.stack(ood["encoding"].to_numpy()), space) if len(ood) else None

    def fit(arm, tr):
        model = RidgeCV(alphas=ALPHAS).fit(fr[arm][tr], yr[tr], sample_weight=1.0 / yr[tr] ** 2)
        return lambda te: model.predict(fr[arm][te]), lambda: model.predict(fo[arm])

    return cross_fitted(yr, len(ood), seeds, ARMS, fit)


def main() -> None:
    from pipeline.config import load_config

    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--runs",
        nargs="+",
        default=["runs/bench-targets-long-b3/main", "runs/bench-heldout-long-b3", "runs/bench-targets-b3/main"],
    )
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = {}
    lines = [
        "| run | runtime | set | n | MAPE plain | MAPE pairs | tau plain | tau pairs | pairs - plain [95 % CI] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in args.runs:
        run_dir = ROOT / run
        space = load_config(run_dir / "config.yaml").space
        for runtime, (rand, ood) in rows(run_dir).items():
            pred = evaluate(rand, ood, space, args.seeds)
            cell = scored_sets(rand, ood, pred, args.seeds, "pairs", "plain")
            for name, c in cell.items():
                lines.append(table_row(run, runtime, name, c, "pairs", "plain"))
                print(lines[-1], flush=True)
            results[f"{run} | {runtime}"] = cell
    record(
        "predictor_node_pairs",
        {"runs": args.runs, "seeds": args.seeds, "wall_s": time.perf_counter() - t0, "cells": results},
        f".venv/bin/python benchmarks/predictor_node_pairs.py --runs {' '.join(args.runs)} --seeds {args.seeds}",
    )


if __name__ == "__main__":
    main()
