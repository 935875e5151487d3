"""Stage 5 -- ``lanas report``: one accuracy-vs-latency front per target, and what
searching for the right target is worth.

Writes, in ``report/``:

* ``pareto.csv`` -- every (candidate, target) row with its front membership;
* ``pareto.png`` -- one panel per target: the architectures searched for it (colour:
  lambda), random ones as a grey cloud, latency-matched random ones as diamonds, the
  trivial no-convolution baseline as a cross, published ones as stars, and its front;
* ``latency_matrix.csv`` -- every candidate measured on every target;
* ``budgets.csv`` -- every latency budget (``search.budgets_ms``): predicted and measured
  latency, accuracy, ``met`` (measured <= budget), the best lambda-sweep architecture under it;
* ``specialisation.csv`` / ``.png`` -- for targets A != B, the architecture searched for A
  measured on B against the one searched for B, at the same lambda and seed;
* ``methods.png`` -- every search method's front on every target (``search.methods``:
  LA-DNAS against lut, flops and random search; :mod:`pipeline.compare`);
* ``report.html`` -- the same as one self-contained page (figures embedded, tables sortable);
* ``report.md`` -- all of it, with the method comparison (intervals over search seeds,
  verdicts), hypervolume, latency saved at equal-or-better
  accuracy versus lambda = 0, prediction error, the predictors side by side and the
  run manifest.

Latency is the *measured* one: the reference-normalised ratio times the target's median
reference latency (``measured_latency_ms``), so runs drifting on a shared CPU compare.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from lanas import quality
from lanas.costs import KIND_PREFIX
from lanas.pareto import dominated_share, equal_size_hypervolume, hypervolume, pareto_mask
from lanas.transfer import REPEATS
from pipeline import compare, predictor_store, report_html
from pipeline import dataset as ds
from pipeline.rundir import RunDir, read_jsonl, write_atomic
from pipeline.staleness import mark_done

CSV_FIELDS = [
    "target",
    "name",
    "kind",
    "method",
    "searched_for",
    "lam",
    "budget_ms",
    "seed",
    "arch_id",
    "test_acc",
    "test_acc_std",
    "val_acc",
    "measured_latency_ms",
    "measured_raw_ms",
    "predicted_latency_ms",
    "prediction_error",
    "params",
    "on_front",
    "genotype",
]
MATCH_TOLERANCE = 0.10  # a latency-matched partner counts as matched within this relative latency
KINDS = ("searched", "matched", "random", "published", "baseline", "budget")  # candidate kinds (see pipeline.evaluate)
OWN_TARGET_KINDS = ("searched", "matched", "budget")  # kinds that belong to the target they were searched for
BUDGET_FIELDS = [
    "target",
    "budget_ms",
    "predicted_ms",
    "measured_ms",
    "test_acc",
    "met",
    "share_of_budget",
    "name",
    "seed",
    "lam",
    "sweep_best",
    "sweep_best_acc",
    "sweep_best_ms",
]
HV_ACCURACY_MARGIN = 0.01  # hypervolume reference: this much below the lowest accuracy ...
HV_LATENCY_FACTOR = 1.1  # ... and this times the highest latency


def analyse(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Front, hypervolume, savings and prediction error of one target's rows (sets
    ``on_front`` on them)."""
    ok = [r for r in results if r["measured_latency_ms"] is not None]
    searched = [r for r in ok if r["kind"] == "searched"]
    pts = [(r["test_acc"], r["measured_latency_ms"]) for r in searched]
    for r in results:
        r["on_front"] = False
    for r, keep in zip(searched, pareto_mask(pts)):
        r["on_front"] = keep
    all_acc = [r["test_acc"] for r in ok]
    all_lat = [r["measured_latency_ms"] for r in ok]
    reference = (min(all_acc) - HV_ACCURACY_MARGIN, HV_LATENCY_FACTOR * max(all_lat)) if ok else (0.0, 0.0)
    errs = [abs(r["prediction_error"]) for r in ok if r["prediction_error"] is not None]
    derived_errs = [abs(r["prediction_error"]) for r in searched if r["prediction_error"] is not None]
    return {
        "reference_point": reference,
        **compare_kinds(ok, reference),
        "savings": savings(searched),
        "headline": headline(searched),
        "prediction_mape_all": statistics.mean(errs) if errs else None,
        "prediction_mape_derived": statistics.mean(derived_errs) if derived_errs else None,
        "failed": [r["name"] for r in results if r["measured_latency_ms"] is None],
    }


def savings(searched: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per seed: the latency saved at equal-or-better *validation* accuracy versus lambda = 0."""
    out = []
    for base in (r for r in searched if r["lam"] == 0.0):
        key = decision_key(base)
        peers = [r for r in searched if r["seed"] == base["seed"] and r["lam"] > 0 and r[key] >= base[key]]
        best = min(peers, key=lambda r: r["measured_latency_ms"], default=None)
        out.append({
            "seed": base["seed"], "decided_on": key, "lam0_acc": base["test_acc"],
            "lam0_ms": base["measured_latency_ms"], "best_lam": best["lam"] if best else None,
            "best_acc": best["test_acc"] if best else None,
            "saved": 1 - best["measured_latency_ms"] / base["measured_latency_ms"] if best else 0.0,
        })  # fmt: skip
    return out


def headline(searched: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's headline, per seed: the highest lambda versus lambda = 0."""
    out = []
    lams = sorted({r["lam"] for r in searched})
    for seed in sorted({r["seed"] for r in searched}):
        by = {r["lam"]: r for r in searched if r["seed"] == seed}
        if 0.0 in by and len(lams) > 1 and lams[-1] in by:
            hi, lo = by[lams[-1]], by[0.0]
            out.append({
                "seed": seed, "lam": hi["lam"],
                "latency_change": hi["measured_latency_ms"] / lo["measured_latency_ms"] - 1,
                "accuracy_change_points": 100 * (hi["test_acc"] - lo["test_acc"]),
            })  # fmt: skip
    return out


def compare_kinds(ok: list[dict[str, Any]], reference: tuple[float, float]) -> dict[str, Any]:
    """The searched architectures against each other kind: hypervolume of all points and
    at the searched set's size (more points can only add area), per-point dominance, and
    the paired accuracy difference to the latency-matched random architectures."""
    points = {kind: [(r["test_acc"], r["measured_latency_ms"]) for r in ok if r["kind"] == kind] for kind in KINDS}
    n = len(points["searched"])
    by_name = {r["name"]: r for r in ok}
    pairs = [
        (by_name[r["name"][len("matched-") :]], r)
        for r in ok
        if r["kind"] == "matched" and r["name"][len("matched-") :] in by_name
    ]
    return {
        "hypervolume": {kind: hypervolume(p, reference) for kind, p in points.items()},
        # more points can only add area: each kind against the searched set at the size of the smaller one
        "hypervolume_equal_size": {
            kind: {
                "size": min(n, len(p)),
                "searched": equal_size_hypervolume(points["searched"], min(n, len(p)), reference),
                kind: equal_size_hypervolume(p, min(n, len(p)), reference),
            }
            for kind, p in points.items()
            if kind != "searched" and p and n
        },
        "dominance": {
            kind: {
                "dominated_by_searched": dominated_share(points["searched"], p),
                "searched_dominated": dominated_share(p, points["searched"]),
            }
            for kind, p in points.items()
            if kind != "searched" and p
        },
        "matched_latency_ratio": [m["measured_latency_ms"] / s["measured_latency_ms"] for s, m in pairs],
        "searched_minus_matched_acc": quality.paired_bootstrap(
            np.array([s["test_acc"] for s, _ in pairs]), np.array([m["test_acc"] for _, m in pairs])
        )
        if pairs
        else None,
    }


def decision_key(row: dict[str, Any]) -> str:
    """The accuracy that decides: validation, or test only where the candidate was
    trained on train+val (the DARTS protocol leaves no validation split)."""
    return "val_acc" if row.get("val_acc") is not None else "test_acc"


def on_target(results: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    """The rows of ``spec``'s front: every candidate measured on it, except architectures
    searched for another target (those are the specialisation table's)."""
    return [
        r
        for r in results
        if r["target"] == spec and (r["kind"] not in OWN_TARGET_KINDS or r["searched_for"] in (None, spec))
    ]


def budgets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per budget search, on its target: predicted and measured latency, accuracy,
    whether the *measured* latency met the budget, and the best lambda-sweep architecture
    (by the deciding accuracy) that meets the same budget."""
    out = []
    budget_rows = [r for r in results if r["kind"] == "budget" and r["target"] == r["searched_for"]]
    sweeps = {  # per target, once: its lambda-sweep architectures with a measured latency
        spec: [s for s in on_target(results, spec) if s["kind"] == "searched" and s["measured_latency_ms"] is not None]
        for spec in {r["target"] for r in budget_rows}
    }
    for r in sorted(budget_rows, key=lambda r: (r["target"], r["budget_ms"], r["seed"])):
        t, ms = r["budget_ms"], r["measured_latency_ms"]
        meeting = [s for s in sweeps[r["target"]] if s["measured_latency_ms"] <= t]
        best = max(meeting, key=lambda s: (s[decision_key(s)], -s["measured_latency_ms"]), default=None)
        out.append(
            {
                "target": r["target"],
                "budget_ms": t,
                "predicted_ms": r["predicted_latency_ms"],
                "measured_ms": ms,
                "test_acc": r["test_acc"],
                "met": None if ms is None else ms <= t,
                "share_of_budget": None if ms is None else ms / t,
                "name": r["name"],
                "seed": r["seed"],
                "lam": r["lam"],
                "sweep_best": best["name"] if best else None,
                "sweep_best_acc": best["test_acc"] if best else None,
                "sweep_best_ms": best["measured_latency_ms"] if best else None,
            }
        )
    return out


def latency_matrix(results: list[dict[str, Any]], specs: list[str]) -> list[dict[str, Any]]:
    """One row per candidate: accuracy and measured ms on every target."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(
            r["name"],
            {
                "name": r["name"],
                "kind": r["kind"],
                "searched_for": r["searched_for"],
                "lam": r["lam"],
                "seed": r["seed"],
                "test_acc": r["test_acc"],
            },
        )
        row[r["target"]] = r["measured_latency_ms"]
    return [rows[n] for n in rows if all(s in rows[n] for s in specs)]


def specialisation(results: list[dict[str, Any]], specs: list[str]) -> list[dict[str, Any]]:
    """For every deployed target B and other target A: at each (lambda > 0, seed), the
    architecture searched for A measured on B against the one searched for B."""
    on = {(r["target"], r["searched_for"], r["lam"], r["seed"]): r for r in results if r["kind"] == "searched"}
    out = []
    for b in specs:
        for a in specs:
            if a == b:
                continue
            for (tgt, sf, lam, seed), own in sorted(on.items(), key=lambda kv: (kv[0][2], kv[0][3])):
                other = on.get((b, a, lam, seed))
                if tgt != b or sf != b or other is None:
                    continue
                ms_own, ms_other = own["measured_latency_ms"], other["measured_latency_ms"]
                out.append(
                    {
                        "deployed_on": b,
                        "searched_for": a,
                        "lam": lam,
                        "seed": seed,
                        "ms_searched_for_deployed": ms_own,
                        "ms_searched_for_other": ms_other,
                        "acc_searched_for_deployed": own["test_acc"],
                        "acc_searched_for_other": other["test_acc"],
                        "latency_lost": (ms_other / ms_own - 1) if ms_own and ms_other else None,
                    }
                )
    return out


def _csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_atomic(path, buf.getvalue())


def write_csv(path: Path, results: list[dict[str, Any]]) -> None:
    key = lambda r: (r["target"], r["kind"], r["lam"] if r["lam"] is not None else -1, r["name"])  # noqa: E731
    _csv(path, [{**r, "on_front": r.get("on_front", False)} for r in sorted(results, key=key)], CSV_FIELDS)


def _lam_norm(searched: list[dict[str, Any]]):
    """Colour scale of lambda: logarithmic above the smallest lambda > 0 (the grid is a log grid)."""
    from matplotlib.colors import SymLogNorm

    positive = [r["lam"] for r in searched if r["lam"] > 0]
    return SymLogNorm(linthresh=min(positive), vmin=0, vmax=max(positive)) if positive else None


KIND_STYLE = {  # plot style of the candidate kinds drawn as plain points
    "random": {"c": "0.7", "s": 25, "label": "random architectures"},
    "matched": {
        "marker": "D",
        "facecolors": "none",
        "edgecolors": "tab:orange",
        "s": 40,
        "label": "random, latency-matched to a searched one",
    },
    "baseline": {"marker": "X", "s": 90, "c": "k", "label": "trivial (no conv)"},
    "published": {"marker": "*", "s": 140, "c": "tab:purple"},
}


def _xy(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    return [r["measured_latency_ms"] for r in rows], [100 * r["test_acc"] for r in rows]


def _note(ax, r: dict[str, Any], text: str, offset: tuple[int, int]) -> None:
    ax.annotate(text, (r["measured_latency_ms"], 100 * r["test_acc"]), textcoords="offset points", xytext=offset,
                fontsize=8)  # fmt: skip


def _budget_points(ax, ok: list[dict[str, Any]]) -> None:
    for r in (r for r in ok if r["kind"] == "budget"):
        colour = "tab:green" if r["measured_latency_ms"] <= r["budget_ms"] else "tab:red"
        ax.axvline(r["budget_ms"], ls=":", c=colour, lw=1)
        ax.scatter(*_xy([r]), marker="s", s=55, c=colour, edgecolors="k", zorder=3,
                   label="budget search (green: met, red: missed; dotted: its budget)")  # fmt: skip
        _note(ax, r, f"≤{r['budget_ms']:g} ms", (6, -10))


def _searched_points(ax, ok: list[dict[str, Any]], colorbar) -> None:
    searched = [r for r in ok if r["kind"] == "searched"]
    if not searched:
        return
    sc = ax.scatter(*_xy(searched), c=[r["lam"] for r in searched], cmap="viridis", s=60, edgecolors="k",
                    norm=_lam_norm(searched), label="searched for this target (colour: λ)", zorder=3)  # fmt: skip
    colorbar(sc, ax=ax, label="λ")
    for r in searched:
        _note(ax, r, f"λ={r['lam']:g}", (6, 4))
    front = sorted((r for r in searched if r.get("on_front")), key=lambda r: r["measured_latency_ms"])
    ax.step(*_xy(front), where="post", c="tab:red", lw=1.5, label="Pareto front (searched)")


def _panel(ax, rows: list[dict[str, Any]], hardware: str, colorbar) -> None:
    ok = [r for r in rows if r["measured_latency_ms"] is not None]
    for kind, style in KIND_STYLE.items():
        points = [r for r in ok if r["kind"] == kind]
        if points:
            ax.scatter(*_xy(points), **style)
    for r in (r for r in ok if r["kind"] == "published"):
        _note(ax, r, r["name"], (5, -10))
    _budget_points(ax, ok)
    _searched_points(ax, ok, colorbar)
    ax.set(xlabel=f"measured latency (ms, ratio x reference)\n{hardware}", ylabel="test accuracy (%)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one legend entry per label (budget points repeat theirs)
    ax.legend(unique.values(), unique.keys(), loc="best", fontsize=7)


def plot(path: Path, per_target: dict[str, list[dict[str, Any]]], hardware: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(per_target)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 5), squeeze=False)
    for ax, (spec, rows) in zip(axes[0], per_target.items()):
        _panel(ax, rows, hardware[spec], fig.colorbar)
        ax.set_title(f"target {spec}")
    fig.suptitle("Accuracy vs measured latency, one front per target")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_specialisation(path: Path, spec_rows: list[dict[str, Any]], specs: list[str]) -> None:
    """One panel per deployed target: measured ms of the architecture searched for it
    against those searched for the other targets, at each (lambda, seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    deployed = [b for b in specs if any(r["deployed_on"] == b for r in spec_rows)]
    fig, axes = plt.subplots(1, len(deployed), figsize=(5.5 * len(deployed), 4), squeeze=False)
    for ax, b in zip(axes[0], deployed):
        rows = [r for r in spec_rows if r["deployed_on"] == b]
        cells = sorted({(r["lam"], r["seed"]) for r in rows})
        others = sorted({r["searched_for"] for r in rows})
        width = 0.8 / (1 + len(others))
        for i, (lam, seed) in enumerate(cells):
            own = next(r for r in rows if (r["lam"], r["seed"]) == (lam, seed))["ms_searched_for_deployed"]
            ax.bar(i, own, width, color="tab:green", label="searched for this target" if i == 0 else None)
            for j, a in enumerate(others):
                r = next((r for r in rows if (r["lam"], r["seed"], r["searched_for"]) == (lam, seed, a)), None)
                if r is not None and r["ms_searched_for_other"] is not None:
                    ax.bar(
                        i + (j + 1) * width,
                        r["ms_searched_for_other"],
                        width,
                        color=f"C{j + 3}",
                        label=f"searched for {a}" if i == 0 else None,
                    )
        ax.set_xticks(
            [i + width * len(others) / 2 for i in range(len(cells))], [f"λ={lam:g}, seed {seed}" for lam, seed in cells]
        )
        ax.set(ylabel="measured latency (ms, ratio x reference)", title=f"deployed on {b}")
        ax.legend(fontsize=7)
    fig.suptitle("What searching for the wrong target costs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: Any, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def target_section(spec: str, hardware: str, rows: list[dict[str, Any]], a: dict[str, Any]) -> list[str]:
    lines = [
        f"## Target `{spec}`",
        "",
        f"Hardware `{hardware}`.",
        "",
        "| name | kind | λ | test acc | measured (ms, ratio x ref) | predicted (ms) | pred. error | front |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["kind"] != "searched", r["lam"] or 0, r["name"])):
        lines.append(
            f"| {r['name']} | {r['kind']} | {_fmt(r['lam'], 'g')} | {100 * r['test_acc']:.1f} % | "
            f"{_fmt(r['measured_latency_ms'], '.3f')} | {r['predicted_latency_ms']:.3f} | "
            f"{_fmt(r['prediction_error'], '+.1%')} | {'yes' if r.get('on_front') else ''} |"
        )
    return lines + _error_by_kind(rows) + _hypervolume_lines(rows, a) + _comparison_lines(a) + _saving_lines(a) + [""]


def _error_by_kind(rows: list[dict[str, Any]]) -> list[str]:
    """One line: the predictor's mean |error| on the evaluated architectures, kind by kind
    (searched and published ones are where a predictor fitted on random samples extrapolates)."""
    parts = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        errs = [abs(r["prediction_error"]) for r in rows if r["kind"] == kind and r["prediction_error"] is not None]
        if errs:
            parts.append(f"{kind} {sum(errs) / len(errs):.1%} (n={len(errs)})")
    return ["", "Mean |predicted / measured − 1| by kind: " + ", ".join(parts) + "."] if parts else []


def rounds_section(run: RunDir) -> list[str]:
    """The closed loop's record (``search/rounds.jsonl``): per round and target, the error
    of the predictor that searched on what it derived, beside its random-split figures."""
    log = run.path / "search" / "rounds.jsonl"
    if not log.is_file():
        return []
    lines = [
        "## Where the search lands: prediction error per round",
        "",
        f"`search.rounds` = {run.config.search.rounds}. After each round the derived architectures are measured "
        "on every target and, before the next round, added to the predictor's training rows. *Derived*: mean "
        "|predicted / measured − 1| of the predictor that searched the round, on the architectures it derived "
        "(*measured before*: how many of them the dataset already held).",
        "",
        "| round | target | model | train rows | derived (n, measured before) | random test MAPE | published MAPE "
        "| cross-validated MAPE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in read_jsonl(log):
        lines.append(
            f"| {x['round']} | {x['target']} | {x['model'] or 'transferred'} | {x['train_rows']} | "
            f"{x['mape']:.2%} ({x['n']}, {x['measured_before']}) | {_fmt(x['test_mape'], '.2%')} | "
            f"{_fmt(x['published_mape'], '.2%')} | {_fmt(x['cv_mape'], '.2%')} |"
        )
    return lines + [""]


def _hypervolume_lines(rows: list[dict[str, Any]], a: dict[str, Any]) -> list[str]:
    ref_acc, ref_lat = a["reference_point"]
    lines: list[str] = []
    lines += [
        "",
        f"Hypervolume (accuracy x ms; reference point: accuracy {100 * ref_acc:.1f} %, latency "
        f"{ref_lat:.3f} ms), all points of each kind: "
        + ", ".join(f"{k} {v:.5f}" for k, v in a["hypervolume"].items() if any(r["kind"] == k for r in rows)),
        "",
    ]
    if a["hypervolume_equal_size"]:
        lines.append(
            "- Hypervolume at equal set size (mean over subsets of the smaller set's size, since more points "
            "can only add area): "
            + "; ".join(
                f"searched {v['searched']:.5f} vs {k} {v[k]:.5f} ({v['size']} point{'s' if v['size'] > 1 else ''} each)"
                for k, v in a["hypervolume_equal_size"].items()
            )
        )
    return lines


def _comparison_lines(a: dict[str, Any]) -> list[str]:
    lines = []
    for kind, d in a["dominance"].items():
        lines.append(
            f"- Per point: {_fmt(d['dominated_by_searched'], '.0%')} of the {kind} architectures are dominated "
            f"by a searched one; {_fmt(d['searched_dominated'], '.0%')} of the searched ones by a {kind} one"
        )
    ratios = a.get("matched_latency_ratio") or []
    if ratios:
        within = sum(abs(r - 1) <= MATCH_TOLERANCE for r in ratios)
        lines.append(
            f"- Latency-matched random partners: {within} of {len(ratios)} measured within ±{MATCH_TOLERANCE:.0%} "
            f"of their searched architecture's latency (partner / searched {min(ratios):.2f}-{max(ratios):.2f})"
        )
    m = a["searched_minus_matched_acc"]
    if m:
        lines.append(
            f"- Searched minus latency-matched random, test accuracy over {m['n']} pairs: "
            f"{100 * m['mean']:+.2f} points (95 % bootstrap interval [{100 * m['lo']:+.2f}, {100 * m['hi']:+.2f}]; "
            + ("an interval holding 0 is a tie)" if m["lo"] <= 0 <= m["hi"] else "the interval excludes 0)")
        )
    return lines


def _saving_lines(a: dict[str, Any]) -> list[str]:
    lines = []
    for s in a["savings"]:
        on = (
            "validation accuracy"
            if s["decided_on"] == "val_acc"
            else "test accuracy, as the candidates were trained on train + val and have no validation split"
        )
        lines.append(
            f"- Latency saved at equal-or-better accuracy versus λ = 0, seed {s['seed']} (decided on {on}): "
            f"λ = 0 has {100 * s['lam0_acc']:.1f} % test accuracy at {s['lam0_ms']:.3f} ms; "
            + (
                f"λ = {s['best_lam']:g} saves {s['saved']:.1%} ({100 * s['best_acc']:.1f} % test accuracy)"
                if s["best_lam"] is not None
                else "no λ > 0 architecture matched its accuracy (0 % saved)"
            )
        )
    for h in a["headline"]:
        lines.append(
            f"- Highest λ versus λ = 0, seed {h['seed']}: λ = {h['lam']:g} changes latency by "
            f"{h['latency_change']:+.1%} and accuracy by {h['accuracy_change_points']:+.1f} points"
        )
    lines.append(
        f"- Prediction error (|predicted / measured − 1|, mean): derived architectures "
        f"{_fmt(a['prediction_mape_derived'], '.1%')}, all evaluated {_fmt(a['prediction_mape_all'], '.1%')}"
    )
    if a["failed"]:
        lines.append(f"- Measurement failed for: {', '.join(a['failed'])} (kept out of the front)")

    return lines


def budget_section(rows: list[dict[str, Any]]) -> list[str]:
    """The budget table: every budget, met or missed by its measured latency."""
    if not rows:
        return []
    met = sum(bool(r["met"]) for r in rows)
    lines = [
        "## Latency budgets",
        "",
        f"{met} of {len(rows)} budgets met by the *measured* latency of the architecture their search derived "
        "(also `budgets.csv`). *Share*: measured / budget. *Best λ-sweep*: the most accurate architecture of the "
        "λ sweep (by validation accuracy where there is one) that meets the same budget.",
        "",
        "| target | budget (ms) | predicted (ms) | measured (ms) | share | met | test acc | λ at the end | "
        "best λ-sweep under the budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "—" if r["met"] is None else ("yes" if r["met"] else "**missed**")
        sweep = (
            f"{r['sweep_best']}: {100 * r['sweep_best_acc']:.1f} %, {r['sweep_best_ms']:.3f} ms"
            if r["sweep_best"]
            else "none meets it"
        )
        lines.append(
            f"| {r['target']} | {r['budget_ms']:g} | {r['predicted_ms']:.3f} | {_fmt(r['measured_ms'], '.3f')} | "
            f"{_fmt(r['share_of_budget'], '.0%')} | {verdict} | {100 * r['test_acc']:.1f} % | {r['lam']:+.3f} | "
            f"{sweep} |"
        )
    return lines + [""]


def cross_target_section(matrix: list[dict[str, Any]], spec_rows: list[dict[str, Any]], specs: list[str]) -> list[str]:
    lines = [
        "## Cross-target latency matrix",
        "",
        "Every candidate measured on every target (ms, ratio x reference).",
        "",
        "| candidate | searched for | test acc | " + " | ".join(f"`{s}`" for s in specs) + " |",
        "|---|---|---|" + "---|" * len(specs),
    ]
    for m in matrix:
        lines.append(
            f"| {m['name']} | {m['searched_for'] or ('all (λ = 0)' if m['kind'] == 'searched' else '—')} | "
            f"{100 * m['test_acc']:.1f} % | " + " | ".join(_fmt(m[s], ".3f") for s in specs) + " |"
        )
    return lines + _specialisation_lines(spec_rows)


def _specialisation_lines(spec_rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Specialisation: searching for the wrong target",
        "",
        "Deployed on B, the architecture searched for A (same λ and seed) against the one searched for B. "
        "*Latency lost*: how much slower on B the wrong target's architecture is (positive = searching for "
        "B paid off).",
        "",
    ]
    if not spec_rows:
        return lines + ["(needs at least two targets and a λ > 0)", ""]
    lines += [
        "![Specialisation](specialisation.png)",
        "",
        "| deployed on B | searched for A | λ | seed | searched for B (ms, acc) | searched for A (ms, acc) | "
        "latency lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in spec_rows:
        lines.append(
            f"| {s['deployed_on']} | {s['searched_for']} | {s['lam']:g} | {s['seed']} | "
            f"{_fmt(s['ms_searched_for_deployed'], '.3f')}, {100 * s['acc_searched_for_deployed']:.1f} % | "
            f"{_fmt(s['ms_searched_for_other'], '.3f')}, {100 * s['acc_searched_for_other']:.1f} % | "
            f"{_fmt(s['latency_lost'], '+.1%')} |"
        )
    lost = [s["latency_lost"] for s in spec_rows if s["latency_lost"] is not None]
    if lost:
        lines += [
            "",
            f"Across {len(lost)} comparisons: median latency lost {statistics.median(lost):+.1%}, "
            f"range {min(lost):+.1%} to {max(lost):+.1%}. One search seed per cell: a single comparison "
            "is within the measurement noise (~3 %) unless it is larger than that.",
        ]
    return lines + [""]


def methods_section(run: RunDir, specs: list[str], methods: dict, spreads: dict) -> list[str]:
    """LA-DNAS against its peers (:mod:`pipeline.compare`), every target."""
    cfg = run.config
    lines = [
        "## LA-DNAS against its peers",
        "",
        f"Methods {', '.join(f'`{m}`' for m in cfg.search.methods)}; search seeds {list(cfg.search.seeds)}, "
        f"λ grid {list(cfg.search.lambdas)}; every architecture trained with seeds {list(cfg.train_seeds())}. "
        "Each method evaluates one architecture per (λ, seed); λ = 0 is the same plain search for every "
        "gradient method. Verdicts are LA-DNAS minus the peer, paired by search seed: an interval holding 0 "
        "is a tie.",
        "",
        "![Every method's front](methods.png)",
        "",
    ]
    for s in specs:
        lines += compare.section(s, methods[s], spreads[s])
    return lines


def markdown(run: RunDir, sections: list[str], cross: list[str]) -> str:
    fit_md = run.path / "fit" / "metrics.md"
    cfg = run.config
    lines = [
        f"# LA-DNAS report: `{cfg.name}`",
        "",
        f"Search space: {len(cfg.space.ops)} ops, DARTS cells; deployed network {cfg.network.layers} cells, "
        f"{cfg.network.channels} channels, {cfg.data.resolution}x{cfg.data.resolution} input; data "
        f"`{cfg.data.dataset}`; search mode `{cfg.search.settings.mode}`, {cfg.search.settings.epochs} epochs; "
        f"evaluation {cfg.evaluate.train.epochs} epochs from scratch; targets: "
        + ", ".join(f"`{t.spec}`" for t in cfg.targets)
        + ".",
        "",
        build_line(run),
        "",
        "![Pareto fronts](pareto.png)",
        "",
    ]
    lines += sections + cross + rounds_section(run)
    lines += ["## Predictors", ""]
    for spec, m in predictor_store.stored_metas(run).items():
        if m.transferred_from:
            lines += [transfer_sentence(spec, m.transferred_from), ""]
    if fit_md.is_file():
        demoted = re.sub(r"^(#+) ", r"##\1 ", fit_md.read_text(encoding="utf-8"), flags=re.M)  # under "## Predictors"
        lines += [demoted, ""]
    lines += ["## Run manifest", "", "```json", json.dumps(run.manifest(), indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def build_line(run: RunDir) -> str:
    """How stage 1's networks got into each target's runtime (``build_path``), counted per partition."""
    table = ds.read_table(run.path / "measure" / "dataset", columns=["build_path", ds.PARTITION]).to_pylist()
    counts: dict[str, dict[str, int]] = {}
    for r in table:
        path = r["build_path"] or "unrecorded"
        counts.setdefault(r[ds.PARTITION], {}).setdefault(path, 0)
        counts[r[ds.PARTITION]][path] += 1
    parts = [f"`{hw}` " + ", ".join(f"{n} {path}" for path, n in sorted(c.items())) for hw, c in sorted(counts.items())]
    return (
        "Networks into their runtimes (stage 1; eager: the module itself, direct: ONNX written from the modules, "
        "traced: the TorchScript exporter): " + ("; ".join(parts) or "none measured") + "."
    )


def run_report(run: RunDir) -> str:
    every = run.stage_results("evaluate")
    # LA-DNAS's own sections see its architectures; the method comparison sees every method's
    results = [r for r in every if compare.method_of(r) in (None, "ladnas")]
    folder = run.stage("report")
    specs = [t.spec for t in run.config.targets]
    hardware = {r["target"]: r["hardware"] for r in results}
    per_target = {s: on_target(results, s) for s in specs}
    analyses = {s: analyse(rows) for s, rows in per_target.items()}
    all_methods = {s: on_target(every, s) for s in specs}
    methods = {s: compare.compare_methods(rows, run.config.seed) for s, rows in all_methods.items()}
    spreads = {s: compare.task_spread(rows) for s, rows in all_methods.items()}
    matrix, spec_rows = latency_matrix(results, specs), specialisation(results, specs)
    budget_rows = budgets(results)
    write_csv(folder / "pareto.csv", every)
    if budget_rows:
        _csv(folder / "budgets.csv", budget_rows, BUDGET_FIELDS)
    _csv(folder / "latency_matrix.csv", matrix, ["name", "kind", "searched_for", "lam", "seed", "test_acc", *specs])
    _csv(folder / "specialisation.csv", spec_rows, list(spec_rows[0]) if spec_rows else ["deployed_on"])
    plot(folder / "pareto.png", per_target, hardware)
    compare.plot(folder / "methods.png", all_methods, hardware)
    if spec_rows:
        plot_specialisation(folder / "specialisation.png", spec_rows, specs)
    analysis = {"targets": analyses, "methods": methods, "task_spread": spreads, "specialisation": spec_rows,
                "budgets": budget_rows}  # fmt: skip
    write_atomic(folder / "analysis.json", json.dumps(analysis, indent=2))
    sections = [line for s in specs for line in target_section(s, hardware[s], per_target[s], analyses[s])]
    sections += budget_section(budget_rows)
    sections += methods_section(run, specs, methods, spreads)
    text = markdown(run, sections, cross_target_section(matrix, spec_rows, specs))
    write_atomic(folder / "report.md", text)
    write_atomic(folder / "report.html", report_html.render(folder, text, f"lanas report: {run.config.name}"))
    mark_done(
        run, "report", {"front": {s: sum(bool(r.get("on_front")) for r in rows) for s, rows in per_target.items()}}
    )
    return str(folder / "report.md")


def transfer_sentence(spec: str, t: dict[str, Any]) -> str:
    """What the report says of a predictor made by ``lanas fit --transfer-from``."""
    loo = t["loo_mape"][t["model"]]
    named = ["repeated ops" if c == REPEATS else c for c in t.get("costs", []) if not c.startswith(KIND_PREFIX)]
    kinds = len(t.get("costs", [])) - len(named)
    named += [f"nodes of each of {kinds} kinds"] if kinds else []
    costs = f", with the network's {', '.join(named)}" if named else ""
    if t["model"] in ("costs", "table"):  # the source was dropped (``table``: runs before the costs)
        return (
            f"The predictor of `{spec}` was fitted on its {t['samples']} measured architectures alone{costs} "
            f"(leave-one-out MAPE {loo:.2%}): the predictor of `{t['source']}` (`{t['hardware']}`) it was to be "
            f"transferred from ranks this target backwards and was dropped."
        )
    return (
        f"The predictor of `{spec}` was **transferred** from `{t['source']}` (`{t['hardware']}`) with "
        f"{t['samples']} measured architectures{costs} (model {t['model']}, leave-one-out MAPE {loo:.2%}), "
        f"not fitted from scratch."
    )
