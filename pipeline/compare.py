"""Stage 5, the science: LA-DNAS against its peers (``search.methods``), per target, on
the same budget of evaluated architectures, with intervals over the search seeds.

Per target and method, from the evaluated rows (accuracy: the mean over the training
seeds ``evaluate.seeds``; latency: measured):

* **hypervolume** of each search seed's architectures (every lambda of that seed; the
  shared lambda = 0 search counts for every gradient method), against one reference
  point for all methods of the target, as a share of the box from that point to (100 %,
  0 ms); its mean over seeds;
* **best accuracy**: the most accurate architecture, mean +- std over training seeds;
* **latency saved at matched accuracy** versus lambda = 0, per seed: the reference is
  the plain search of that seed (lambda = 0, the same for every method); the fastest
  lambda > 0 architecture of the method whose accuracy is within the seed-to-seed noise
  (the pooled training-seed std) of it or better; ``1 - its ms / lambda = 0's ms``
  (0 when none matches). Mean over seeds;
* **search wall time**: the Tune trials' own time, summed (a random trial serves every
  lambda and target of its seed).

Intervals are 95 % percentile bootstrap intervals of two-level draws: the search seeds
resampled with replacement, and every architecture's accuracy one of its training
seeds' (so both the search's and the training's seed noise widen them). LA-DNAS against
each peer: the difference (LA-DNAS - peer) of both means within the same draws (paired
by seed): an interval above 0 is a win, below 0 a loss, holding 0 a **tie**. With fewer
than :data:`MIN_SEEDS` search seeds there are no intervals and no verdicts (a bootstrap
over two seeds is no interval).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

from lanas.pareto import hypervolume, pareto_mask
from lanas.penalty import GRADIENT_METHODS, METHODS

from .records import MEASURED_MS, TEST_ACC, EvaluatedRow

HV_ACCURACY_MARGIN = 0.01  # reference point: this much below the lowest accuracy ...
HV_LATENCY_FACTOR = 1.1  # ... and this times the highest latency
BOOTSTRAP_DRAWS = 1000
MIN_SEEDS = 3  # search seeds a verdict needs (fewer: figures without intervals)
LABELS = {
    "ladnas": "LA-DNAS (predictor)",
    "lut": "LUT (ProxylessNAS/FBNet)",
    "flops": "FLOPs penalty",
    "random": "random search (proxy training, same time)",
    "matched": "latency-matched random (λ = 0 + partners)",
    "trivial": "trivial network (no convolution)",
}


def method_of(r: EvaluatedRow) -> str | None:
    """The search method of an evaluated row (None for the reference kinds)."""
    if r["kind"] != "searched":
        return None
    return r.get("method") or "ladnas"


def rows_of(rows: list[EvaluatedRow], method: str) -> list[EvaluatedRow]:
    """A method's measured architectures on one target; gradient methods share lambda = 0."""
    shared = method in GRADIENT_METHODS
    return [
        r
        for r in rows
        if r[MEASURED_MS] is not None
        and (method_of(r) == method or (shared and method_of(r) == "ladnas" and r["lam"] == 0.0))
    ]


def seed_noise(rows: list[EvaluatedRow]) -> float | None:
    """Pooled standard deviation of test accuracy over training seeds (rows with >= 2)."""
    var = [r["test_acc_std"] ** 2 for r in rows if r.get("test_acc_std") is not None]
    return float(np.sqrt(np.mean(var))) if var else None


def _stats(
    methods: dict[str, list[EvaluatedRow]],
    base: dict[int, EvaluatedRow],
    seeds: list[int],
    ref: tuple[float, float],
    tol: float,
    acc: dict[str, float],
) -> dict[str, dict[str, list[float]]]:
    """Per method, per seed of ``seeds`` (repeats allowed): normalised hypervolume and latency
    saved at matched accuracy, with ``acc`` (arch_id -> accuracy) as every architecture's accuracy."""
    box = (1 - ref[0]) * ref[1]
    out = {}
    for m, mine in methods.items():
        hv, saved = [], []
        for s in seeds:
            pts = [r for r in mine if r["seed"] == s]
            hv.append(hypervolume([(acc[r["arch_id"]], r[MEASURED_MS]) for r in pts], ref) / box)
            floor = acc[base[s]["arch_id"]] - tol
            fastest = min((r[MEASURED_MS] for r in pts if r["lam"] > 0 and acc[r["arch_id"]] >= floor),
                          default=None)  # fmt: skip
            saved.append(max(0.0, 1 - fastest / base[s][MEASURED_MS]) if fastest else 0.0)
        out[m] = {"hypervolume": hv, "saved": saved}
    return out


def _verdict(lo: float, hi: float) -> str:
    return "wins" if lo > 0 else "loses" if hi < 0 else "ties"


STATS = ("hypervolume", "saved")


def _bootstrap(methods, base, seeds, ref, tol, archs, seed: int, draws: int):
    """Two-level bootstrap draws: search seeds resampled, and each architecture's accuracy
    one of its training seeds' (``archs``: arch_id -> accuracies). Returns per method and
    statistic the draws' means, and their differences LA-DNAS - method."""
    rng = np.random.default_rng(seed)
    boot = {m: {w: [] for w in STATS} for m in methods}
    diffs = {m: {w: [] for w in STATS} for m in methods}
    for _ in range(draws if len(seeds) >= MIN_SEEDS else 0):
        drawn = [seeds[i] for i in rng.integers(0, len(seeds), len(seeds))]
        acc = {a: v[int(rng.integers(0, len(v)))] for a, v in archs.items()}
        st = _stats(methods, base, drawn, ref, tol, acc)
        for m in methods:
            for w in STATS:
                boot[m][w].append(float(np.mean(st[m][w])))
                if "ladnas" in st:
                    diffs[m][w].append(float(np.mean(st["ladnas"][w]) - np.mean(st[m][w])))
    return boot, diffs


def _interval(mean: float | None, values: list[float], n: int) -> dict[str, Any]:
    """``mean`` with the 95 % percentile interval of ``values`` (none without draws)."""
    lo, hi = (float(q) for q in np.quantile(values, [0.025, 0.975])) if values else (None, None)
    return {"mean": mean, "lo": lo, "hi": hi, "n": n}


def _summary(m: str, mine: list[EvaluatedRow], seeds: list[int], point: dict, boot: dict) -> dict[str, Any]:
    """One method's row: its intervals, per-seed figures, best architecture, wall time, front."""
    best = max(mine, key=lambda r: (r[TEST_ACC], -r[MEASURED_MS]))
    trials = {r.get("trial_path"): r.get("search_s") for r in mine if method_of(r) == m}
    wall = [v for v in trials.values() if v is not None]
    front = pareto_mask([(r[TEST_ACC], r[MEASURED_MS]) for r in mine])
    return {
        "label": LABELS[m],
        "architectures": len({r["arch_id"] for r in mine}),
        "seeds": seeds,
        **{w: _interval(float(np.mean(point[w])) if seeds else None, boot[w], len(seeds)) for w in STATS},
        "per_seed": {w: dict(zip(seeds, point[w])) for w in STATS},
        "best": {
            "name": best["name"],
            TEST_ACC: best[TEST_ACC],
            "test_acc_std": best.get("test_acc_std"),
            "ms": best[MEASURED_MS],
        },  # fmt: skip
        "mean_acc": statistics.mean(r[TEST_ACC] for r in mine),
        "search_s": sum(wall) if wall else None,
        "front": [r["name"] for r, keep in zip(mine, front) if keep],
    }


def references(rows: list[EvaluatedRow], seeds: list[int]) -> dict[str, list[EvaluatedRow]]:
    """The peers that are no search, per search seed, as rows ``_stats`` reads: ``matched``,
    the seed's plain search (lambda = 0) with the latency-matched random partners of its
    lambda > 0 architectures in their place (what the latency-aware search bought over
    random architectures of the same predicted latency); ``trivial``, the no-convolution
    network alone (one point, the same for every seed)."""
    measured = [r for r in rows if r[MEASURED_MS] is not None]
    base = [r for r in measured if method_of(r) == "ladnas" and r["lam"] == 0.0]
    out = {}
    matched = [r for r in measured if r["kind"] == "matched" and r["seed"] in seeds]
    if matched:
        out["matched"] = base + matched
    trivial = [r for r in measured if r["kind"] == "baseline" and r["name"] == "trivial"]
    if trivial and seeds:
        out["trivial"] = [{**trivial[0], "seed": s, "lam": math.inf} for s in seeds]
    return out


def compare_methods(rows: list[EvaluatedRow], seed: int = 0, draws: int = BOOTSTRAP_DRAWS) -> dict[str, Any]:
    """The method comparison on one target's rows (see the module docstring)."""
    names = [m for m in METHODS if any(method_of(r) == m for r in rows)]
    methods = {m: rows_of(rows, m) for m in names}
    if "ladnas" in methods:
        seeds = sorted({r["seed"] for r in methods["ladnas"] if r["lam"] == 0.0})
        methods.update(references(rows, seeds))
    every = [r for mine in methods.values() for r in mine]
    if not every:
        return {"methods": {}, "versus_ladnas": {}}
    ref = (min(r[TEST_ACC] for r in every) - HV_ACCURACY_MARGIN, HV_LATENCY_FACTOR * max(
        r[MEASURED_MS] for r in every))  # fmt: skip
    noise = seed_noise([r for r in rows if r[MEASURED_MS] is not None])
    tol = noise or 0.0
    base = {r["seed"]: r for r in methods.get("ladnas", []) if method_of(r) == "ladnas" and r["lam"] == 0.0}
    seeds = sorted(base)
    archs = {r["arch_id"]: r.get("test_accs") or [r[TEST_ACC]] for r in every}
    point = _stats(methods, base, seeds, ref, tol, {r["arch_id"]: r[TEST_ACC] for r in every})
    boot, diffs = _bootstrap(methods, base, seeds, ref, tol, archs, seed, draws)
    out = {m: _summary(m, mine, seeds, point[m], boot[m]) for m, mine in methods.items()}
    versus: dict[str, Any] = {}
    for m in (m for m in methods if m != "ladnas" and "ladnas" in methods):
        versus[m] = {}
        for w in STATS:
            d = _interval(out["ladnas"][w]["mean"] - out[m][w]["mean"] if seeds else None, diffs[m][w], len(seeds))
            versus[m][w] = {**d, "verdict": _verdict(d["lo"], d["hi"]) if d["lo"] is not None else None}
    return {"reference_point": ref, "seed_noise": noise, "min_seeds": MIN_SEEDS, "methods": out,
            "versus_ladnas": versus}  # fmt: skip


def task_spread(rows: list[EvaluatedRow]) -> dict[str, Any] | None:
    """Is accuracy saturated? The spread (std) of the random cloud's mean accuracies
    (uniform samples) against the seed-to-seed noise (pooled training-seed std), and the
    same for the latency-matched random architectures, which span the latency range."""
    noise = seed_noise(rows)
    out: dict[str, Any] = {"noise": noise}
    for kind, key in (("random", "random_archs"), ("matched", "matched_archs")):
        cloud = [r for r in rows if r["kind"] == kind]
        spread = statistics.stdev(r[TEST_ACC] for r in cloud) if len(cloud) >= 2 else None
        out[key] = len(cloud)
        out["spread" if kind == "random" else "matched_spread"] = spread
        out["ratio" if kind == "random" else "matched_ratio"] = spread / noise if spread is not None and noise else None
    return out if out["random_archs"] >= 2 or out["matched_archs"] >= 2 else None


def _ci(x: dict[str, Any] | None, scale: float, spec: str, unit: str = "") -> str:
    """``mean unit [lo, hi]``, or the mean alone and why there is no interval."""
    if x is None or x["mean"] is None:
        return "—"
    mean = format(scale * x["mean"], spec) + unit
    if x["lo"] is None:
        return f"{mean} (no interval: {x.get('n', 1)} seed{'s' if x.get('n', 1) != 1 else ''})"
    return f"{mean} [{format(scale * x['lo'], spec)}, {format(scale * x['hi'], spec)}]"


def section(spec: str, c: dict[str, Any], spread: dict[str, Any] | None) -> list[str]:
    """The report's method table and verdicts for one target."""
    if not c["methods"]:
        return []
    noise = c["seed_noise"]
    lines = [
        f"### Methods on `{spec}`",
        "",
        f"Hypervolume: per search seed, as a share of the box from the reference point (accuracy "
        f"{100 * c['reference_point'][0]:.1f} %, {c['reference_point'][1]:.3f} ms) to (100 %, 0 ms); mean [95 % "
        "bootstrap interval, search seeds and each architecture's training seed resampled]. Latency saved: "
        "versus the plain search (λ = 0) of the same seed, by the fastest λ > 0 architecture "
        + (
            f"within {100 * noise:.2f} points (the seed-to-seed noise) of its accuracy"
            if noise
            else "with its accuracy or better"
        )  # fmt: skip
        + ". Accuracy: test, mean ± std over training seeds.",
        "",
        "| method | architectures | hypervolume | best accuracy | latency saved at matched accuracy "
        "| search wall time |",
        "|---|---|---|---|---|---|",
    ]
    for x in c["methods"].values():
        b = x["best"]
        std = f" ± {100 * b['test_acc_std']:.1f}" if b["test_acc_std"] is not None else ""
        wall = f"{x['search_s']:.0f} s" if x["search_s"] is not None else "—"
        lines.append(
            f"| {x['label']} | {x['architectures']} | {_ci(x['hypervolume'], 100, '.1f', ' %')} | "
            f"{100 * b[TEST_ACC]:.1f}{std} % ({b['ms']:.3f} ms) | {_ci(x['saved'], 100, '.1f', ' %')} | {wall} |"
        )
    return lines + [""] + _verdict_lines(c, spread) + [""]


def _verdict_lines(c: dict[str, Any], spread: dict[str, Any] | None) -> list[str]:
    """Below the method table: LA-DNAS against each peer, and whether the task is saturated."""
    lines = []
    for m, d in c["versus_ladnas"].items():
        hv, sv = d["hypervolume"], d["saved"]
        if hv["verdict"] is None:
            lines.append(
                f"- LA-DNAS vs {LABELS[m]}: fewer than {c['min_seeds']} search seeds, no interval: no verdict "
                f"(hypervolume difference {_ci(hv, 100, '+.1f', ' points')})."
            )
            continue
        lines.append(
            f"- LA-DNAS vs {LABELS[m]}: **{hv['verdict']}** on hypervolume (difference "
            f"{_ci(hv, 100, '+.1f', ' points')}), **{sv['verdict']}** on latency saved "
            f"({_ci(sv, 100, '+.1f', ' points')})."
        )
    if len(c["methods"]) == 1:
        lines.append("- Only LA-DNAS ran: list its peers in `search.methods` to compare (`configs/peers.yaml`).")
    if spread:
        lines.append(_spread_line(spread))
    return lines


def _spread_line(spread: dict[str, Any]) -> str:
    """The report's saturation line: each random set's accuracy spread against the seed noise."""
    parts = []
    for n, s, what in ((spread["random_archs"], spread["spread"], "uniform random architectures"),
                       (spread.get("matched_archs", 0), spread.get("matched_spread"),
                        "latency-matched random ones (across the latency range)")):  # fmt: skip
        if s is not None:
            parts.append(f"over the {n} {what} {100 * s:.2f} points (std)"
                         + (f", {s / spread['noise']:.1f}x" if spread["noise"] else ""))  # fmt: skip
    noise = (f"against seed-to-seed noise {100 * spread['noise']:.2f} points" if spread["noise"]
             else "with one training seed, so no seed-to-seed noise to set it against (`evaluate.seeds`)")  # fmt: skip
    return f"- Is the task saturated? Accuracy spread {'; '.join(parts)}; {noise}."


def plot(path, per_target: dict[str, list[EvaluatedRow]], hardware: dict[str, str]) -> None:
    """One panel per target: every method's architectures (mean accuracy, with the
    training-seed std as error bars) and each method's front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(per_target)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 5), squeeze=False)
    for ax, (spec, rows) in zip(axes[0], per_target.items()):
        for i, m in enumerate(m for m in METHODS if any(method_of(r) == m for r in rows)):
            mine = rows_of(rows, m)
            x, y = [r[MEASURED_MS] for r in mine], [100 * r[TEST_ACC] for r in mine]
            err = [100 * (r.get("test_acc_std") or 0.0) for r in mine]
            ax.errorbar(x, y, yerr=err, fmt="o", ms=5, c=f"C{i}", alpha=0.7, label=LABELS[m], capsize=2)
            front = sorted(p for p, k in zip(zip(x, y), pareto_mask([(a, ms) for ms, a in zip(x, y)])) if k)
            if front:
                ax.step(*zip(*front), where="post", c=f"C{i}", lw=1.2)
        ax.set(xlabel=f"measured latency (ms)\n{hardware[spec]}", ylabel="test accuracy (%, mean over seeds)",
               title=f"target {spec}")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("LA-DNAS and its peers: every method's front")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
