"""Latency on devices nobody here measured: NAS-Bench-201's 21 published device settings.

    .venv/bin/python benchmarks/nb201_devices.py [--part predictor|transfer|budgets|all] [--repeats 5]

Three questions, each recorded in its own results file, every figure per device and as
means over groups (``groups_of``): by timing resolution -- ``sub_ms`` (18 settings, the
targets' set) and ``whole_ms`` (the three phones timed in whole milliseconds, whose ties
cap rank correlation) -- and within each by role: *design* devices (what the methods were
chosen on) and *held-out* devices, drawn before any design work
(``random.Random(201).sample(sorted(devices), 3)``), never printed by the script and read
only from its results.

* ``predictor`` (``nb201_predictor.json``) -- the BRP-NAS protocol: per device 900 random
  architectures to train, 100 to validate, the other 14,625 to test. The model is the
  pipeline's design on this space's encoding: the additive lookup table (relative-error
  ridge), the table on log latency with the cell's disconnection flag
  (``lanas.nb201.disconnected``) and the first table + an MLP, simplest first, a richer one
  kept only when it beats the one kept so far on the validation rows with 95 % confidence
  (``lanas.quality.select_model``). Spearman rho, Kendall tau, MAPE, median APE, share
  within +-10 %.
* ``transfer`` (``nb201_transfer.json``) -- few-shot, leave one device out, all 20 others
  as sources (their published tables stand for what their predictors would say):
  K in {5, 10, 20, 50} architectures picked by ``lanas.fewshot.select``, ``--repeats``
  k-means seeds. Methods: ``fewshot`` (``lanas.fewshot.fit``, the adopted one: the mean of
  the two below), ``ridge`` (ridge over all sources alone, the published ~0.95 baseline),
  ``affine`` (the best-ranking single source alone, the ~0.91 floor), ``fewshot_random``
  (the adopted fit on uniformly random picks: what the selection buys), ``table`` (the
  device's own lookup table from the same K rows: no sources). Scored on the architectures not picked; the ceiling is
  ``predictor``'s 900-row model.
* ``budgets`` (``nb201_budgets.json``) -- per device, budgets T at the 20/50/80 % quantiles
  of its latency; K = 10 picks; choose the most accurate architecture (CIFAR-10 validation
  accuracy from the table) whose latency is <= T by the rule: ``upper`` (the adopted one,
  ``lanas.fewshot.with_upper_bound``: predicted log latency + 2 jackknife standard errors
  over the K picks, then 5 % more), ``upper_z2`` (the same without the 5 %) or ``point``
  (the prediction itself). Its true latency / T, its
  accuracy regret against the true best under T, and the share of budgets met.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
from common import record, t_half_width
from scipy.stats import kendalltau, spearmanr

from lanas import fewshot, nb201, nb201_tables
from lanas.nb201_predictor import features, fit_predictor
from lanas.predictor import LatencyPredictor, fit_additive

HOLDOUT_SEED = 201
KS = (5, 10, 20, 50)
QUANTILES = (0.2, 0.5, 0.8)
RULES = ("upper", "upper_z2", "point")


def holdout(devices: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(random.Random(HOLDOUT_SEED).sample(sorted(devices), 3))


def groups_of(device: str, held: tuple[str, ...]) -> tuple[str, ...]:
    """The groups a device's figures are averaged in: by timing resolution (the targets'
    set is ``sub_ms``) and, within it, by role (designed on, or held out)."""
    if device in nb201_tables.WHOLE_MS_DEVICES:
        return ("whole_ms", "held_out_whole_ms" if device in held else "design_whole_ms")
    return ("sub_ms", "held_out_sub_ms" if device in held else "design_sub_ms")


def scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    ape = np.abs(pred / true - 1)
    return {
        "spearman_rho": float(spearmanr(pred, true).statistic),
        "kendall_tau": float(kendalltau(pred, true).statistic),
        "mape": float(ape.mean()),
        "median_ape": float(np.median(ape)),
        "within_10pct": float((ape <= 0.10).mean()),
    }


def group_means(per_device: dict[str, dict], held: tuple[str, ...], key) -> dict[str, dict[str, float]]:
    """Mean of ``key(entry)`` (a dict of figures) over each group's devices (:func:`groups_of`)."""
    groups: dict[str, list[dict[str, float]]] = {}
    for dev, entry in per_device.items():
        for g in groups_of(dev, held):
            groups.setdefault(g, []).append(key(entry))
    return {g: {m: float(np.mean([v[m] for v in vals])) for m in vals[0]} for g, vals in sorted(groups.items())}


# --- a. the predictor from 900 rows ------------------------------------------------------


def part_predictor(tb, f: np.ndarray, held: tuple[str, ...], repeats: int) -> dict:
    per_device = {}
    for dev in tb.devices:
        y = tb.latency_ms[dev]
        runs = []
        for seed in range(repeats):
            perm = np.random.default_rng(seed).permutation(len(y))
            tr, va, te = perm[:900], perm[900:1000], perm[1000:]
            predict, choice = fit_predictor(f, y, tr, va, seed)
            runs.append({**scores(predict(te), y[te]), "chosen": choice})
        per_device[dev] = {
            "mean": {m: float(np.mean([r[m] for r in runs])) for m in runs[0] if m != "chosen"},
            "chosen": [r["chosen"] for r in runs],
        }
        if dev not in held:  # the held-out devices are read from the results file only
            print(
                f"  {dev:15s} rho {per_device[dev]['mean']['spearman_rho']:.4f} "
                f"MAPE {per_device[dev]['mean']['mape']:.4f} chosen {per_device[dev]['chosen']}",
                flush=True,
            )
    return {"per_device": per_device, "group_means": group_means(per_device, held, lambda e: e["mean"])}


# --- b. few-shot transfer, leave one device out ------------------------------------------


def transfer_methods(src: np.ndarray, y: np.ndarray, x: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
    """Each method's predicted ms of every architecture, and the picks each scored on."""
    picks = np.asarray(fewshot.select(src, k, seed=seed))
    rnd = np.random.default_rng(seed).choice(len(y), k, replace=False)
    table = LatencyPredictor(x.shape[1], hidden=())
    yt = torch.as_tensor(y[picks], dtype=torch.float32)
    table.set_target_stats(yt)
    fit_additive(table, torch.as_tensor(x[picks], dtype=torch.float32), yt)
    with torch.no_grad():
        table_pred = table(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    return {
        "fewshot": (fewshot.fit(src, picks, y[picks]).predict(src), picks),
        "ridge": (fewshot.ridge_fit(src, picks, y[picks]).predict(src), picks),
        "affine": (fewshot.affine_from_best_source(src, picks, y[picks]), picks),
        "fewshot_random": (fewshot.fit(src, rnd, y[rnd]).predict(src), rnd),
        "table": (np.maximum(table_pred, 1e-6), picks),
    }


def part_transfer(tb, x_all: np.ndarray, held: tuple[str, ...], repeats: int) -> dict:
    devices = tb.devices
    lat = tb.latency_matrix(devices)
    per_device: dict[str, dict] = {}
    for t, dev in enumerate(devices):
        src, y = np.delete(lat, t, axis=1), lat[:, t]
        per_device[dev] = {}
        for k in KS:
            runs: dict[str, list[dict[str, float]]] = {}
            for seed in range(repeats):
                for name, (pred, picks) in transfer_methods(src, y, x_all, k, seed).items():
                    rest = np.ones(len(y), bool)
                    rest[picks] = False
                    runs.setdefault(name, []).append(scores(pred[rest], y[rest]))
            per_device[dev][f"K={k}"] = {
                name: {
                    **{m: float(np.mean([r[m] for r in rs])) for m in rs[0]},
                    "rho_ci95": t_half_width([r["spearman_rho"] for r in rs]),
                }
                for name, rs in runs.items()
            }
        if dev not in held:
            print(
                f"  {dev:15s} K=10 rho fewshot {per_device[dev]['K=10']['fewshot']['spearman_rho']:.4f} "
                f"affine {per_device[dev]['K=10']['affine']['spearman_rho']:.4f}",
                flush=True,
            )
    means = {
        f"K={k}": {
            name: group_means(per_device, held, lambda e, k=k, name=name: e[f"K={k}"][name])
            for name in per_device[devices[0]][f"K={k}"]
        }
        for k in KS
    }
    return {"per_device": per_device, "group_means": means}


# --- c. latency-constrained choice --------------------------------------------------------


def part_budgets(tb, held: tuple[str, ...], repeats: int, k: int = 10) -> dict:
    devices, acc = tb.devices, tb.accuracy["cifar10"]
    lat = tb.latency_matrix(devices)
    per_device: dict[str, dict] = {}
    for t, dev in enumerate(devices):
        src, y = np.delete(lat, t, axis=1), lat[:, t]
        rows = []
        for seed in range(repeats):
            picks = np.asarray(fewshot.select(src, k, seed=seed))
            point, upper = (np.log(v) for v in fewshot.with_upper_bound(src, picks, y[picks]))
            rules = {"upper": upper, "upper_z2": upper - np.log1p(fewshot.BOUND_MARGIN), "point": point}
            for q in QUANTILES:
                budget = float(np.quantile(y, q))
                best = float(acc[y <= budget].max())
                for rule, logs in rules.items():
                    ok = logs <= np.log(budget)
                    i = int(np.argmax(np.where(ok, acc, -np.inf))) if ok.any() else None
                    rows.append(
                        {
                            "rule": rule,
                            "quantile": q,
                            "seed": seed,
                            "budget_ms": budget,
                            "ratio": float(y[i] / budget) if i is not None else None,
                            "regret": float(best - acc[i]) if i is not None else None,
                        }
                    )
        per_device[dev] = {rule: summarise_budgets([r for r in rows if r["rule"] == rule]) for rule in RULES}
        if dev not in held:
            print(
                f"  {dev:15s} upper met {per_device[dev]['upper']['met']:.2f} regret "
                f"{per_device[dev]['upper']['median_regret']:.2f}; point met {per_device[dev]['point']['met']:.2f}",
                flush=True,
            )
    overall = {}
    for rule in RULES:
        for g in ("sub_ms", "design_sub_ms", "held_out_sub_ms", "whole_ms", "all"):
            devs = [d for d in devices if g == "all" or g in groups_of(d, held)]
            ratios = [r for d in devs for r in per_device[d][rule]["ratios"]]
            regrets = [r for d in devs for r in per_device[d][rule]["regrets"]]
            overall[f"{rule}/{g}"] = {
                "budgets": len(ratios),
                "met": float(np.mean([r is not None and r <= 1 for r in ratios])),
                "median_regret": float(np.median([r for r in regrets if r is not None])),
                "median_ratio": float(np.median([r for r in ratios if r is not None])),
            }
    return {"k": k, "per_device": per_device, "overall": overall}


def summarise_budgets(rows: list[dict]) -> dict:
    ratios = [r["ratio"] for r in rows]
    regrets = [r["regret"] for r in rows]
    found = [r for r in regrets if r is not None]
    return {
        "met": float(np.mean([r is not None and r <= 1 for r in ratios])),
        "median_regret": float(np.median(found)) if found else float("nan"),
        "ratios": ratios,
        "regrets": regrets,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("predictor", "transfer", "budgets", "all"), default="all")
    ap.add_argument("--repeats", type=int, default=5, help="splits (predictor) or selection seeds (transfer, budgets)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tb = nb201_tables.load()
    held = holdout(tb.devices)
    x = nb201.encode_many(tb.cells())
    common = {
        "devices": list(tb.devices),
        "held_out": list(held),
        "whole_ms_phones": list(nb201_tables.WHOLE_MS_DEVICES),
        "repeats": args.repeats,
    }
    command = f".venv/bin/python benchmarks/nb201_devices.py --part {{}} --repeats {args.repeats}"
    parts = ("predictor", "transfer", "budgets") if args.part == "all" else (args.part,)
    for part in parts:
        t0 = time.perf_counter()
        print(f"{part}:", flush=True)
        if part == "predictor":
            out = part_predictor(tb, features(tb.cells()), held, args.repeats)
        elif part == "transfer":
            out = part_transfer(tb, x.numpy().astype(np.float64), held, args.repeats)
        else:
            out = part_budgets(tb, held, args.repeats)
        record(f"nb201_{part}", {**common, **out, "seconds": round(time.perf_counter() - t0, 1)}, command.format(part))


if __name__ == "__main__":
    main()
