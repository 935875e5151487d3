"""Stage 5 -- ``lanas report``: the accuracy-vs-latency Pareto front and what it shows.

Writes ``report/pareto.csv`` (every evaluated architecture, with its front membership),
``report/pareto.png`` (searched architectures annotated with lambda, random ones as a
grey cloud, published ones as stars) and ``report/report.md`` (front, hypervolume,
latency saved at equal-or-better accuracy versus lambda = 0, prediction error on the
derived architectures, predictor quality, run manifest). Latency is the *measured* one,
in ms of the run's reference scale (ratio to the reference network x its median ms).
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from lanas.pareto import hypervolume, pareto_mask
from pipeline.rundir import RunDir, write_atomic

CSV_FIELDS = ["name", "kind", "lam", "seed", "arch_id", "test_acc", "measured_latency_ms", "measured_raw_ms",
              "predicted_latency_ms", "prediction_error", "params", "on_front", "genotype"]


def analyse(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Front, hypervolume, savings and prediction error from evaluated architectures."""
    ok = [r for r in results if r["measured_latency_ms"] is not None]
    searched = [r for r in ok if r["kind"] == "searched"]
    pts = [(r["test_acc"], r["measured_latency_ms"]) for r in searched]
    for r in ok:
        r["on_front"] = False
    for r, keep in zip(searched, pareto_mask(pts)):
        r["on_front"] = keep
    all_acc = [r["test_acc"] for r in ok]
    all_lat = [r["measured_latency_ms"] for r in ok]
    reference = (min(all_acc) - 0.01, 1.1 * max(all_lat)) if ok else (0.0, 0.0)
    hv = {kind: hypervolume([(r["test_acc"], r["measured_latency_ms"]) for r in ok if r["kind"] == kind], reference)
          for kind in ("searched", "random", "published")}
    # latency saved at equal-or-better accuracy versus lambda = 0 (same seed)
    savings = []
    for base in (r for r in searched if r["lam"] == 0.0):
        peers = [r for r in searched if r["seed"] == base["seed"] and r["lam"] > 0 and r["test_acc"] >= base["test_acc"]]
        best = min(peers, key=lambda r: r["measured_latency_ms"], default=None)
        savings.append({"seed": base["seed"], "lam0_acc": base["test_acc"], "lam0_ms": base["measured_latency_ms"],
                        "best_lam": best["lam"] if best else None,
                        "saved": 1 - best["measured_latency_ms"] / base["measured_latency_ms"] if best else 0.0})
    # the paper's headline: highest lambda versus lambda = 0
    headline = []
    lams = sorted({r["lam"] for r in searched})
    for seed in sorted({r["seed"] for r in searched}):
        by = {r["lam"]: r for r in searched if r["seed"] == seed}
        if 0.0 in by and len(lams) > 1 and lams[-1] in by:
            hi, lo = by[lams[-1]], by[0.0]
            headline.append({"seed": seed, "lam": hi["lam"], "latency_change": hi["measured_latency_ms"] / lo["measured_latency_ms"] - 1,
                             "accuracy_change_points": 100 * (hi["test_acc"] - lo["test_acc"])})
    errs = [abs(r["prediction_error"]) for r in ok if r["prediction_error"] is not None]
    derived_errs = [abs(r["prediction_error"]) for r in searched if r["prediction_error"] is not None]
    return {"reference_point": reference, "hypervolume": hv, "savings": savings, "headline": headline,
            "prediction_mape_all": statistics.mean(errs) if errs else None,
            "prediction_mape_derived": statistics.mean(derived_errs) if derived_errs else None,
            "failed": [r["name"] for r in results if r["measured_latency_ms"] is None]}


def write_csv(path: Path, results: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in sorted(results, key=lambda r: (r["kind"], r["lam"] if r["lam"] is not None else -1, r["name"])):
        w.writerow({**r, "on_front": r.get("on_front", False)})
    write_atomic(path, buf.getvalue())


def plot(path: Path, results: list[dict[str, Any]], hardware: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["measured_latency_ms"] is not None]
    fig, ax = plt.subplots(figsize=(7, 5))
    rnd = [r for r in ok if r["kind"] == "random"]
    if rnd:
        ax.scatter([r["measured_latency_ms"] for r in rnd], [100 * r["test_acc"] for r in rnd], c="0.7", s=25, label="random architectures")
    for r in (r for r in ok if r["kind"] == "published"):
        ax.scatter(r["measured_latency_ms"], 100 * r["test_acc"], marker="*", s=140, c="tab:purple")
        ax.annotate(r["name"], (r["measured_latency_ms"], 100 * r["test_acc"]), textcoords="offset points", xytext=(5, -10), fontsize=8)
    searched = [r for r in ok if r["kind"] == "searched"]
    if searched:
        sc = ax.scatter([r["measured_latency_ms"] for r in searched], [100 * r["test_acc"] for r in searched],
                        c=[r["lam"] for r in searched], cmap="viridis", s=60, edgecolors="k", label="searched (colour: lambda)", zorder=3)
        fig.colorbar(sc, ax=ax, label="lambda")
        for r in searched:
            ax.annotate(f"λ={r['lam']:g}", (r["measured_latency_ms"], 100 * r["test_acc"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        front = sorted((r for r in searched if r.get("on_front")), key=lambda r: r["measured_latency_ms"])
        ax.step([r["measured_latency_ms"] for r in front], [100 * r["test_acc"] for r in front], where="post", c="tab:red", lw=1.5, label="Pareto front (searched)")
    ax.set(xlabel=f"measured latency (ms, {hardware})", ylabel="test accuracy (%)", title="Accuracy vs measured latency")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(x: Any, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def markdown(run: RunDir, results: list[dict[str, Any]], a: dict[str, Any]) -> str:
    fit_md = (run.path / "fit" / "metrics.md").read_text() if (run.path / "fit" / "metrics.md").is_file() else ""
    manifest = json.loads((run.path / "manifest.json").read_text())
    cfg = run.config
    ref_acc, ref_lat = a["reference_point"]
    lines = [f"# LA-DNAS report: `{cfg.name}`", "",
             f"Search space: {len(cfg.space.ops)} ops, DARTS cells; deployed network {cfg.network.layers} cells, "
             f"{cfg.network.channels} channels; data `{cfg.data.dataset}`; search mode `{cfg.search.settings.mode}`, "
             f"{cfg.search.settings.epochs} epochs; evaluation {cfg.evaluate.train.epochs} epochs from scratch.", "",
             "![Pareto front](pareto.png)", "", "## Evaluated architectures", "",
             "| name | kind | λ | test acc | measured (ms) | predicted (ms) | pred. error | front |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["kind"] != "searched", r["lam"] or 0, r["name"])):
        lines.append(f"| {r['name']} | {r['kind']} | {_fmt(r['lam'], 'g')} | {100 * r['test_acc']:.1f} % | "
                     f"{_fmt(r['measured_latency_ms'], '.3f')} | {r['predicted_latency_ms']:.3f} | "
                     f"{_fmt(r['prediction_error'], '+.1%')} | {'yes' if r.get('on_front') else ''} |")
    lines += ["", "## Trade-off", "",
              f"Hypervolume (accuracy x ms, reference point: accuracy {100 * ref_acc:.1f} %, latency {ref_lat:.3f} ms = "
              "1 point below the lowest accuracy of any evaluated architecture, 1.1 x the highest measured latency):", ""]
    for kind, hv in a["hypervolume"].items():
        lines.append(f"- {kind}: {hv:.5f}")
    lines += ["", "Latency saved at equal-or-better accuracy versus λ = 0 (same seed):", ""]
    for s in a["savings"]:
        lines.append(f"- seed {s['seed']}: λ = 0 has {100 * s['lam0_acc']:.1f} % at {s['lam0_ms']:.3f} ms; "
                     + (f"λ = {s['best_lam']:g} saves {s['saved']:.1%}" if s["best_lam"] is not None
                        else "no λ > 0 architecture matched its accuracy (0 % saved)"))
    lines += ["", "Highest λ versus λ = 0 (the paper's headline: lower latency at about equal accuracy):", ""]
    for h in a["headline"]:
        lines.append(f"- seed {h['seed']}, λ = {h['lam']:g}: latency {h['latency_change']:+.1%}, "
                     f"accuracy {h['accuracy_change_points']:+.1f} points")
    lines += ["", "## Predictor", "",
              f"Prediction error on the derived architectures (|predicted / measured - 1|, mean): "
              f"{_fmt(a['prediction_mape_derived'], '.1%')}; on all evaluated: {_fmt(a['prediction_mape_all'], '.1%')}.", ""]
    if a["failed"]:
        lines += [f"Measurement failed for: {', '.join(a['failed'])} (kept out of the front).", ""]
    lines += [fit_md.replace("# Latency predictor", "### Latency predictor"), "", "## Run manifest", "", "```json",
              json.dumps(manifest, indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def run_report(run: RunDir) -> str:
    results = run.stage_results("evaluate")
    a = analyse(results)
    folder = run.stage("report")
    hardware = json.loads((run.path / "fit" / "predictor.json").read_text())["hardware"]
    write_csv(folder / "pareto.csv", results)
    plot(folder / "pareto.png", results, hardware)
    write_atomic(folder / "analysis.json", json.dumps(a, indent=2))
    write_atomic(folder / "report.md", markdown(run, results, a))
    run.mark_done("report", {"front": sum(bool(r.get("on_front")) for r in results)})
    return str(folder / "report.md")
