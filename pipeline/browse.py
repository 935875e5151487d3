"""``lanas runs`` and ``lanas show``: look at runs from the terminal, without Ray.

``runs`` lists the run directories under a folder with each stage's state; ``show``
prints one run's front per target (from ``report/pareto.csv``), its budgets and its
predictors' quality (from ``fit/<hardware>/predictor.json``) as plain tables.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from lanas.target import Target

from .errors import PipelineError
from .records import MEASURED_MS, PREDICTED_MS, TEST_ACC
from .rundir import STAGES, read_jsonl


@dataclass(frozen=True)
class RunSummary:
    name: str
    path: Path
    stages: dict[str, bool]  # stage -> done
    targets: tuple[str, ...]
    modified: float  # newest mtime of config.yaml and the stages' done-markers

    @property
    def state(self) -> str:
        done = [s for s in STAGES if self.stages[s]]
        if len(done) == len(STAGES):
            return "complete"
        return f"{done[-1]} done" if done else "started"


def summary(path: Path) -> RunSummary:
    cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    targets = (cfg.get("measure") or {}).get("targets") or []
    devices = (cfg.get("search") or {}).get("devices") or []  # a space of tables searches for imported devices
    markers = [path / "config.yaml"] + [path / s / "DONE.json" for s in STAGES]
    return RunSummary(
        name=str(cfg.get("name", path.name)),
        path=path,
        stages={s: (path / s / "DONE.json").is_file() for s in STAGES},
        targets=tuple(map(str, devices)) or tuple(_spec(t) for t in targets if isinstance(t, dict)),
        modified=max(m.stat().st_mtime for m in markers if m.exists()),
    )


def _spec(t: dict) -> str:
    try:
        return Target(**t).spec
    except (TypeError, ValueError):
        return "?"


def list_runs(root: Path) -> list[RunSummary]:
    """Every run directory directly under ``root`` (a folder with a config.yaml), newest first."""
    if not root.is_dir():
        raise PipelineError(f"{root} is not a folder of runs")
    runs = [summary(p) for p in sorted(root.iterdir()) if (p / "config.yaml").is_file()]
    return sorted(runs, key=lambda r: r.modified, reverse=True)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def runs_text(root: Path) -> str:
    runs = list_runs(root)
    if not runs:
        return f"no runs under {root} (start one: lanas reproduce --config configs/demo.yaml)"
    rows = [
        [r.path.name, r.state, " ".join("x" if r.stages[s] else "." for s in STAGES), ", ".join(r.targets),
         time.strftime("%Y-%m-%d %H:%M", time.localtime(r.modified))]
        for r in runs
    ]  # fmt: skip
    return table(["run", "state", " ".join(s[0] for s in STAGES), "targets", "modified"], rows)


def _num(value: str, spec: str, scale: float = 1.0) -> str:
    return format(float(value) * scale, spec) if value not in ("", None) else "—"


def front_text(run: Path) -> list[str]:
    """Per target, the searched architectures on its front, then the references."""
    path = run / "report" / "pareto.csv"
    if (run / "report" / "fronts.json").is_file():
        return true_front_text(run)
    if not path.is_file():
        return ["No report yet: run `lanas report` (or `lanas reproduce`) to see the fronts."]
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    out = []
    for spec in dict.fromkeys(r["target"] for r in rows):
        mine = [r for r in rows if r["target"] == spec and (r["kind"] != "searched" or r["on_front"] == "True")]
        mine = [r for r in mine if r["kind"] in ("searched", "baseline", "published", "budget")]
        mine.sort(key=lambda r: float(r[MEASURED_MS] or "inf"))
        out += [f"Front on {spec} (searched architectures on it, and the references):", table(
            ["candidate", "kind", "λ", "test acc %", "measured ms", "predicted ms"],
            [[r["name"], r["kind"], _num(r["lam"], "g"), _num(r[TEST_ACC], ".1f", 100),
              _num(r[MEASURED_MS], ".4g"), _num(r[PREDICTED_MS], ".4g")] for r in mine],
        ), ""]  # fmt: skip
    return out


def true_front_text(run: Path) -> list[str]:
    """A lookup-evaluated run (space nb201): per device its share of the true front and the searched cells."""
    fronts = json.loads((run / "report" / "fronts.json").read_text(encoding="utf-8"))
    rows = read_jsonl(run / "evaluate" / "results.jsonl")
    out = []
    for device, f in fronts.items():
        share = f["hypervolume_share"]
        mine = sorted((r for r in rows if r["device"] == device == r["searched_for"]), key=lambda r: r["latency_ms"])
        out += [f"{device}: the searched front's hypervolume is {_num(share, '.1f', 100)} % of the true front's "
                f"({len(f['front'])} of 15,625 architectures on it)", table(
            ["λ", "seed", "accuracy % (lookup)", "latency ms", "source", "architecture"],
            [[_num(r["lam"], "g"), str(r["seed"]), f"{r['accuracy']:.2f}", f"{r['latency_ms']:.4g}",
              r["latency_source"], r["arch"]] for r in mine],
        ), ""]  # fmt: skip
    return out


def crossdevice_text(run: Path) -> list[str]:
    files = sorted((run / "fit").glob("*/crossdevice.json"))
    rows = []
    for f in files:
        m = json.loads(f.read_text(encoding="utf-8"))
        sources = ", ".join(m["sources"]) if len(m["sources"]) <= 4 else f"{len(m['sources'])} devices"
        rows.append([m["target"], str(m["timed"]), sources, _num(m["loo_mape"], ".1f", 100),
                     _num(m["loo_spearman"] if m["loo_spearman"] is not None else "", ".3f")])  # fmt: skip
    head = ["device", "timings", "sources", "leave-one-out MAPE %", "Spearman ρ"]
    return ["Cross-device fits (devices outside the cluster):", table(head, rows), ""] if rows else []


def predictors_text(run: Path) -> list[str]:
    files = sorted((run / "fit").glob("*/predictor.json"))
    if not files:
        unfitted = [] if (run / "fit" / "DONE.json").is_file() else ["No predictors yet: run `lanas fit`."]
        return crossdevice_text(run) or unfitted
    rows = []
    for f in files:
        p = json.loads(f.read_text(encoding="utf-8"))
        test = p.get("test") or {}
        chosen = (p.get("selection") or {}).get("chosen", "")
        rows.append([p.get("hardware", f.parent.name), str(chosen), str((p.get("rows") or {}).get("train", "")),
                     _num(test.get("mape", ""), ".2f", 100), _num(test.get("kendall_tau", ""), ".3f"),
                     str(p.get("transferred_from") or "")])  # fmt: skip
    return ["Predictors:", table(["hardware", "model", "train rows", "test MAPE %", "Kendall τ", "transferred from"],
                                 rows), ""] + crossdevice_text(run)  # fmt: skip


def budgets_text(run: Path) -> list[str]:
    path = run / "report" / "budgets.csv"
    if not path.is_file():
        return []
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    return ["Budgets:", table(
        ["target", "budget ms", "measured ms", "met", "test acc %"],
        [[r["target"], r["budget_ms"], _num(r.get("measured_ms", ""), ".4g"), r.get("met", ""),
          _num(r.get(TEST_ACC, ""), ".1f", 100)] for r in rows],
    ), ""]  # fmt: skip


def show_text(run: Path) -> str:
    if not (run / "config.yaml").is_file():
        raise PipelineError(f"{run} is not a run directory (no config.yaml)")
    s = summary(run)
    head = [f"Run {s.name} ({run}): {s.state}; stages " + ", ".join(f"{k} {'done' if v else '—'}"
                                                                   for k, v in s.stages.items()), ""]  # fmt: skip
    return "\n".join(head + front_text(run) + budgets_text(run) + predictors_text(run)).rstrip()
