"""Do cleaner labels on the K picks help the transfer? Measured twice vs once.

    .venv/bin/python benchmarks/transfer_labels.py [--run runs/bench-targets-long-b3/main] [--k 20] [--repeats 10]

Reads the run of ``benchmarks/targets.py`` like ``transfer.py``, and its sibling
``repeat`` run, which measured the run's first architectures a second time. For every
ordered pair (SRC -> NEW) and ``--repeats`` repeats, K architectures are picked by
lanas.transfer.select_diverse from a random 80 % of the twice-measured ones, and
lanas.transfer.fit is fitted twice on the same picks: on the first measurement alone
(``once``) and on the mean of both (``twice``: the label noise's variance halved). Both
are scored on NEW's rows that were measured once (none of the pool), against their one
label. Records per pair the mean MAPE and Kendall tau of each and the paired tau
difference (twice - once) with a 95 % t-interval over the repeats.

What it answers: whether the K measurements a new target gets are worth measuring more
carefully than the thousands a target is fitted on from scratch.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record, t_half_width  # noqa: E402
from targets import ratios  # noqa: E402
from transfer import load, target_graph_costs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def interval(d: np.ndarray) -> list[float]:
    half = t_half_width(d)
    return [float(d.mean() - half), float(d.mean() + half)]


def main() -> None:
    from lanas import quality, transfer
    from lanas.costs import op_costs
    from pipeline.rundir import RunDir

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/bench-targets-long-b3/main")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--name", default="transfer_labels", help="recorded as results/<name>.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    run, data = load(ROOT / args.run)
    cfg = run.config
    again = ratios(RunDir.existing(ROOT / Path(args.run).parent / "repeat"))
    per_op = op_costs(cfg.space, cfg.macro(), cfg.data.resolution)
    graphs = target_graph_costs(cfg, data)[0]
    pairs = {}
    for src_spec, new_spec in itertools.permutations(data, 2):
        ids, x, y, _ = data[new_spec]
        second = again.get(new_spec, {})
        pool = np.array([i for i, a in enumerate(ids) if a in second])
        if len(pool) < args.k / 0.8:
            raise SystemExit(f"{new_spec}: {len(pool)} architectures measured twice, too few to pick {args.k}")
        twice = y.copy()
        twice[pool] = 0.5 * (y[pool] + np.array([second[ids[i]] for i in pool]))
        src = data[src_spec][3]
        prior = transfer.Prior.for_predictor(src.model, cfg.space, per_op, graphs[new_spec])
        s_all, g_all = transfer.predict_np(src.model)(x), transfer.table_np(src.model, x)
        rest = np.setdiff1d(np.arange(len(y)), pool)
        scores: dict[str, list[dict]] = {"once": [], "twice": []}
        for r in range(args.repeats):
            sub = np.sort(np.random.default_rng(r).choice(pool, size=int(0.8 * len(pool)), replace=False))
            pick = sub[transfer.select_diverse(s_all[sub], g_all[sub], args.k, prior)]
            for name, labels in (("once", y), ("twice", twice)):
                f = transfer.fit(s_all[pick], g_all[pick], labels[pick], prior)
                scores[name].append(quality.regression_metrics(f.predict(s_all[rest], g_all[rest]), y[rest]))
        tau = {n: np.array([s["kendall_tau"] for s in v]) for n, v in scores.items()}
        cell = {
            n: {"mape": float(np.mean([s["mape"] for s in v])), "kendall_tau": float(tau[n].mean())}
            for n, v in scores.items()
        }
        cell["tau_twice_minus_once"] = {"mean": float((tau["twice"] - tau["once"]).mean()),
                                        "ci95": interval(tau["twice"] - tau["once"])}  # fmt: skip
        cell["pool"], cell["tested_on"] = int(len(pool)), int(len(rest))
        pairs[f"{src_spec} -> {new_spec}"] = cell
        d = cell["tau_twice_minus_once"]
        print(f"{src_spec} -> {new_spec}: once MAPE {cell['once']['mape']:.2%} tau {cell['once']['kendall_tau']:.3f}; "
              f"twice MAPE {cell['twice']['mape']:.2%} tau {cell['twice']['kendall_tau']:.3f}; "
              f"tau difference {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]", flush=True)  # fmt: skip
    record(
        args.name,
        {"run": args.run, "k": args.k, "repeats": args.repeats, "wall_s": time.perf_counter() - t0, "pairs": pairs},
        f".venv/bin/python benchmarks/transfer_labels.py --run {args.run} --k {args.k} --repeats {args.repeats}"
        f" --name {args.name}",
    )


if __name__ == "__main__":
    main()
