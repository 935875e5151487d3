"""Stage 5 as ``lanas report`` runs it: read the evaluated rows, analyse, write every file."""

from __future__ import annotations

import json

from .. import compare
from ..records import TEST_ACC
from ..rundir import RunDir, write_atomic
from ..staleness import mark_done
from . import html as report_html
from .analysis import analyse, budgets, latency_matrix, on_target, specialisation
from .markdown import budget_section, cross_target_section, markdown, methods_section, target_section
from .plots import plot, plot_specialisation
from .tables import BUDGET_FIELDS, write_csv, write_table


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
        write_table(folder / "budgets.csv", budget_rows, BUDGET_FIELDS)
    write_table(
        folder / "latency_matrix.csv", matrix, ["name", "kind", "searched_for", "lam", "seed", TEST_ACC, *specs]
    )
    write_table(folder / "specialisation.csv", spec_rows, list(spec_rows[0]) if spec_rows else ["deployed_on"])
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
