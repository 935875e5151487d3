"""The sections of ``report/report.md``, rendered from :mod:`.analysis`' results."""

from __future__ import annotations

import json
import re
import statistics
from typing import Any

from lanas.costs import KIND_PREFIX
from lanas.transfer import REPEATS

from .. import compare, predictor_store
from .. import dataset as ds
from ..records import MEASURED_MS, PREDICTED_MS, TEST_ACC, BudgetRow, EvaluatedRow, MatrixRow, SpecialisationRow
from ..rundir import RunDir, read_jsonl
from .analysis import MATCH_TOLERANCE


def _fmt(x: Any, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def target_section(spec: str, hardware: str, rows: list[EvaluatedRow], a: dict[str, Any]) -> list[str]:
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
            f"| {r['name']} | {r['kind']} | {_fmt(r['lam'], 'g')} | {100 * r[TEST_ACC]:.1f} % | "
            f"{_fmt(r[MEASURED_MS], '.3f')} | {r[PREDICTED_MS]:.3f} | "
            f"{_fmt(r['prediction_error'], '+.1%')} | {'yes' if r.get('on_front') else ''} |"
        )
    return lines + _error_by_kind(rows) + _hypervolume_lines(rows, a) + _comparison_lines(a) + _saving_lines(a) + [""]


def _error_by_kind(rows: list[EvaluatedRow]) -> list[str]:
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


def _hypervolume_lines(rows: list[EvaluatedRow], a: dict[str, Any]) -> list[str]:
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


def budget_section(rows: list[BudgetRow]) -> list[str]:
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
            f"{_fmt(r['share_of_budget'], '.0%')} | {verdict} | {100 * r[TEST_ACC]:.1f} % | {r['lam']:+.3f} | "
            f"{sweep} |"
        )
    return lines + [""]


def cross_target_section(matrix: list[MatrixRow], spec_rows: list[SpecialisationRow], specs: list[str]) -> list[str]:
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
            f"{100 * m[TEST_ACC]:.1f} % | " + " | ".join(_fmt(m[s], ".3f") for s in specs) + " |"
        )
    return lines + _specialisation_lines(spec_rows)


def _specialisation_lines(spec_rows: list[SpecialisationRow]) -> list[str]:
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
