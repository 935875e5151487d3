"""Predictor transfer between CPU targets: learning curves from K measurements.

    .venv/bin/python benchmarks/transfer.py [--run runs/bench-targets/main] [--repeats 5]

Reads the run of ``benchmarks/targets.py`` (the same 500 demo-profile architectures
measured on torch eager, ONNX Runtime and OpenVINO, one predictor fitted per target by
``lanas fit``). For every ordered pair (SRC -> NEW), K in {5, 10, 20, 50, 100}, and
``--repeats`` repeats of the sampling, K architectures of NEW are picked (``random``:
uniformly; ``diverse``: lanas.transfer.select_diverse over SRC's predictions, the costs and
the op composition, from a
random 80 % of the architectures so the repeats differ), and five predictors of NEW are
fitted on them and scored on the rest of NEW's rows:

* ``transfer`` -- lanas.transfer: SRC's predictor rescaled, plus the network's costs
  (FLOPs, ATen operators, modules) and a ridge correction per op and per (edge group,
  op); whether SRC was kept (``source+costs``) or dropped (``costs``) is recorded;
* ``costs`` -- the same model without SRC: the costs and corrections fitted from scratch
  on the K rows (what the costs give without any other target);
* ``scratch`` -- the pipeline's predictor (grouped additive table + MLP, the demo's
  ``fit.model``) trained on the K rows alone;
* ``lut`` -- the grouped lookup table (ridge) on the K rows alone;
* ``src_rescaled`` -- SRC's predictor as it is, times one fitted scale.

"From scratch" below is the best of ``costs``, ``scratch`` and ``lut``.

Records mean and std over repeats of MAPE, share within +-10 %, Kendall tau and Spearman rho.
Where the run has a sibling ``repeat`` run (``benchmarks/targets.py`` measures its first
architectures twice), every NEW target also gets its label-noise ceiling: the Kendall tau
a perfect predictor would reach against its labels (lanas.quality.noise_ceiling).

``--labels mean`` takes every label as the mean of the run's and the repeat run's
measurement (the architectures both measured, on every target): a twice-as-long
protocol, emulated, for the K picks and the test rows alike, its ceiling computed for
labels that average two measurements.

``--new-labels RUN`` takes NEW's labels from another run that measured the same
architectures with another protocol (``benchmarks/configs/long-b6-openvino.yaml``: twice
the long protocol with 3 builds, for real), and scores only the pairs into its targets.

``--fresh-rows RUN`` takes NEW's rows from another run of the same network and protocol
that measured *other* architectures (``benchmarks/configs/fresh-openvino-long-b3.yaml``:
OpenVINO only, seed 2): SRC's predictor and the costs come from ``--run`` as before, NEW's
K picks and test rows from the fresh run, none of them seen by any predictor or by the
choices this benchmark made; only the pairs into its targets, without ceilings.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import time
from pathlib import Path

import numpy as np
from common import record, t_half_width

ROOT = Path(__file__).resolve().parents[1]
KS = (5, 10, 20, 50, 100)
METHODS = ("transfer", "costs", "scratch", "lut", "src_rescaled")
SCRATCH = ("costs", "scratch", "lut")  # the models fitted on NEW's K rows alone
METRICS = ("mape", "within_10pct", "kendall_tau", "spearman_rho")


def load(run_dir: Path):
    """Per target spec: (arch_ids, encodings, latency ratios) on the same architectures, and
    its stored predictor as a transfer source (on the current table layout)."""
    import pandas as pd
    import torch

    from lanas_pipeline.rundir import RunDir
    from lanas_pipeline.transfer import source_predictor

    run = RunDir.existing(run_dir)
    df = pd.read_parquet(run_dir / "measure" / "dataset")
    df = df[df["status"] == "ok"]
    common = set.intersection(*(set(df[df["runtime"] == t.runtime]["arch_id"]) for t in run.config.targets))
    out = {}
    for t in run.config.targets:
        rows = df[(df["runtime"] == t.runtime) & df["arch_id"].isin(common)].sort_values("arch_id")
        x = torch.tensor(np.stack(rows["encoding"].to_numpy()), dtype=torch.float32)
        out[t.spec] = (
            rows["arch_id"].to_numpy(),
            x,
            rows["latency_ratio"].to_numpy(float),
            source_predictor(run, t.spec)[1],
        )
    return run, out


def scratch_predictor(run, x, y):
    import torch

    from lanas.predictor import LatencyPredictor, fit_additive, train_predictor

    settings = run.config.fit.model
    model = LatencyPredictor.for_space(run.config.space, settings.hidden)
    yt = torch.as_tensor(y, dtype=torch.float32)
    model.set_target_stats(yt)
    if settings.init_additive:
        fit_additive(model, x, yt)
    train_predictor(model, (x, yt), (x, yt), settings, seed=0)  # no rows to spare for validation
    return lambda xs: model(xs).detach().double().numpy()


def fit_all(run, s_all, g_all, prior, new_x, new_y, pick, rest):
    """The predictors of NEW from the rows ``pick``; their predictions on ``rest``
    (``s_all``, ``g_all``: SRC's predictions and table features of NEW's rows)."""
    from lanas import quality, transfer

    fit = transfer.fit(s_all[pick], g_all[pick], new_y[pick], prior)
    costs = transfer.fit(s_all[pick], g_all[pick], new_y[pick], prior, source=False)
    scale = np.sum(s_all[pick] / new_y[pick]) / np.sum((s_all[pick] / new_y[pick]) ** 2)  # relative-error LSQ
    lut = quality.fit_lut(g_all[pick], new_y[pick])
    return {
        "transfer": fit.predict(s_all[rest], g_all[rest]),
        "costs": costs.predict(s_all[rest], g_all[rest]),
        "scratch": scratch_predictor(run, new_x[pick], new_y[pick])(new_x[rest]),
        "lut": lut.predict(g_all[rest]),
        "src_rescaled": scale * s_all[rest],
    }, fit.model


def target_graph_costs(cfg, data: dict) -> tuple[dict, dict]:
    """Per target spec of ``data`` (as :func:`load` returns it): its runtime's graph costs
    per table feature of its own predictor (lanas.costs.graph_costs; None for eager), and
    the seconds counting them took."""
    from lanas import transfer
    from lanas.costs import graph_costs

    graphs, seconds = {}, {}
    for spec, (_, _, _, own) in data.items():
        t1 = time.perf_counter()
        features = functools.partial(transfer.table_np, own.model, repeats=False)  # a repeated op adds no node
        graphs[spec] = graph_costs(cfg.space, cfg.macro(), cfg.data.resolution, own.meta.target, features)
        seconds[spec] = time.perf_counter() - t1
        print(f"graph costs of {spec}: {seconds[spec]:.1f} s", flush=True)
    return graphs, seconds


def picks(selection: str, k: int, repeat: int, n: int, src_pred: np.ndarray, groups: np.ndarray, prior) -> np.ndarray:
    from lanas.transfer import select_diverse

    rng = np.random.default_rng(1000 * repeat + k)
    if selection == "random":
        return rng.choice(n, size=k, replace=False)
    sub = np.sort(rng.choice(n, size=int(0.8 * n), replace=False))
    return sub[select_diverse(src_pred[sub], groups[sub], k, prior)]


def main() -> None:
    from lanas import quality, transfer
    from lanas.costs import op_costs

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/bench-targets/main")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--name", default="transfer", help="recorded as results/<name>.json")
    ap.add_argument("--repeat-run", help="the same architectures measured again (default: the run's sibling 'repeat')")
    ap.add_argument("--labels", choices=("first", "mean"), default="first", help=LABELS_HELP)
    ap.add_argument("--new-labels", metavar="RUN", help=NEW_LABELS_HELP)
    ap.add_argument("--fresh-rows", metavar="RUN", help=FRESH_ROWS_HELP)
    args = ap.parse_args()
    if sum(map(bool, (args.new_labels, args.fresh_rows, args.labels != "first"))) > 1:
        raise SystemExit("--new-labels, --fresh-rows and --labels mean are different labels for NEW: pick one")
    t0 = time.perf_counter()
    run, data = load(ROOT / args.run)
    cfg = run.config
    first = {spec: dict(zip(ids, y)) for spec, (ids, _, y, _) in data.items()}  # the run's labels
    again = repeat_labels(ROOT / (args.repeat_run or Path(args.run).parent / "repeat"))
    measurements, into = 1, set(data)
    if args.labels == "mean":
        both = set.intersection(*(set(first[spec]) & set(again.get(spec, {})) for spec in data))
        if not both:
            raise SystemExit("--labels mean needs a repeat run that measured the run's architectures")
        data = relabelled(data, {s: {a: 0.5 * (first[s][a] + again[s][a]) for a in both} for s in data})
        measurements = 2
        print(f"labels: the mean of two measurements, on the {len(both)} architectures measured twice", flush=True)
    if args.new_labels:
        from targets import ratios

        from lanas_pipeline.rundir import RunDir

        other = ratios(RunDir.existing(ROOT / args.new_labels))
        into = {spec for spec in data if other.get(spec)}
        if not into:
            raise SystemExit(f"{args.new_labels} measured none of the run's targets")
        data = relabelled(data, {spec: other[spec] for spec in into})
        noise = new_label_noise(data, into, first, again)
    elif args.fresh_rows:
        data, into = with_fresh_rows(data, ROOT / args.fresh_rows)
        noise = {}  # measured once: no ceiling
    else:
        noise = label_noise(data, first, again, measurements)
    per_op = op_costs(cfg.space, cfg.macro(), cfg.data.resolution)
    graphs, graph_s = target_graph_costs(cfg, data)
    results = {}
    for src_spec, new_spec in itertools.permutations(data, 2):
        if new_spec not in into:
            continue
        _, x, y, _ = data[new_spec]
        src = data[src_spec][3]
        prior = transfer.Prior.for_predictor(src.model, cfg.space, per_op, graphs[new_spec])
        s_all, g_all = transfer.predict_np(src.model)(x), transfer.table_np(src.model, x)
        for k, selection in itertools.product(KS, ("random", "diverse")):
            scores, models = {m: [] for m in METHODS}, []
            for r in range(args.repeats):
                pick = picks(selection, k, r, len(y), s_all, g_all, prior)
                rest = np.setdiff1d(np.arange(len(y)), pick)
                preds, chosen = fit_all(run, s_all, g_all, prior, x, y, pick, rest)
                models.append(chosen)
                for m, p in preds.items():
                    scores[m].append(quality.regression_metrics(p, y[rest]))
            cell = {
                m: {
                    f"{q}_{stat}": float(fn([s[q] for s in v]))
                    for q in METRICS
                    for stat, fn in (("mean", np.mean), ("std", np.std))
                }
                for m, v in scores.items()
            }
            for m, v in scores.items():
                cell[m]["mape_values"] = [float(x["mape"]) for x in v]  # per repeat, paired across methods
            cell["transfer_models"] = {m: models.count(m) for m in sorted(set(models))}  # SRC kept/dropped per repeat
            results[f"{src_spec} -> {new_spec} | K={k} | {selection}"] = cell
            t = cell["transfer"]
            best_scratch = min(SCRATCH, key=lambda m: cell[m]["mape_mean"])
            print(
                f"{src_spec} -> {new_spec}, K={k:3d}, {selection:7s}: transfer MAPE {t['mape_mean']:.2%} "
                f"(±{t['mape_std']:.2%}) tau {t['kendall_tau_mean']:.3f}; "
                f"{best_scratch} {cell[best_scratch]['mape_mean']:.2%} "
                f"tau {cell[best_scratch]['kendall_tau_mean']:.3f}; "
                f"src rescaled {cell['src_rescaled']['mape_mean']:.2%} "
                f"tau {cell['src_rescaled']['kendall_tau_mean']:.3f}",
                flush=True,
            )
    # what NEW's own predictor reaches from all its rows (lanas fit, 80 % train, scored on the 20 % test split)
    ceiling = {spec: {q: float(d[3].meta.test[q]) for q in ("mape", "kendall_tau")} for spec, d in data.items()}
    summary = summarise(results, ceiling, noise)
    for line in summary["lines"]:
        print(line)
    record(
        args.name,
        {
            "run": args.run,
            "labels": args.new_labels or args.labels,
            "tested_on_archs": len(next(iter(data.values()))[0]),
            "protocol": dataclasses.asdict(run.config.measure.protocol),
            "own_predictor_full_data": ceiling,
            "label_noise_ceiling": noise,
            "repeats": args.repeats,
            "graph_costs_s": graph_s,
            "wall_s": time.perf_counter() - t0,
            "summary": summary,
            "cells": results,
        },
        f".venv/bin/python benchmarks/transfer.py --run {args.run} --repeats {args.repeats} --name {args.name}"
        + (f" --labels {args.labels}" if args.labels != "first" else "")
        + (f" --new-labels {args.new_labels}" if args.new_labels else "")
        + (f" --repeat-run {args.repeat_run}" if args.repeat_run else "")
        + (f" --fresh-rows {args.fresh_rows}" if args.fresh_rows else ""),
    )


LABELS_HELP = "first: the run's measurement; mean: the mean of the run's and the repeat run's (where both measured)"


def repeat_labels(repeat_dir: Path) -> dict:
    """spec -> arch_id -> latency ratio of the repeat run (the same architectures measured
    again); {} when there is none."""
    from targets import ratios

    from lanas_pipeline.rundir import RunDir

    if not (repeat_dir / "config.yaml").exists():
        print(f"no repeat run at {repeat_dir}: no label-noise ceilings", flush=True)
        return {}
    return ratios(RunDir.existing(repeat_dir))


NEW_LABELS_HELP = (
    "NEW's labels from this run (the same architectures timed with another protocol); only the pairs into its targets"
)


FRESH_ROWS_HELP = (
    "NEW's rows from this run instead: other architectures, none of which the run's predictors or this "
    "benchmark's design saw (the same network and protocol); only the pairs into the targets it measured"
)


def with_fresh_rows(data: dict, fresh_dir: Path) -> tuple[dict, set]:
    """``data`` with every target that ``fresh_dir``'s run measured on its rows there (its
    architectures, encodings and latency ratios; NEW's own predictor stays the run's), and
    the set of those targets."""
    import pandas as pd
    import torch

    from lanas_pipeline.rundir import RunDir

    fresh = RunDir.existing(fresh_dir)
    df = pd.read_parquet(fresh_dir / "measure" / "dataset")
    df = df[(df["status"] == "ok") & (df["sampler"] != "published")]
    out, into = dict(data), set()
    for t in fresh.config.targets:
        rows = df[df["runtime"] == t.runtime].drop_duplicates("arch_id").sort_values("arch_id")
        if t.spec not in data or rows.empty:
            continue
        seen = set(data[t.spec][0])
        rows = rows[~rows["arch_id"].isin(seen)]
        x = torch.tensor(np.stack(rows["encoding"].to_numpy()), dtype=torch.float32)
        out[t.spec] = (rows["arch_id"].to_numpy(), x, rows["latency_ratio"].to_numpy(float), data[t.spec][3])
        into.add(t.spec)
        print(f"{t.spec}: {len(rows)} fresh architectures from {fresh_dir}", flush=True)
    if not into:
        raise SystemExit(f"{fresh_dir} measured none of the run's targets")
    return out, into


def relabelled(data: dict, labels: dict) -> dict:
    """``data`` with each target in ``labels`` (spec -> arch_id -> latency ratio) on the
    architectures it labels, those labels its own."""
    out = dict(data)
    for spec, by_arch in labels.items():
        ids, x, _, own = data[spec]
        keep = np.array([a in by_arch for a in ids])
        out[spec] = (ids[keep], x[keep], np.array([by_arch[a] for a in ids[keep]]), own)
        print(f"{spec}: {int(keep.sum())} architectures relabelled", flush=True)
    return out


def new_label_noise(data: dict, into: set, first: dict, again: dict) -> dict:
    """Per relabelled target: each measurement's noise from three of every architecture
    (the run's f, its repeat's g, the new run's n; independent errors, each its own
    variance): var(f - g) = sf^2 + sg^2 and so on, solved for sf, sg, sn; and the
    ceiling for labels as noisy as the new ones."""
    from lanas.quality import noise_ceiling

    out = {}
    for spec in sorted(into):
        ids, _, y, _ = data[spec]
        new = dict(zip(ids, y))
        common = [a for a in ids if a in again.get(spec, {}) and a in first[spec]]
        f, g, n = (np.log(np.array([d[a] for a in common])) for d in (first[spec], again[spec], new))
        fg, fn, gn = (np.var(a - b, ddof=1) for a, b in ((f, g), (f, n), (g, n)))
        var = {"run": (fg + fn - gn) / 2, "repeat": (fg + gn - fn) / 2, "new": max((fn + gn - fg) / 2, 1e-12)}
        out[spec] = noise_ceiling(y, np.exp(f), np.exp(g), measurements=fg / 2 / var["new"])
        out[spec].update({f"noise_{k}": float(np.sqrt(max(v, 0.0))) for k, v in var.items()}, pairs=len(common))
        out[spec]["noise"] = out[spec]["noise_new"]
        c = out[spec]
        print(f"{spec}: noise of one measurement, the run's {c['noise_run']:.2%}, its repeat's "
              f"{c['noise_repeat']:.2%}, the new run's {c['noise_new']:.2%} -> against the new labels a perfect "
              f"predictor reaches tau {c['tau']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}] ({len(common)} architectures "
              "measured three times)", flush=True)  # fmt: skip
    return out


def label_noise(data: dict, first: dict, again: dict, measurements: float = 1.0) -> dict:
    """Per target: lanas.quality.noise_ceiling of its rows (labels that average
    ``measurements`` measurements), from the architectures the repeat run (``again``)
    measured as the run did (``first``); {} when there is no repeat run."""
    from lanas.quality import noise_ceiling

    out = {}
    for spec, (ids, _, y, _) in data.items():
        if spec not in again:
            continue
        common = sorted(set(ids) & set(first[spec]) & set(again[spec]))
        out[spec] = noise_ceiling(
            y, [first[spec][i] for i in common], [again[spec][i] for i in common], measurements=measurements
        )
        c = out[spec]
        print(f"{spec}: label noise {c['noise']:.2%} -> a perfect predictor reaches tau {c['tau']:.3f} "
              f"[{c['lo']:.3f}, {c['hi']:.3f}] ({c['pairs']} repeated architectures)", flush=True)  # fmt: skip
    return out


def summarise(results: dict, ceiling: dict, noise: dict | None = None) -> dict:
    """The issue's targets: K = 20 (diverse picks) tau >= 0.85 and MAPE <= 5 % on every
    pair; at every K, transfer at least as good (MAPE) as the best model fitted from scratch.
    ``ceiling``: NEW's own predictor from all its rows, for scale; ``noise``: per target,
    the tau a perfect predictor reaches against its labels (lanas.quality.noise_ceiling)."""
    noise = noise or {}

    lines, k20, never_worse, worse_beyond_noise = [], {}, True, 0
    for key, cell in results.items():
        pair, k, selection = key.split(" | ")
        t = cell["transfer"]
        best_name = min(SCRATCH, key=lambda m: cell[m]["mape_mean"])
        best = cell[best_name]["mape_mean"]
        if t["mape_mean"] > best:
            never_worse = False
            # paired over the repeats (same picks): a 95 % t-interval of transfer - best from scratch
            d = np.subtract(t["mape_values"], cell[best_name]["mape_values"])
            half = t_half_width(d)
            beyond = d.mean() - half > 0
            worse_beyond_noise += bool(beyond)
            lines.append(
                f"transfer worse than from scratch: {key}: {t['mape_mean']:.2%} vs {best:.2%} "
                f"(paired difference {d.mean():+.2%} ± {half:.2%}: "
                f"{'beyond' if beyond else 'within'} the repeats' noise)"
            )
        if k == "K=20" and selection == "diverse":
            own = ceiling[pair.split(" -> ")[1]]
            k20[pair] = {
                "mape": t["mape_mean"],
                "tau": t["kendall_tau_mean"],
                "met": t["mape_mean"] <= 0.05 and t["kendall_tau_mean"] >= 0.85,
                "new_own_predictor_tau": own["kendall_tau"],
                "new_own_predictor_mape": own["mape"],
            }
            perfect = noise.get(pair.split(" -> ")[1])
            if perfect:
                k20[pair]["label_noise_ceiling_tau"] = [perfect["tau"], perfect["lo"], perfect["hi"]]
            lines.append(
                f"K = 20, diverse: {pair}: MAPE {t['mape_mean']:.2%}, tau {t['kendall_tau_mean']:.3f} "
                f"(NEW's own predictor from all rows: {own['mape']:.2%}, tau {own['kendall_tau']:.3f}"
                + (f"; a perfect predictor: tau {perfect['tau']:.3f} [{perfect['lo']:.3f}, {perfect['hi']:.3f}])"
                   if perfect else ")")
            )  # fmt: skip
    means = {}  # per K and pick, every method's MAPE and tau averaged over the ordered pairs
    for key, cell in results.items():
        _, k, selection = key.split(" | ")
        for m in METHODS:
            means.setdefault(f"{k} | {selection}", {}).setdefault(m, []).append(
                (cell[m]["mape_mean"], cell[m]["kendall_tau_mean"])
            )
    means = {
        ks: {m: {"mape": float(np.mean([v[0] for v in vs])), "kendall_tau": float(np.mean([v[1] for v in vs]))}
             for m, vs in per.items()}
        for ks, per in means.items()
    }  # fmt: skip
    for ks, per in means.items():
        lines.append(f"mean over pairs, {ks}: " + ", ".join(
            f"{m} {v['mape']:.2%} (tau {v['kendall_tau']:.3f})" for m, v in per.items()))  # fmt: skip
    lines.append(
        f"K = 20, diverse picks: {sum(v['met'] for v in k20.values())} of {len(k20)} pairs meet "
        "tau >= 0.85 and MAPE <= 5 %"
    )
    lines.append(f"transfer at least as good as the best model from scratch at every K and pick: {never_worse}")
    plain = sum(  # against the pipeline's own models from scratch, without the costs
        cell["transfer"]["mape_mean"] > min(cell["scratch"]["mape_mean"], cell["lut"]["mape_mean"])
        for cell in results.values()
    )
    lines.append(f"cells where transfer is worse than the pipeline's predictor or the LUT from scratch: {plain}")
    lines.append(f"cells where transfer is worse beyond the repeats' noise: {worse_beyond_noise} of {len(results)}")
    return {
        "k20_diverse": k20,
        "means": means,
        "transfer_never_worse_than_scratch": never_worse,
        "worse_beyond_noise": worse_beyond_noise,
        "worse_than_pipeline_or_lut": plain,
        "lines": lines,
    }


if __name__ == "__main__":
    main()
