"""What the lookup table misses on ONNX Runtime: its residuals against the node counts of
the graph ONNX Runtime actually runs.

    .venv/bin/python benchmarks/ort_graph_residuals.py [--run runs/bench-targets-long/main] [--archs 160]

Reads a run of ``benchmarks/targets.py`` (its ONNX Runtime rows). The additive table
(``lanas.predictor.fit_additive``: relative-error ridge, as ``lanas fit`` fits it)
is fitted by 5-fold cross-validation with every sharing feature, and without the
FactorizedReduce "shift" one; for ``--archs`` of the rows, the exported network is
optimised by ONNX Runtime (ORT_ENABLE_ALL, the measuring session's options) and the
node types of the optimised graph counted. Recorded: per node type, the Spearman rho
between its count and the out-of-fold log residual log(measured / predicted) of each
table, and both tables' cross-validated MAPE. A count the table does not explain
correlates with its residuals.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np
from common import record

ROOT = Path(__file__).resolve().parents[1]


def optimised_node_counts(genotype_json: str, cfg) -> collections.Counter:
    """Node types of the graph ONNX Runtime runs for the genotype (measuring options, 1 thread)."""
    from lanas.genotype import Genotype
    from lanas.network import Network
    from lanas.runtimes import example_input, graph_nodes
    from lanas.target import Target

    target = Target(runtime="onnxruntime")
    x = example_input(cfg.data.in_channels, cfg.data.resolution, target)
    return graph_nodes(Network(Genotype.from_json(genotype_json), cfg.macro()), x, target)


def out_of_fold(table, x, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """5-fold out-of-fold predictions of ``table`` (a LatencyPredictor without MLP), each
    fold fitted as ``lanas fit`` fits the table (:func:`lanas.predictor.fit_additive`)."""
    import torch
    from sklearn.model_selection import KFold

    from lanas.predictor import fit_additive

    yt = torch.tensor(y, dtype=torch.float32)
    pred = np.empty_like(y)
    for train, test in KFold(5, shuffle=True, random_state=seed).split(y):
        table.set_target_stats(yt[train])
        fit_additive(table, x[train], yt[train])
        pred[test] = table(x[test]).detach().double().numpy()
    return pred


def main() -> None:
    import pandas as pd
    import torch
    from scipy import stats

    from lanas.encoding import sharing_features
    from lanas.predictor import LatencyPredictor
    from lanas_pipeline.rundir import RunDir

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/bench-targets-long/main")
    ap.add_argument("--archs", type=int, default=160)
    args = ap.parse_args()
    t0 = time.perf_counter()
    run = RunDir.existing(ROOT / args.run)
    cfg = run.config
    df = pd.read_parquet(ROOT / args.run / "measure" / "dataset")
    df = df[(df["runtime"] == "onnxruntime") & (df["status"] == "ok")].reset_index(drop=True)
    x = torch.tensor(np.stack(df["encoding"].to_numpy()), dtype=torch.float32)
    y = df["latency_ratio"].to_numpy(float)
    with_shift = LatencyPredictor.for_space(cfg.space, ())
    keep = [i for i, f in enumerate(sharing_features(cfg.space)) if f != (1, "shift")]
    sharing = (with_shift.share_gather, with_shift.share_scatter[:, keep])
    tables = {
        "with shift": with_shift,
        "without shift": LatencyPredictor(with_shift.in_features, (), with_shift.pool, sharing),
    }
    residual = {name: np.log(y / out_of_fold(t, x, y)) for name, t in tables.items()}
    mape = {name: float(np.mean(np.abs(np.exp(-r) - 1))) for name, r in residual.items()}
    pick = np.random.default_rng(0).choice(len(df), size=min(args.archs, len(df)), replace=False)
    counts = [optimised_node_counts(df["genotype"][i], cfg) for i in pick]
    node_types = sorted(set().union(*counts))
    rho = {}
    for op in node_types:
        c = np.array([n.get(op, 0) for n in counts], float)
        if c.std() > 0:
            rho[op] = {
                "mean_count": float(c.mean()),
                **{name: float(stats.spearmanr(c, r[pick]).statistic) for name, r in residual.items()},
            }
    print(f"cross-validated MAPE of the table, {len(df)} ONNX Runtime rows: "
          + ", ".join(f"{k} {v:.2%}" for k, v in mape.items()))  # fmt: skip
    print(f"Spearman rho of the optimised graph's node counts with the log residuals ({len(pick)} architectures):")
    for op, r in sorted(rho.items(), key=lambda kv: -abs(kv[1]["without shift"])):
        print(f"  {op:16s} mean {r['mean_count']:6.1f}  without shift {r['without shift']:+.3f}  "
              f"with shift {r['with shift']:+.3f}")  # fmt: skip
    record(
        "ort_graph_residuals",
        {
            "run": args.run,
            "rows": len(df),
            "archs": len(pick),
            "mape": mape,
            "rho": rho,
            "wall_s": time.perf_counter() - t0,
        },  # fmt: skip
        f".venv/bin/python benchmarks/ort_graph_residuals.py --run {args.run} --archs {args.archs}",
    )


if __name__ == "__main__":
    main()
