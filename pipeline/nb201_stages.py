"""The five stages of a NAS-Bench-201 run (``space: nb201``), where latency and accuracy
come from tables instead of timings and training:

* measure -- import the tables the config lists (:func:`pipeline.imported.import_listed`);
* fit -- each searched device's latency over the whole space, 15,625 values: its own
  table; else its cross-device fit (``lanas fit --transfer-from``) predicting every
  architecture; else, from 100 or more of its own timings, the pipeline's predictor design
  (:mod:`lanas.nb201_predictor`: lookup tables or a table + MLP, chosen on held-out
  timings); written to ``fit/<device>/space_latency.parquet``;
* search -- a Ray Tune sweep of device x λ x seed, each trial a differentiable search of
  the NAS-Bench-201 supernet on CIFAR-10 (``lanas.search.search``) whose latency term is
  the *exact* expected latency of the cells ``alpha`` draws (``lanas.nb201_supernet``);
* evaluate -- by lookup: every searched cell's published 200-epoch accuracy and its latency
  on every searched device (table, or predicted where the device was fitted from a few
  timings: the rows say which), nothing trained or timed;
* report -- per device the *true* Pareto front of all 15,625 architectures (table accuracy
  x latency) beside the searched ones, and the searched front's hypervolume as a share of
  the true front's: how close the search got.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import matplotlib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lanas import nb201_tables
from lanas.budget import Budget
from lanas.data import load_splits, loader
from lanas.nb201 import Cell
from lanas.nb201_network import Nb201Macro
from lanas.nb201_predictor import features, fit_predictor
from lanas.nb201_supernet import Nb201SuperNet, space_latency
from lanas.pareto import front_indices, hypervolume
from lanas.search import search

from .errors import PipelineError
from .imported import import_listed, partition_rows, predicted
from .records import PREDICTED_MS, MeasuredRow, Nb201Evaluated, Nb201Result, Nb201Trial
from .rundir import RunDir, read_jsonl, write_atomic, write_jsonl
from .staleness import mark_done

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402 - after choosing the file backend
from matplotlib.ticker import ScalarFormatter  # noqa: E402

SPACE_LATENCY = "space_latency.parquet"


def run_import(run: RunDir) -> dict[str, Any]:
    t0 = time.perf_counter()
    added = dict(import_listed(run))
    for name, n in added.items():
        print(f"[measure] {name}: {n} rows imported", flush=True)
    summary = {"imported": added, "wall_s": time.perf_counter() - t0}
    mark_done(run, "measure", summary)
    return summary


def search_devices(run: RunDir) -> tuple[str, ...]:
    devices = run.config.search.devices
    if not devices:
        raise PipelineError("search.devices: list the imported devices to search for (space nb201)")
    unknown = [d for d in devices if run.config.imported_device(d) is None]
    if unknown:
        names = ", ".join(d.name for d in run.config.imported)
        raise PipelineError(f"search.devices: {unknown[0]} is not an imported device of the run ({names})")
    return devices


MIN_OWN_ROWS = 100  # timings of its own from which a device's latency of the whole space is predicted
VAL_SHARE = 0.1  # of them, held out to choose the predictor (lanas.nb201_predictor)


def _own_predictor(rows: dict[str, MeasuredRow], cells: list[Cell], seed: int) -> tuple[np.ndarray, str]:
    ids = [c.arch_id for c in cells]
    have = np.array([i for i, a in enumerate(ids) if a in rows])
    y = np.full(len(cells), np.nan)
    y[have] = [rows[ids[i]]["latency_ms"] for i in have]
    perm = np.random.default_rng(seed).permutation(have)
    n_val = max(1, round(VAL_SHARE * len(perm)))
    predict, name = fit_predictor(features(cells), y, perm[n_val:], perm[:n_val], seed)
    floor = 0.01 * float(np.nanmin(y))  # an additive table may extrapolate below zero; a latency cannot
    return np.maximum(predict(np.arange(len(cells))), floor), name


def _whole_space(run: RunDir, device: str, cells: list[Cell]) -> tuple[np.ndarray, str, str]:
    """``device``'s ms for every architecture (official order), where they come from
    (``table`` or ``predicted``) and how, in words."""
    rows = partition_rows(run, device)
    ids = [c.arch_id for c in cells]
    if all(a in rows for a in ids):
        return np.array([rows[a]["latency_ms"] for a in ids]), "table", "its table"
    if (run.path / "fit" / device / "crossdevice.json").is_file():
        index, point, _, _ = predicted(run, device)
        if all(a in index for a in ids):
            return np.array([point[index[a]] for a in ids]), "predicted", "its cross-device fit"
    if len(rows) >= MIN_OWN_ROWS:
        ms, name = _own_predictor(rows, cells, run.config.seed)
        return ms, "predicted", f"a predictor ({name}) fitted on its {len(rows)} timings"
    raise PipelineError(
        f"{device} has {len(rows)} of {len(ids)} latencies and no cross-device fit over the whole space: import its "
        f"full table or {MIN_OWN_ROWS}+ timings, or time a few and run `lanas fit --target {device} --transfer-from "
        "SRC[,SRC...]`"
    )


def write_space_latency(run: RunDir, device: str, cells: list[Cell] | None = None) -> str:
    """Write ``fit/<device>/space_latency.parquet`` (atomically); returns where it came from."""
    cells = cells or nb201_tables.load().cells()
    ms, source, how = _whole_space(run, device, cells)
    where = run.stage("fit") / device
    where.mkdir(parents=True, exist_ok=True)
    table = pa.table({"arch": [c.arch_str() for c in cells], "latency_ms": ms, "source": [source] * len(ms)})
    pq.write_table(table, where / f".{SPACE_LATENCY}.tmp")
    (where / f".{SPACE_LATENCY}.tmp").replace(where / SPACE_LATENCY)
    print(f"[fit] {device}: latency of all {len(ms)} architectures from {how}", flush=True)
    return source


def run_space_latency(run: RunDir) -> dict[str, Any]:
    """The fit stage: each searched device's latency over the whole space, to a Parquet file."""
    cells = nb201_tables.load().cells()
    sources = {device: write_space_latency(run, device, cells) for device in search_devices(run)}
    mark_done(run, "fit", {"devices": sources})
    return sources


def load_space_latency(run: RunDir, device: str) -> tuple[list[str], np.ndarray, str]:
    """``device``'s latency of the whole space, as the fit stage wrote it (written now for a
    device the search list gained since)."""
    f = run.path / "fit" / device / SPACE_LATENCY
    if not f.is_file():
        write_space_latency(run, device)
    t = pq.read_table(f).to_pydict()
    return t["arch"], np.array(t["latency_ms"]), t["source"][0]


def plan(run: RunDir) -> list[Nb201Trial]:
    """Per device: a trial per (λ, seed), then per (latency budget, seed) one whose λ starts
    at 0 and moves to land the derived cell inside the budget (:mod:`lanas.budget`)."""
    s, devices = run.config.search, search_devices(run)
    out = [{"device": d, "lam": lam, "seed": n, "budget_ms": None} for d in devices for lam in s.lambdas
           for n in s.seeds]  # fmt: skip
    return out + [{"device": d, "lam": 0.0, "seed": n, "budget_ms": t} for d, t in s.budget_list() for n in s.seeds]


def _key(trial: Nb201Trial) -> tuple:
    budget = trial.get("budget_ms")
    return trial["device"], float(trial["lam"]), int(trial["seed"]), None if budget is None else float(budget)


def _trainable(config: dict[str, Any], cfg, latency: dict) -> None:
    """One Tune trial: one search of the NAS-Bench-201 supernet with the device's exact latency term."""
    from ray import tune

    trial, s = config["trial"], cfg.search.settings
    torch.set_num_threads(max(1, int(cfg.search.resources.num_cpus)))
    splits = load_splits(cfg.data)
    train = loader(splits.train, s.batch_size, True, trial["seed"])
    val = loader(splits.val, s.batch_size, True, trial["seed"] + 1)
    torch.manual_seed(trial["seed"])
    macro = Nb201Macro(s.channels, s.layers, cfg.data.in_channels, cfg.data.num_classes)
    net = Nb201SuperNet(macro, s.mode)
    arch_strs, ms = latency[trial["device"]]
    term = space_latency([Cell.from_arch_str(a) for a in arch_strs], list(ms))

    def on_epoch(metrics: dict[str, Any], snapshot: dict[str, Any]) -> None:
        tune.report({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})

    budget = None if trial["budget_ms"] is None else Budget(trial["budget_ms"], cfg.search.budget)  # term is in ms
    search(net, term, train, val, s, trial["lam"], on_epoch=on_epoch, seed=trial["seed"], budget=budget)


def _row(trial: Nb201Trial, m: dict[str, Any]) -> Nb201Result:
    """A finished trial's result row from its last reported metrics."""
    return {**trial, "arch": json.loads(m["genotype"]), PREDICTED_MS: m["predicted_latency_ratio"],
            "val_acc": m["val_acc"], "epochs": m["epoch"], "final_lam": m["lam"]}  # fmt: skip


def _sweep(run: RunDir, todo: list[Nb201Trial], verbose: bool, keep: Callable[[Nb201Result], None]) -> None:
    """Run ``todo`` as one Tune sweep; ``keep(row)`` as each trial completes (in the driver),
    so a sweep that dies keeps the trials it finished."""
    from ray import tune

    class Keep(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
            keep(_row(todo[int(trial.config["trial"]["index"])], trial.last_result))

    cfg = run.config
    latency = {d: load_space_latency(run, d)[:2] for d in {t["device"] for t in todo}}
    os.environ["RAY_AIR_NEW_OUTPUT"] = "1" if verbose else "0"
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(_trainable, cfg=cfg, latency=latency), cfg.search.resources.as_bundle()
        ),
        param_space={"trial": tune.grid_search([{**t, "index": i} for i, t in enumerate(todo)])},
        tune_config=tune.TuneConfig(trial_dirname_creator=lambda t: f"trial{t.config['trial']['index']:03d}"),
        run_config=tune.RunConfig(
            name=f"nb201-{time.strftime('%Y%m%dT%H%M%S')}",
            storage_path=str((run.stage("search") / "tune").resolve()),
            verbose=1 if verbose else 0,
            failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures),
            callbacks=[Keep()],
        ),
    )
    for result in tuner.fit():
        if result.error is not None:
            raise PipelineError(f"a search trial failed: {str(result.error).splitlines()[0]}")


def run_search(run: RunDir, verbose: bool = False) -> list[Nb201Result]:
    """The search stage: every (device, λ or budget, seed) trial not in ``search/results.jsonl``
    yet; each finished trial is added to the file at once, so a re-run after a crash runs
    only the trials that had not finished."""
    t0, results = time.perf_counter(), run.stage("search") / "results.jsonl"
    done = {_key(r): r for r in read_jsonl(results)}
    todo = [t for t in plan(run) if _key(t) not in done]
    print(f"[search] {len(todo)} NAS-Bench-201 searches to run ({len(done)} done)", flush=True)

    def keep(r: Nb201Result) -> None:
        done[_key(r)] = r
        write_jsonl(results, list(done.values()))
        what = f"λ={r['lam']:g}" if r.get("budget_ms") is None else f"budget {r['budget_ms']:g} ms"
        print(f"[search] {r['device']} {what} seed {r['seed']}: {r['arch']} "
              f"(expected {r[PREDICTED_MS]:.3g} ms)", flush=True)  # fmt: skip

    if todo:
        _sweep(run, todo, verbose, keep)
    rows = [done[_key(t)] for t in plan(run)]
    write_jsonl(results, rows)
    mark_done(run, "search", {"trials": len(rows), "wall_s": time.perf_counter() - t0})
    return rows


def run_lookup(run: RunDir) -> list[Nb201Evaluated]:
    """The evaluate stage: each searched cell's table accuracy and its latency on every searched device."""
    tables, cfg = nb201_tables.load(), run.config
    index = {a: i for i, a in enumerate(tables.arch_strs)}
    accuracy = tables.accuracy[cfg.data.dataset]
    latency = {d: load_space_latency(run, d) for d in search_devices(run)}
    out = []
    for r in run.stage_results("search"):
        i = index[r["arch"]]
        budget = r.get("budget_ms")
        for device, (_, ms, source) in latency.items():
            out.append({"kind": "searched" if budget is None else "budget", "searched_for": r["device"],
                        "device": device, "lam": r["lam"], "seed": r["seed"], "budget_ms": budget, "arch": r["arch"],
                        "accuracy": float(accuracy[i]), "accuracy_source": "lookup", "latency_ms": float(ms[i]),
                        "latency_source": source,
                        "meets_budget": None if budget is None else bool(ms[i] <= budget),
                        "accuracy_by_dataset": {k: float(v[i]) for k, v in tables.accuracy.items()}})  # fmt: skip
    write_jsonl(run.stage("evaluate") / "results.jsonl", out)
    mark_done(run, "evaluate", {"candidates": len(out)})
    return out


def device_front(accuracy: np.ndarray, ms: np.ndarray, searched: list[tuple[float, float]]) -> dict[str, Any]:
    """The true front of the whole space and the searched points' hypervolume as a share of
    its own, both bounded by the space's worst accuracy and slowest latency."""
    points = list(zip(accuracy.tolist(), ms.tolist()))
    front = [points[i] for i in front_indices(points)]
    reference = (float(accuracy.min()), float(ms.max()))
    true_hv = hypervolume(front, reference)
    share = hypervolume(searched, reference) / true_hv if searched and true_hv > 0 else None
    return {"front": front, "reference": reference, "hypervolume_share": share}


def _plot(path, fronts: dict[str, dict[str, Any]], spaces: dict[str, tuple], rows: list[Nb201Evaluated]) -> None:
    fig, axes = plt.subplots(1, len(fronts), figsize=(5.5 * len(fronts), 4.2), squeeze=False)
    for ax, (device, f) in zip(axes[0], fronts.items()):
        acc, ms = spaces[device]
        true = f["latency_source"] == "table"
        ax.scatter(ms, acc, s=2, c="0.8", label=f"all 15,625 ({'tables' if true else 'predicted latency'})")
        fx, fy = zip(*[(p[1], p[0]) for p in f["front"]])
        ax.step(fx, fy, where="post", c="k", lw=1, label="true front" if true else "front (predicted latency)")
        mine = [r for r in rows if r["device"] == device and r["searched_for"] == device]
        lams = [r for r in mine if r.get("budget_ms") is None]
        sc = ax.scatter([r["latency_ms"] for r in lams], [r["accuracy"] for r in lams], c=[r["lam"] for r in lams],
                        cmap="viridis", marker="*", s=120, edgecolors="k", zorder=3, label="searched (λ)")  # fmt: skip
        fig.colorbar(sc, ax=ax, label="λ")
        for i, r in enumerate(r for r in mine if r.get("budget_ms") is not None):
            ax.axvline(r["budget_ms"], c="tab:red", ls=":", lw=1)
            ax.scatter([r["latency_ms"]], [r["accuracy"]], c="tab:red", marker="D", s=50, edgecolors="k", zorder=3,
                       label=None if i else "searched (budget, dotted)")  # fmt: skip
        low = min([80.0] + [r["accuracy"] for r in mine]) - 2
        ax.set(xscale="log", xlabel=f"latency on {device} (ms, {mine[0]['latency_source'] if mine else 'table'})",
               ylabel="accuracy (%, lookup)", ylim=(max(acc.min(), low), acc.max() + 0.5))  # fmt: skip
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        share = f["hypervolume_share"]
        front = "true front" if true else "front"
        ax.set_title(f"{device}: searched {100 * share:.1f} % of the {front}" if share else device)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_report(run: RunDir) -> str:
    """The report stage: report/report.md, pareto.png and fronts.json."""
    tables, rows = nb201_tables.load(), run.stage_results("evaluate")
    accuracy = tables.accuracy[run.config.data.dataset]
    spaces = {d: (accuracy, load_space_latency(run, d)[1]) for d in search_devices(run)}
    fronts = {}
    for device, (acc, ms) in spaces.items():
        mine = [(r["accuracy"], r["latency_ms"]) for r in rows if r["device"] == device and r["searched_for"] == device]
        fronts[device] = {**device_front(acc, ms, mine), "latency_source": load_space_latency(run, device)[2]}
    out = run.stage("report")
    _plot(out / "pareto.png", fronts, spaces, rows)
    write_atomic(out / "fronts.json", json.dumps(fronts, indent=1))
    write_atomic(out / "report.md", _markdown(run, fronts, rows))
    mark_done(run, "report", {"devices": {d: f["hypervolume_share"] for d, f in fronts.items()}})
    for d, f in fronts.items():
        share = "n/a" if f["hypervolume_share"] is None else f"{100 * f['hypervolume_share']:.1f} %"
        print(f"[report] {d}: the searched front's hypervolume is {share} of the true front's "
              f"({len(f['front'])} architectures)", flush=True)  # fmt: skip
    return str(out / "report.md")


def _markdown(run: RunDir, fronts: dict[str, dict[str, Any]], rows: list[Nb201Evaluated]) -> str:
    lines = [f"# {run.config.name}: NAS-Bench-201 search against the true front", "",
             f"Accuracies are looked up ({run.config.data.dataset}, NAS-Bench-201's 200-epoch validation accuracy), "
             "never trained here; latencies are the devices' published tables (or a cross-device prediction where "
             "the row says `predicted`), never timed here.", "", "![fronts](pareto.png)", ""]  # fmt: skip
    for device, f in fronts.items():
        share = "n/a" if f["hypervolume_share"] is None else f"{100 * f['hypervolume_share']:.1f} %"
        what = "True front" if f["latency_source"] == "table" else "Front by the predicted latencies"
        lines += [f"## {device}", "", f"{what}: {len(f['front'])} of 15,625 architectures; the searched "
                  f"front's hypervolume is {share} of its hypervolume.", "",
                  "| λ or budget | seed | architecture | accuracy (%) | latency (ms) | source | on the true front "
                  "| CIFAR-100 / ImageNet16-120 (%) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        on_front = {(a, ms) for a, ms in f["front"]}
        for r in (r for r in rows if r["device"] == device and r["searched_for"] == device):
            front = "yes" if (r["accuracy"], r["latency_ms"]) in on_front else "no"
            what = f"{r['lam']:g}" if r.get("budget_ms") is None else (
                f"≤ {r['budget_ms']:g} ms: {'met' if r['meets_budget'] else 'MISSED'}")  # fmt: skip
            other = r.get("accuracy_by_dataset") or {}
            others = " / ".join(f"{other[k]:.2f}" for k in ("cifar100", "imagenet16-120") if k in other)
            lines.append(f"| {what} | {r['seed']} | `{r['arch']}` | {r['accuracy']:.2f} | "
                         f"{r['latency_ms']:.4g} | {r['latency_source']} | {front} | {others} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)
