"""Do cleaner labels on the K picks help the transfer? Measured twice vs once, and vs
twice as many picks measured once (the same measuring time).

    .venv/bin/python benchmarks/transfer_labels.py [--run runs/bench-targets-long-b3/main] [--ks 10,20] [--repeats 10]

Reads the run of ``benchmarks/targets.py`` like ``transfer.py``, and its sibling
``repeat`` run, which measured architectures of the run a second time (its first ones,
or all of them on a target it was extended on). For every ordered pair (SRC -> NEW), K
and ``--repeats`` repeats, K architectures are picked by lanas.transfer.select_diverse
from a random 80 % of NEW's twice-measured architectures, and lanas.transfer.fit is
fitted on them three ways:

* ``once`` -- on their first measurement alone;
* ``twice`` -- on the mean of both measurements (the label noise's variance halved;
  what ``lanas measure --protocol-scale 2`` buys: twice the builds and timed pairs);
* ``once_2k`` -- 2K picks (the same selection asked for 2K) on their first measurement:
  the same measuring time as ``twice`` spent on more architectures instead.

Each is scored on the rest of NEW's rows (every row but its picks) against their first
label. Records per pair and K the mean MAPE and Kendall tau of each, and the paired tau
differences twice - once and twice - once_2k with 95 % t-intervals over the repeats.

What it answers: whether the few measurements a new target gets are worth measuring more
carefully than the thousands a target is fitted on from scratch, and whether that time
is better spent on more architectures.
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
from transfer import load, repeat_labels, target_graph_costs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WAYS = ("once", "twice", "once_2k")


def interval(d: np.ndarray) -> dict:
    half = t_half_width(d)
    return {"mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)]}


def main() -> None:
    from lanas import quality, transfer
    from lanas.costs import op_costs

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/bench-targets-long-b3/main")
    ap.add_argument("--ks", default="10,20", help="comma-separated K")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--name", default="transfer_labels", help="recorded as results/<name>.json")
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    t0 = time.perf_counter()
    run, data = load(ROOT / args.run)
    cfg = run.config
    again = repeat_labels(ROOT / Path(args.run).parent / "repeat")
    per_op = op_costs(cfg.space, cfg.macro(), cfg.data.resolution)
    graphs = target_graph_costs(cfg, data)[0]
    cells = {}
    for src_spec, new_spec in itertools.permutations(data, 2):
        ids, x, y, _ = data[new_spec]
        second = again.get(new_spec, {})
        pool = np.array([i for i, a in enumerate(ids) if a in second])
        twice = y.copy()
        twice[pool] = 0.5 * (y[pool] + np.array([second[ids[i]] for i in pool]))
        src = data[src_spec][3]
        prior = transfer.Prior.for_predictor(src.model, cfg.space, per_op, graphs[new_spec])
        s_all, g_all = transfer.predict_np(src.model)(x), transfer.table_np(src.model, x)
        for k in ks:
            if 2 * k > int(0.8 * len(pool)):
                print(f"{src_spec} -> {new_spec}, K={k}: {len(pool)} architectures measured twice, "
                      f"too few to pick {2 * k} from 80 % of them; skipped", flush=True)  # fmt: skip
                continue
            scores: dict[str, list[dict]] = {w: [] for w in WAYS}
            for r in range(args.repeats):
                sub = np.sort(np.random.default_rng(r).choice(pool, size=int(0.8 * len(pool)), replace=False))
                picked = {n: sub[transfer.select_diverse(s_all[sub], g_all[sub], n, prior)] for n in (k, 2 * k)}
                for way in WAYS:
                    pick = picked[2 * k if way == "once_2k" else k]
                    labels = twice if way == "twice" else y
                    f = transfer.fit(s_all[pick], g_all[pick], labels[pick], prior)
                    rest = np.setdiff1d(np.arange(len(y)), pick)
                    scores[way].append(quality.regression_metrics(f.predict(s_all[rest], g_all[rest]), y[rest]))
            tau = {w: np.array([s["kendall_tau"] for s in v]) for w, v in scores.items()}
            cell = {w: {"mape": float(np.mean([s["mape"] for s in v])), "kendall_tau": float(tau[w].mean())}
                    for w, v in scores.items()}  # fmt: skip
            cell["tau_twice_minus_once"] = interval(tau["twice"] - tau["once"])
            cell["tau_twice_minus_once_2k"] = interval(tau["twice"] - tau["once_2k"])
            cell["pool"] = int(len(pool))
            cells[f"{src_spec} -> {new_spec} | K={k}"] = cell
            a, b = cell["tau_twice_minus_once"], cell["tau_twice_minus_once_2k"]
            print(f"{src_spec} -> {new_spec}, K={k} (pool {len(pool)}): tau once {cell['once']['kendall_tau']:.3f}, "
                  f"twice {cell['twice']['kendall_tau']:.3f}, 2K once {cell['once_2k']['kendall_tau']:.3f}; "
                  f"twice - once {a['mean']:+.3f} [{a['ci95'][0]:+.3f}, {a['ci95'][1]:+.3f}], "
                  f"twice - 2K once {b['mean']:+.3f} [{b['ci95'][0]:+.3f}, {b['ci95'][1]:+.3f}]",
                  flush=True)  # fmt: skip
    record(
        args.name,
        {"run": args.run, "ks": ks, "repeats": args.repeats, "wall_s": time.perf_counter() - t0, "cells": cells},
        f".venv/bin/python benchmarks/transfer_labels.py --run {args.run} --ks {args.ks} --repeats {args.repeats}"
        f" --name {args.name}",
    )


if __name__ == "__main__":
    main()
