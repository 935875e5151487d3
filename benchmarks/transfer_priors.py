"""Priors tried for predictor transfer and not adopted, against the adopted one, on the same picks.

    .venv/bin/python benchmarks/transfer_priors.py [--run runs/bench-targets-long/main] [--repeats 5]

Reads the run of ``benchmarks/targets.py`` like ``transfer.py`` and fits lanas.transfer's
model (diverse picks, K in {5, 10, 20, 50}, every ordered pair, ``--repeats`` repeats,
scored on the rest of NEW's rows) with the adopted prior (``adopted``: FLOPs, ATen
operators and modules per (edge group, op), and NEW's graph nodes, reorders and nodes
per kind) and with one more column each:

* ``no_kinds`` -- one column *fewer*: NEW's graph without its nodes per kind (nodes and
  reorders only; the prior adopted before the kinds);
* ``no_repeats`` -- the table *without* its repeat features
  (:func:`lanas.encoding.repeat_matrices`) and so without their cost column
  (``lanas.transfer.REPEATS``): the model adopted before them;
* ``bytes`` -- activation elements the network writes (every ATen operator's outputs,
  counted like the other op costs): what a memory-bound kernel pays;
* ``both_graphs`` -- the graph costs of *both* ONNX runtimes, whatever NEW is (what the
  other compiled runtime would fuse and reorder);
* ``profiled`` (NEW = OpenVINO only) -- microseconds per (edge group, op) from OpenVINO's
  own per-node profiler (``PERF_COUNT``) on the K picked architectures: each node's mean
  ``real_time`` over 100 inferences, given to the edge its ONNX node name comes from
  (``/cells.<i>/ops.<e>/...``), summed over the picks and divided by the op's count: a
  kernel-level lookup table (nn-Meter's idea) that the K measurements would come with.

Records per cell every prior's mean MAPE and Kendall tau, and their paired differences to
``adopted`` over the repeats (same picks) with 95 % t-intervals. ``--priors`` runs some of
them only (``adopted`` always); record such a run under its own ``--name``.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record, t_half_width  # noqa: E402
from transfer import load, picks, target_graph_costs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KS = (5, 10, 20, 50)
PRIORS = ("adopted", "no_kinds", "no_repeats", "bytes", "both_graphs", "profiled")
PROFILE_RUNS = 100
_EDGE = re.compile(r"/cells\.(\d+)/ops\.(\d+)/")


def activation_costs(space, macro, resolution: int) -> np.ndarray:
    """``[3 * |ops|, 1]``: thousands of activation elements each (edge group, op) writes,
    fitted like lanas.costs.op_costs (exactly additive)."""
    import torch

    from lanas.costs import COST_ARCHS, COST_SEED, _CountOps
    from lanas.encoding import encode_genotype, group_matrix
    from lanas.network import Network

    class CountElements(_CountOps):
        def __init__(self) -> None:
            super().__init__()
            self.elements = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = super().__torch_dispatch__(func, types, args, kwargs)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            self.elements += sum(t.numel() for t in outs if torch.is_tensor(t))
            return out

    genotypes = space.sample_unique(COST_ARCHS, COST_SEED)
    counts = []
    for g in genotypes:
        counter = CountElements()
        with torch.no_grad(), counter:
            Network(g, macro).eval()(torch.zeros(1, macro.in_channels, resolution, resolution))
        counts.append([counter.elements / 1e3])
    groups = torch.stack([encode_genotype(g, space) for g in genotypes]) @ group_matrix(space)
    design = np.column_stack([np.ones(len(genotypes)), groups.double().numpy()])
    return np.linalg.lstsq(design, np.array(counts), rcond=None)[0][1:]


def openvino_profiles(run, genotypes: list[str], target) -> np.ndarray:
    """``[rows, 3 * |ops|]``: OpenVINO's profiled microseconds per (edge group, op) of
    every architecture (its nodes' mean real_time over PROFILE_RUNS inferences)."""
    import openvino as ov

    from lanas.genotype import Genotype
    from lanas.network import Network
    from lanas.runtimes import example_input, export_onnx
    from lanas.topology import edge_stride

    cfg = run.config
    macro, ops = cfg.macro(), list(cfg.space.ops)
    reductions = set(macro.reduction_layers())
    x = example_input(macro.in_channels, cfg.data.resolution, target)
    core = ov.Core()
    props = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": target.threads,
        "INFERENCE_PRECISION_HINT": "f32",
        "ENABLE_CPU_PINNING": False,
        "PERF_COUNT": True,
    }
    out = np.zeros((len(genotypes), 3 * len(ops)))
    t0 = time.perf_counter()
    for row, text in enumerate(genotypes):
        g = Genotype.from_json(text, cfg.space.ops)
        model = core.compile_model(core.read_model(export_onnx(Network(g, macro).eval(), x)), "CPU", props)
        request = model.create_infer_request()
        request.set_input_tensor(ov.Tensor(x.numpy()))
        for _ in range(10):
            request.infer()
        us: dict[str, float] = collections.defaultdict(float)
        for _ in range(PROFILE_RUNS):
            request.infer()
            for p in request.profiling_info:
                us[p.node_name] += p.real_time.total_seconds() * 1e6 / PROFILE_RUNS
        edges = {"normal": list(g.edges("normal")), "reduce": list(g.edges("reduce"))}
        for name, t in us.items():
            m = _EDGE.search(name)
            if m is None:
                continue  # stem, preprocessing, concatenation, classifier: the same in every architecture
            cell, e = int(m.group(1)), int(m.group(2))
            kind = "reduce" if cell in reductions else "normal"
            _, inp, op = edges[kind][e]
            group = 0 if kind == "normal" else 1 if edge_stride(True, inp) == 2 else 2
            out[row, group * len(ops) + ops.index(op)] += t
        if (row + 1) % 100 == 0:
            print(f"profiled {row + 1}/{len(genotypes)} on OpenVINO ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def profiled_table(us: np.ndarray, counts: np.ndarray, n_ops: int) -> np.ndarray:
    """``[3 * |ops|, 1]``: microseconds per op instance over the picked rows; an (edge
    group, op) never picked takes the op's mean over the groups where it was."""
    seen = counts.sum(0)
    per = np.where(seen > 0, us.sum(0) / np.maximum(seen, 1e-12), np.nan).reshape(3, n_ops)
    observed = ~np.isnan(per)
    fill = np.where(observed, per, 0.0).sum(0) / np.maximum(observed.sum(0), 1)  # 0 for an op never picked
    return np.where(np.isnan(per), fill[None, :], per).reshape(-1, 1)


def main() -> None:
    from lanas import quality, transfer
    from lanas.costs import GRAPH_COSTS, GraphCosts, op_costs
    from lanas.encoding import group_matrix
    from lanas.predictor import LatencyPredictor

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/bench-targets-long/main")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--name", default="transfer_priors", help="the recording's name under benchmarks/results/")
    ap.add_argument("--priors", default=",".join(PRIORS), help=f"comma-separated, of {', '.join(PRIORS)}")
    args = ap.parse_args()
    chosen = {"adopted", *args.priors.split(",")}
    if chosen - set(PRIORS):
        raise SystemExit(f"--priors: unknown {sorted(chosen - set(PRIORS))}; choose from {', '.join(PRIORS)}")
    t0 = time.perf_counter()
    run, data = load(ROOT / args.run)
    cfg = run.config
    per_op = op_costs(cfg.space, cfg.macro(), cfg.data.resolution)
    with_bytes = np.column_stack([per_op, activation_costs(cfg.space, cfg.macro(), cfg.data.resolution)])
    graphs = target_graph_costs(cfg, data)[0]
    compiled = [spec for spec, g in graphs.items() if g is not None]
    profiles = {}
    for spec, (ids, _, _, own) in data.items():
        if own.meta.target.runtime == "openvino" and "profiled" in chosen:
            import pandas as pd

            df = pd.read_parquet(ROOT / args.run / "measure" / "dataset")
            text = df[df["runtime"] == "openvino"].drop_duplicates("arch_id").set_index("arch_id")["genotype"]
            profiles[spec] = openvino_profiles(run, [text[i] for i in ids], own.meta.target)
    counts = {spec: d[1].numpy() @ group_matrix(cfg.space).numpy() for spec, d in data.items()}
    n_ops = len(cfg.space.ops)
    without = LatencyPredictor.for_space(cfg.space, (), repeats=False)  # the table without its repeat features
    cells = {}
    for src_spec, new_spec in itertools.permutations(data, 2):
        _, x, y, _ = data[new_spec]
        src = data[src_spec][3].model
        s_all, g_all = transfer.predict_np(src)(x), transfer.table_np(src, x)
        graph = graphs[new_spec]
        both = GraphCosts(
            sum((graphs[s].names for s in compiled), ()), np.column_stack([graphs[s].per_feature for s in compiled])
        )
        fixed = {  # the priors that do not depend on the picks
            "adopted": transfer.Prior.for_predictor(src, cfg.space, per_op, graph),
            "bytes": transfer.Prior.for_predictor(src, cfg.space, with_bytes, graph),
            "both_graphs": transfer.Prior.for_predictor(src, cfg.space, per_op, both),
        }
        if graph is not None:  # eager torch has no graph: no kinds to leave out
            n = len(GRAPH_COSTS)
            no_kinds = GraphCosts(graph.names[:n], graph.per_feature[:, :n])
            fixed["no_kinds"] = transfer.Prior.for_predictor(src, cfg.space, per_op, no_kinds)
        fixed["no_repeats"] = transfer.Prior.for_predictor(without, cfg.space, per_op, graph)
        features = {"no_repeats": g_all[:, : without.additive.in_features]}
        fixed = {name: prior for name, prior in fixed.items() if name in chosen}
        adopted = fixed["adopted"]
        for k in KS:
            scores: dict[str, list] = {p: [] for p in PRIORS}
            for r in range(args.repeats):
                pick = picks("diverse", k, r, len(y), s_all, g_all, adopted)
                rest = np.setdiff1d(np.arange(len(y)), pick)
                priors = dict(fixed)
                if new_spec in profiles:
                    table = profiled_table(profiles[new_spec][pick], counts[new_spec][pick], n_ops)
                    priors["profiled"] = transfer.Prior.for_predictor(
                        src, cfg.space, np.column_stack([per_op, table]), graphs[new_spec]
                    )
                for name, prior in priors.items():
                    g = features.get(name, g_all)
                    fit = transfer.fit(s_all[pick], g[pick], y[pick], prior)
                    scores[name].append(quality.regression_metrics(fit.predict(s_all[rest], g[rest]), y[rest]))
            cell = {}
            for name, v in scores.items():
                if not v:
                    continue
                mape = np.array([s["mape"] for s in v])
                tau = np.array([s["kendall_tau"] for s in v])
                d = mape - np.array([s["mape"] for s in scores["adopted"]])
                dt = tau - np.array([s["kendall_tau"] for s in scores["adopted"]])
                cell[name] = {
                    "mape": float(mape.mean()),
                    "kendall_tau": float(tau.mean()),
                    "kendall_tau_std": float(tau.std()),
                    "mape_minus_adopted": [float(d.mean()), float(t_half_width(d))],
                    "kendall_tau_minus_adopted": [float(dt.mean()), float(t_half_width(dt))],
                }
            cells[f"{src_spec} -> {new_spec} | K={k}"] = cell
            print(
                f"{src_spec} -> {new_spec}, K={k:2d}: "
                + "; ".join(f"{n} {c['mape']:.2%} tau {c['kendall_tau']:.3f}" for n, c in cell.items()),
                flush=True,
            )
    means: dict[str, dict[str, list]] = {}
    for key, cell in cells.items():
        k = key.split(" | ")[1]
        for name, c in cell.items():  # each prior beside the adopted one on the same pairs
            means.setdefault(k, {}).setdefault(name, []).append(
                (c["mape"], c["kendall_tau"], cell["adopted"]["mape"], cell["adopted"]["kendall_tau"])
            )
    summary = {
        k: {
            n: {
                "pairs": len(vs),
                "mape": float(np.mean([v[0] for v in vs])),
                "kendall_tau": float(np.mean([v[1] for v in vs])),
                "adopted_mape": float(np.mean([v[2] for v in vs])),
                "adopted_kendall_tau": float(np.mean([v[3] for v in vs])),
            }
            for n, vs in per.items()
            if n != "adopted"
        }
        for k, per in means.items()
    }
    for k, per in summary.items():
        for n, v in per.items():
            print(
                f"{k}, mean over the {v['pairs']} pairs: {n} {v['mape']:.2%} (tau {v['kendall_tau']:.3f}) "
                f"vs adopted {v['adopted_mape']:.2%} (tau {v['adopted_kendall_tau']:.3f})"
            )
    into_ov = {
        key: {n: round(c["kendall_tau"], 3) for n, c in cell.items()}
        for key, cell in cells.items()
        if "openvino" in key.split(" -> ")[1] and "K=20" in key
    }
    print("K = 20 into OpenVINO, tau:", into_ov)
    record(
        args.name,
        {
            "run": args.run,
            "repeats": args.repeats,
            "wall_s": time.perf_counter() - t0,
            "summary": summary,
            "k20_into_openvino_tau": into_ov,
            "cells": cells,
        },
        f".venv/bin/python benchmarks/transfer_priors.py --run {args.run} --repeats {args.repeats} --name {args.name}"
        + (f" --priors {args.priors}" if chosen != set(PRIORS) else ""),
    )


if __name__ == "__main__":
    main()
