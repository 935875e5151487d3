"""Figures the docs quote, rendered from their results files.

A doc marks each rendered block with ``<!-- figures:NAME -->`` ... ``<!-- /figures:NAME -->``;
``tests/test_figures.py`` renders every block from ``benchmarks/results/`` and fails on any
difference, so a quoted figure cannot drift from its file. After a re-recording:

    .venv/bin/python benchmarks/figures.py --write      # rewrite the blocks in README.md and docs/
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = (ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md")))
BLOCK = re.compile(r"(<!-- figures:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.S)

GROUP_NAMES = {
    "sub_ms": "all 18 timed below 1 ms",
    "design_sub_ms": "16 design devices",
    "held_out_sub_ms": "2 held-out devices",
    "whole_ms": "3 phones timed in whole ms",
}
METHODS = ("fewshot", "ridge", "affine", "fewshot_random", "table")


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _source(*names: str) -> str:
    files = ", ".join(f"`benchmarks/results/{n}.json` ({_load(n)['recorded_at'][:10]})" for n in names)
    return f"\n_Rendered from {files}._\n"


def nb201_predictor() -> str:
    d = _load("nb201_predictor")
    rows = ["| devices | Spearman ρ | Kendall τ | MAPE | median APE | within ±10 % |", "|---|---|---|---|---|---|"]
    for g, label in GROUP_NAMES.items():
        m = d["group_means"][g]
        rows.append(
            f"| {label} | {m['spearman_rho']:.3f} | {m['kendall_tau']:.3f} | {m['mape']:.1%} | "
            f"{m['median_ape']:.1%} | {m['within_10pct']:.0%} |"
        )
    p = d["per_device"]["pixel3"]
    rows.append(
        f"\nPixel 3 alone: ρ {p['mean']['spearman_rho']:.3f}, MAPE {p['mean']['mape']:.1%} "
        f"(chosen: {', '.join(sorted(set(p['chosen'])))}); {d['repeats']} splits per device."
    )
    return "\n".join(rows) + "\n" + _source("nb201_predictor")


def nb201_transfer() -> str:
    d, ceiling = _load("nb201_transfer"), _load("nb201_predictor")["group_means"]
    rows = ["| devices | K | " + " | ".join(METHODS) + " | own 900 rows |", "|---|---|" + "---|" * (len(METHODS) + 1)]
    for g, label in GROUP_NAMES.items():
        for k in sorted(d["group_means"], key=lambda s: int(s.split("=")[1])):
            cells = [f"{d['group_means'][k][m][g]['spearman_rho']:.3f}" for m in METHODS]
            rows.append(f"| {label} | {k[2:]} | " + " | ".join(cells) + f" | {ceiling[g]['spearman_rho']:.3f} |")
    ci = d["group_means"]["K=10"]["fewshot"]["sub_ms"]["rho_ci95"]
    rows.append(
        f"\nMean Spearman ρ over each group's devices, each device's ρ the mean over {d['repeats']} selection "
        f"seeds (at K = 10 the adopted fit's 95 % half-width over seeds averages ±{ci:.3f} per device)."
    )
    return "\n".join(rows) + "\n" + _source("nb201_transfer", "nb201_predictor")


def nb201_budgets() -> str:
    d = _load("nb201_budgets")
    rows = [
        "| rule | devices | budgets | met | median regret (points) | median true latency / T |",
        "|---|---|---|---|---|---|",
    ]
    for rule in ("upper", "upper_z2", "point"):
        for g in ("sub_ms", "held_out_sub_ms", "whole_ms", "all"):
            o = d["overall"][f"{rule}/{g}"]
            label = GROUP_NAMES.get(g, "all 21")
            rows.append(
                f"| {rule} | {label} | {o['budgets']} | {o['met']:.1%} | {o['median_regret']:.2f} | "
                f"{o['median_ratio']:.3f} |"
            )
    misses = {
        dev: sum(r is not None and r > 1 for r in v["upper"]["ratios"])
        for dev, v in d["per_device"].items()
        if any(r is not None and r > 1 for r in v["upper"]["ratios"])
    }
    worst = max((r for v in d["per_device"].values() for r in v["upper"]["ratios"] if r is not None), default=1.0)
    rows.append(
        "\nBudgets the adopted rule missed, per device (of "
        f"{len(_budget_rows(d))} per device): "
        + ", ".join(f"{dev} {n}" for dev, n in sorted(misses.items(), key=lambda kv: -kv[1]))
        + f"; the worst landed at {worst:.3f} T."
    )
    return "\n".join(rows) + "\n" + _source("nb201_budgets")


def _budget_rows(d: dict) -> list:
    return next(iter(d["per_device"].values()))["upper"]["ratios"]


def _verdict(value: float, target: float, higher: bool = True) -> str:
    return "met" if (value >= target if higher else value <= target) else "missed"


def nb201_headline() -> str:
    """The three targets of the NAS-Bench-201 benchmarks, each with its verdict."""
    pred, tr, bud = _load("nb201_predictor"), _load("nb201_transfer"), _load("nb201_budgets")
    a = pred["group_means"]["sub_ms"]["spearman_rho"]
    b = tr["group_means"]["K=10"]["fewshot"]["sub_ms"]["spearman_rho"]
    bh = tr["group_means"]["K=10"]["fewshot"]["held_out_sub_ms"]["spearman_rho"]
    c = bud["overall"]["upper/sub_ms"]
    ch = bud["overall"]["upper/held_out_sub_ms"]
    lines = [
        f"- **Predictor from 900 rows** (BRP-NAS protocol): mean Spearman ρ {a:.3f} over the 18 devices timed "
        f"below 1 ms (target 0.98: {_verdict(a, 0.98)}); the phones timed in whole ms "
        f"{pred['group_means']['whole_ms']['spearman_rho']:.3f}.",
        f"- **Few-shot transfer, K = 10**, each device left out in turn: mean ρ {b:.3f} (target 0.96: "
        f"{_verdict(b, 0.96)}); on the 2 held-out devices {bh:.3f}.",
        f"- **Latency budgets** from K = 10 timings: {c['met']:.1%} of {c['budgets']} budgets met (target 95 %: "
        f"{_verdict(c['met'], 0.95)}), median regret {c['median_regret']:.2f} points (target 0.5: "
        f"{_verdict(c['median_regret'], 0.5, higher=False)}); on the held-out devices {ch['met']:.1%} met, "
        f"regret {ch['median_regret']:.2f}.",
    ]
    return "\n".join(lines) + "\n" + _source("nb201_predictor", "nb201_transfer", "nb201_budgets")


def task_spread_animal() -> str:
    """Animal-MNIST regimes: is architecture what decides accuracy there?"""
    rows = [
        "| input | training images | epochs | random architectures | spread / seed noise (points) | ratio "
        "| trivial network | best random − trivial | median training |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = ("task_spread_animal_14", "task_spread_animal_28")
    for name in names:
        d = _load(name)
        for r in d["regimes"]:
            rows.append(
                f"| {d['image_size']}x{d['image_size']} | {r['train_images']} | {d['epochs']} | "
                f"{d['archs']}: {100 * r['min_arch_acc']:.1f}-{100 * r['max_arch_acc']:.1f} % | "
                f"{100 * r['spread_sd']:.2f} / {100 * r['noise_sd']:.2f} | {r['ratio']:.1f} | "
                f"{100 * r['trivial_acc']:.1f} % | {100 * (r['max_arch_acc'] - r['trivial_acc']):+.1f} | "
                f"{r['median_train_s']:.0f} s |"
            )
    d = _load(names[0])
    rows.append(
        f"\n{d['layers']} cells, {d['channels']} channels, {d['seeds']} training seeds per architecture, "
        "two trainings at a time on the 2-core machine."
    )
    return "\n".join(rows) + "\n" + _source(*names)


def task_spread_demo() -> str:
    """The demo's own regime: is random architectures' accuracy spread several times one
    architecture's seed noise (issue 33 asks 3x)?"""
    rows = [
        "| random architectures | their accuracy | spread / seed noise (points) | ratio (target 3) | trivial network "
        "| best random − trivial |",
        "|---|---|---|---|---|---|",
    ]
    names = ("task_spread_demo_range", "task_spread_demo_uniform")
    for name in names:
        d = _load(name)
        r = d["regimes"][0]
        drawn = {"latency-range": "across the latency range", "uniform": "uniform"}[d.get("sampling", "uniform")]
        rows.append(
            f"| {d['archs']} {drawn} | {100 * r['min_arch_acc']:.1f}-{100 * r['max_arch_acc']:.1f} % | "
            f"{100 * r['spread_sd']:.2f} / {100 * r['noise_sd']:.2f} | {r['ratio']:.1f}: {_verdict(r['ratio'], 3.0)} | "
            f"{100 * r['trivial_acc']:.1f} % | {100 * (r['max_arch_acc'] - r['trivial_acc']):+.1f} |"
        )
    d = _load(names[0])
    r = d["regimes"][0]
    rows.append(
        f"\nThe demo's data and training: {d['image_size']}x{d['image_size']} Animal-MNIST, {r['train_images']} "
        f"training images, {d['epochs']} epochs, {d['layers']} cells of {d['channels']} channels; {d['seeds']} "
        f"training seeds per architecture; median training {r['median_train_s']:.0f} s, two at a time on 2 cores."
    )
    return "\n".join(rows) + "\n" + _source(*names)


def measure_builds() -> str:
    """Stage 1 with the traced and the directly written ONNX graph, side by side."""
    d = _load("measure_throughput_builds")
    rows = [
        "| runtime | path | archs/s (2 workers) | network in (share of task time) | export s | compile s "
        "| ratio repeatability | direct / traced archs/s | latency ratio, direct vs traced |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for runtime, r in d["runtimes"].items():
        for path in ("traced", "direct"):
            p = r[path]
            last = (
                (
                    f"{r['speedup_direct_over_traced']:.2f}x",
                    f"{r['latency_ratio_median_rel_diff_direct_vs_traced']:.2%}",
                )
                if path == "direct"
                else ("", "")
            )
            rows.append(
                f"| {runtime} | {path} ({', '.join(p['build_paths'])}) | {p['archs_per_s']:.2f} | "
                f"{p['network_in_share']:.0%} | {p['export_s_median']:.3f} | {p['compile_s_median']:.3f} | "
                f"{p['repeatability_median_rel_diff']:.2%} | {last[0]} | {last[1]} |"
            )
    verdicts = []
    if "onnxruntime" in d["runtimes"]:
        r = d["runtimes"]["onnxruntime"]
        share = r["direct"]["network_in_share"]
        verdicts.append(
            f"ONNX Runtime: {r['speedup_direct_over_traced']:.2f}x archs/s (target 3x: "
            f"{_verdict(r['speedup_direct_over_traced'], 3.0)}), network in {share:.1%} of task time (target 20 %: "
            f"{_verdict(share, 0.20, higher=False)}"
            + (f" by {100 * (share - 0.20):.1f} points" if share > 0.20 else "")
            + f"; of it the session build {r['direct']['compile_s_median']:.3f} s against the graph's "
            f"{r['direct']['export_s_median']:.3f} s)"
        )
    if "openvino" in d["runtimes"]:
        r = d["runtimes"]["openvino"]
        verdicts.append(
            f"OpenVINO: {r['speedup_direct_over_traced']:.2f}x archs/s (target 2x: "
            f"{_verdict(r['speedup_direct_over_traced'], 2.0)}), export {r['direct']['export_s_median']:.3f} s "
            f"(target 0.02 s: {_verdict(r['direct']['export_s_median'], 0.02, higher=False)})"
        )
    diffs = [r["latency_ratio_median_rel_diff_direct_vs_traced"] for r in d["runtimes"].values()]
    verdicts.append(
        f"latency ratios direct vs traced within {max(diffs):.2%} (target 2 %: {_verdict(max(diffs), 0.02, False)})"
    )
    rows.append("\n" + "; ".join(verdicts) + ".")
    rows.append(
        f"\n{d['archs']} architectures per round, {4 * d.get('blocks', 1)} rounds per runtime in blocks of "
        "traced, direct, direct, traced; medians over each path's rounds; repeatability (over every pair of a "
        "path's rounds) and the direct-vs-traced difference are median |relative differences| of the "
        "architectures' latency ratios."
    )
    return "\n".join(rows) + "\n" + _source("measure_throughput_builds")


def _demo(name: str) -> str:
    """A demo run end to end (``demo_tradeoff.py``): time, and what the search found beside its baselines."""
    d = _load(name)
    rows = [
        "| target | λ | searched: test acc | measured ms | latency-matched random: test acc "
        "| partner / searched latency |",
        "|---|---|---|---|---|---|",
    ]
    best = 0.0
    for spec, t in d["targets"].items():
        partners = {n: o for n, o in t["others"].items() if o["kind"] == "matched"}
        for lam, x in sorted(t["searched"].items(), key=lambda kv: float(kv[0])):
            best = max(best, x["test_acc"])
            mate = next((o for n, o in partners.items() if n.startswith(f"matched-lam{float(lam):g}-")), None)
            pair = (
                (f"{100 * mate['test_acc']:.1f} %", f"{mate['measured_latency_ms'] / x['measured_latency_ms']:.2f}")
                if mate
                else ("", "")
            )
            rows.append(
                f"| {spec} | {float(lam):g} | {100 * x['test_acc']:.1f} % | {x['measured_latency_ms']:.3f} | "
                f"{pair[0]} | {pair[1]} |"
            )
    first = next(iter(d["targets"].values()))["others"]
    named = {n: o for n, o in first.items() if o["kind"] in ("baseline", "published", "random")}
    trivial = named.get("trivial", {}).get("test_acc")
    rows.append(
        "\nBaselines (test accuracy): "
        + ", ".join(f"{n} {100 * o['test_acc']:.1f} %" for n, o in sorted(named.items()))
        + (
            f"; the best searched architecture is {100 * (best - trivial):+.1f} points over the trivial network"
            if trivial
            else ""
        )
        + f". Wall time of `lanas reproduce`: {d['wall_s']:.0f} s (the demo's target: 600 s)."
    )
    return "\n".join(rows) + "\n" + _source(name)


def _ci(x: dict, spec: str = "+.1f") -> str:
    return f"{format(100 * x['mean'], spec)} [{format(100 * x['lo'], spec)}, {format(100 * x['hi'], spec)}]"


def _spread(spread: dict | None) -> str:
    """The saturation figures of a report: random architectures' spread over the seed noise."""
    out = ""
    if spread and spread.get("ratio"):
        out += f", accuracy spread of {spread['random_archs']} uniform random architectures {spread['ratio']:.1f}x that"
    if spread and spread.get("matched_ratio"):
        out += f", of the {spread['matched_archs']} latency-matched ones (across the latency range) "
        out += f"{spread['matched_ratio']:.1f}x"
    return out


def peers() -> str:
    """LA-DNAS against every peer (benchmarks/peers.py): hypervolume and latency saved, with intervals."""
    d = _load("peers")
    rows = []
    for spec, c in d["methods"].items():
        n = c["methods"]["ladnas"]["hypervolume"]["n"]
        spread = d["task_spread"].get(spec)
        mine = c["methods"]["ladnas"]
        rows += [
            f"On `{spec}`, {n} search seeds; LA-DNAS's hypervolume {_ci(mine['hypervolume'], '.1f')} % of the box, "
            f"its best architecture {100 * mine['best']['test_acc']:.1f} %; seed-to-seed noise "
            f"{100 * c['seed_noise']:.2f} points" + _spread(spread) + ".",
            "",
            "| peer | its hypervolume (%) | LA-DNAS − peer: hypervolume (points) | verdict | latency saved (points) "
            "| verdict |",
            "|---|---|---|---|---|---|",
        ]
        for m, v in c["versus_ladnas"].items():
            x = c["methods"][m]
            rows.append(
                f"| {x['label']} | {_ci(x['hypervolume'], '.1f')} | {_ci(v['hypervolume'])} | "
                f"**{v['hypervolume']['verdict']}** | {_ci(v['saved'])} | {v['saved']['verdict']} |"
            )
        rows.append("")
    rs = d.get("random_search") or []
    if rs:
        span = lambda f: f"{min(map(f, rs)):.2f}-{max(map(f, rs)):.2f}"  # noqa: E731
        picks = "-".join(sorted({str(r["distinct_picks"]) for r in rs}))
        reach = max(r["max_lambda"] * (r["latency_term_max"] - r["latency_term_min"]) for r in rs)
        rows.append(
            f"Random search trained {min(r['candidates'] for r in rs)}-{max(r['candidates'] for r in rs)} candidates "
            f"per seed in its {min(r['budget_s'] for r in rs):.0f}-{max(r['budget_s'] for r in rs):.0f} s and picked "
            f"{picks} distinct architecture(s) per seed over the λ grid: its candidates' proxy validation CE spans "
            f"{span(lambda r: r['val_ce_max'] - r['val_ce_min'])}, while λ × the latency term moves the objective by "
            f"at most {reach:.2f}.\n"
        )
    return "\n".join(rows) + _source("peers")


def _question(script: str) -> str:
    """A benchmark script's question: the first sentence of its docstring."""
    path = ROOT / "benchmarks" / script
    if not path.is_file():
        return "(script gone; the file is history)"
    doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split("\n\n")[0].split())
    end = min((i for i in (doc.find("? "), doc.find(". ")) if i >= 0), default=len(doc) - 1)
    return doc[: end + 1].rstrip(".") if end < 100 else doc[:97] + "..."


def benchmarks_index() -> str:
    """Every results file: its script, the script's question, when and at which commit it was recorded."""
    rows = ["| results file | script | question | recorded | commit |", "|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        d = json.loads(path.read_text())
        script = next((w.split("/")[-1] for w in (d.get("command") or "").split() if w.endswith(".py")), "?")
        rows.append(
            f"| `{path.name}` | `{script}` | {_question(script)} | {(d.get('recorded_at') or '—')[:10]} | "
            f"{(d.get('commit') or '—')[:7]} |"
        )
    return "\n".join(rows) + "\n"


RENDERERS: dict[str, Callable[[], str]] = {
    "demo": lambda: _demo("demo_tradeoff"),
    "demo-animal": lambda: _demo("demo_tradeoff_animal"),
    "peers": peers,
    "benchmarks-index": benchmarks_index,
    "measure-builds": measure_builds,
    "task-spread-animal": task_spread_animal,
    "task-spread-demo": task_spread_demo,
    "nb201-headline": nb201_headline,
    "nb201-predictor": nb201_predictor,
    "nb201-transfer": nb201_transfer,
    "nb201-budgets": nb201_budgets,
}


def blocks(text: str) -> dict[str, str]:
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def rewrite(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + RENDERERS[m["name"]]() + m.group(4), text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the blocks in place (default: print them)")
    args = ap.parse_args()
    if not args.write:
        for name, render in RENDERERS.items():
            print(f"<!-- figures:{name} -->\n{render()}<!-- /figures:{name} -->\n")
        return
    for doc in DOCS:
        text = doc.read_text()
        if blocks(text) and rewrite(text) != text:
            doc.write_text(rewrite(text))
            print(f"rewrote {doc.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
