"""``lanas``: the command line. Each stage runs alone or all together (``reproduce``).

Errors in the user's input (config, genotypes, datasets, run directory, cluster) print
one line ``lanas: error: ...`` and exit with code 2; nothing is overwritten.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable

from lanas.genotype import GenotypeError

from . import browse
from .config import ConfigError
from .errors import PipelineError

EXIT_USAGE = 2
RUNTIME_COMMANDS = ("measure", "evaluate")  # stages that time networks: their runtimes must be installed
CREATING_COMMANDS = ("measure", "import")  # commands that may start a run directory (reproduce opens its own)


def _common(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    p.add_argument("--config", required=config_required, help="YAML run profile, e.g. configs/demo.yaml")
    p.add_argument("--run-dir", help="run directory (default: runs/<config name>)")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--overwrite", action="store_true", help="accept a run directory made with another config")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="Ray's own console output too: Tune's trial tables, workers' logs and library warnings",
    )


def _target_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        metavar="ID",
        help="only this target: its spec (e.g. cpu-t1-onnxruntime-b1) or "
        "hardware id (default: every target of the config)",
    )


def _search_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted sweep (Tuner.restore); completed stages are always skipped",
    )
    p.add_argument("--force-predictor", action="store_true", help="search even if the predictor fails its quality gate")


def parse_budgets(values: list[str] | None) -> dict[str, tuple[float, ...]]:
    """``--budget-ms TARGET=MS`` (repeatable) -> {target spec: budgets}; a malformed one is named."""
    out: dict[str, tuple[float, ...]] = {}
    for v in values or []:
        spec, _, ms = v.partition("=")
        try:
            t = float(ms)
        except ValueError:
            t = -1.0  # refused below, as every other bad value
        if not spec or not (math.isfinite(t) and t > 0):
            raise PipelineError(
                f"--budget-ms {v!r}: expected TARGET=MS with a target spec and a number of ms > 0, "
                "e.g. --budget-ms cpu-t1-onnxruntime-b1=0.2"
            )
        out[spec] = out.get(spec, ()) + (t,)
    return out


def _open_run(args: argparse.Namespace, write_config: bool = True):
    from .config import load_config
    from .ray_env import check_reachable
    from .rundir import RunDir

    cfg = load_config(args.config)
    budgets = parse_budgets(getattr(args, "budget_ms", None))
    if budgets:
        cfg = cfg.with_budgets(budgets)
    if args.command in RUNTIME_COMMANDS:
        from .measure import check_runtimes

        check_runtimes(cfg.targets)
    check_reachable(getattr(args, "address", None))  # before anything is written
    path = Path(args.run_dir or Path("runs") / cfg.name)
    target = getattr(args, "target", None)
    if target and args.command != "import" and not (path / "config.yaml").is_file():
        from .measure import select_targets

        select_targets(cfg, target)  # a new run knows its specs alone (hardware ids come with measuring)
    return RunDir.open(
        path, cfg, overwrite=args.overwrite, create=args.command in CREATING_COMMANDS, write_config=write_config
    )


def _run_of(args: argparse.Namespace):
    """The run a command works on: opened with ``--config`` when given, else the existing
    ``--run-dir`` with the config stored there."""
    from .rundir import RunDir

    if args.config:
        return _open_run(args)
    if not args.run_dir:
        raise PipelineError(f"lanas {args.command} needs --config, or --run-dir of an existing run")
    return RunDir.existing(args.run_dir)


def _sources(text: str) -> list[str]:
    return [s for s in (x.strip() for x in text.split(",")) if s]


def cmd_measure(args: argparse.Namespace) -> None:
    from .measure import run_measure
    from .ray_env import init_ray

    if args.num_archs is not None and args.num_archs <= 0:
        raise PipelineError(f"--num-archs must be > 0, got {args.num_archs}")
    if args.select == "diverse" and (args.target is None or args.num_archs is None or args.genotypes):
        raise PipelineError("--select diverse picks --num-archs architectures for one --target (not with --genotypes)")
    plain = (args.num_archs, args.genotypes, args.select, args.target) == (None, None, "random", None)
    if not plain:
        from .config import load_config

        load_config(args.config).require_sampled("lanas measure --num-archs, --genotypes, --select and --target")
    run = _open_run(args)
    if plain:
        return _run_stage(run, "measure", args)  # the run's space's own stage 1
    genotypes = args.genotypes
    if args.select == "diverse":
        from .measure import measure_jsonl_path
        from .transfer import default_source, diverse_genotypes

        source = args.transfer_from or default_source(run, args.target)
        picked = diverse_genotypes(run, source, args.target, args.num_archs)
        genotypes = str(measure_jsonl_path(run, picked, f"diverse-{args.num_archs}.jsonl"))
        print(f"[measure] {args.num_archs} diverse architectures by {source}'s predictor: {genotypes}", flush=True)
    init_ray(args.address, verbose=args.verbose)
    run_measure(run, args.num_archs, genotypes, progress=not args.quiet, target=args.target)


def cmd_fit(args: argparse.Namespace) -> None:
    from .fit.stage import run_fit
    from .ray_env import init_ray

    if args.transfer_from is None and args.samples is not None:
        raise PipelineError("--samples needs --transfer-from")
    if args.transfer_from is not None:
        if args.target is None:
            raise PipelineError("--transfer-from needs --target: the new target whose predictor is transferred")
        run = _run_of(args)
        if run.config.imported_device(args.target) is not None:
            return _fit_imported(run, args)
        from .fit.render import finish
        from .transfer import run_transfer

        meta = run_transfer(run, args.target, args.transfer_from, args.samples)
        finish(run, {"transferred": {meta.target.spec: meta.transferred_from}})
        return
    run = _run_of(args)
    _stale_inputs(run, "fit")
    if args.target is None:
        return _run_stage(run, "fit", args)
    run.config.require_sampled("lanas fit --target without --transfer-from")
    init_ray(args.address, verbose=args.verbose)
    run_fit(run, target=args.target)


def _fit_imported(run, args: argparse.Namespace) -> None:
    from .imported import fit_cross_device

    if args.samples is not None:
        raise PipelineError(f"--samples: {args.target} is an imported device; its fit uses every timing imported")
    r = fit_cross_device(run, args.target, _sources(args.transfer_from))
    rho = "n/a" if r["loo_spearman"] is None else f"{r['loo_spearman']:.3f}"
    print(
        f"[fit] {args.target} from {r['timed']} timings and {len(r['sources'])} sources over {r['candidates']} "
        f"candidates: leave-one-out MAPE {100 * r['loo_mape']:.1f} %, Spearman {rho} -> "
        f"{run.path / 'fit' / args.target / 'crossdevice.json'}",
        flush=True,
    )


def cmd_import(args: argparse.Namespace) -> None:
    from .config import ImportedDevice
    from .imported import import_listed, import_table, read_table_file

    if (args.target is None) != (args.table is None):
        raise PipelineError("--target and --table go together (without both: import the config's imported devices)")
    run = _run_of(args)
    if args.target is None:
        done = import_listed(run)
        for name, n in done:
            print(f"[import] {name}: {n} rows added", flush=True)
        if not done:
            print("[import] the config lists no imported device with a table; nothing to do", flush=True)
        return
    try:
        device = run.config.imported_device(args.target) or ImportedDevice(args.target, args.table, args.source or "")
    except ValueError as exc:
        raise PipelineError(f"--target: {exc}") from None
    n = import_table(run, device, read_table_file(args.table), args.table)
    print(f"[import] {args.target}: {n} rows added to {run.path / 'measure' / 'dataset'}", flush=True)


def cmd_select(args: argparse.Namespace) -> None:
    from .imported import select
    from .rundir import RunDir

    run = RunDir.existing(args.run_dir)
    seed = run.config.seed if args.seed is None else args.seed
    picked = select(run, args.target, args.num_archs, _sources(args.transfer_from), Path(args.out), seed)
    print(f"[select] {len(picked)} architectures for {args.target} to time: {args.out}", flush=True)


def cmd_predict(args: argparse.Namespace) -> None:
    import json

    from .fit.predict import predict_genotypes
    from .imported import predict
    from .rundir import RunDir

    run = RunDir.existing(args.run_dir)
    if args.target is not None and run.config.imported_device(args.target) is not None:
        for row in predict(run, args.target, args.genotypes):
            print(json.dumps(row))
        return
    for line in predict_genotypes(args.run_dir, args.genotypes, args.target):
        print(line)


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_candidate

    print(export_candidate(args.run_dir, args.candidate, args.onnx))


def _options(args: argparse.Namespace):
    from .stages import Options

    return Options(
        progress=not args.quiet,
        resume=getattr(args, "resume", False),
        force_predictor=getattr(args, "force_predictor", False),
        verbose=args.verbose,
    )


def _stale_inputs(run, stage: str) -> None:
    """A stage run alone says so, in one line, when a stage before it is stale."""
    from .staleness import upstream_warning

    line = upstream_warning(run, stage)
    if line:
        print(f"lanas {stage}: {line}", file=sys.stderr, flush=True)


def cmd_stage(args: argparse.Namespace) -> None:
    """``lanas search|evaluate|report``: the stage of that name, from the stage table."""
    from .ray_env import init_ray
    from .stages import BY_NAME
    from .staleness import refresh

    stage = BY_NAME[args.command]
    budgets = bool(getattr(args, "budget_ms", None))
    run = _open_run(args, write_config=not budgets)
    if budgets:  # refused budgets leave the run's config as it was
        from .predictor_store import load_all
        from .search.penalties import check_budgets

        check_budgets(run, load_all(run, force=args.force_predictor))
        run.save_config()
    _stale_inputs(run, stage.name)
    refresh(run, stage.name, lambda line: print(f"[{stage.name}] {line}", flush=True))
    if stage.needs_ray:
        init_ray(args.address, verbose=args.verbose)
    out = stage.run(run, _options(args))
    if args.command == "report":
        print(out)


def _run_stage(run, name: str, args: argparse.Namespace) -> None:
    from .ray_env import init_ray
    from .stages import BY_NAME

    if BY_NAME[name].needs_ray:
        init_ray(args.address, verbose=args.verbose)
    BY_NAME[name].run(run, _options(args))


def cmd_runs(args: argparse.Namespace) -> None:
    print(browse.runs_text(Path(args.dir)))


def cmd_show(args: argparse.Namespace) -> None:
    print(browse.show_text(Path(args.run)))


def cmd_reproduce(args: argparse.Namespace) -> None:
    from .reproduce import reproduce

    reproduce(args.config, args.run_dir, args.address, args.overwrite, _options(args))


def cmd_submit(args: argparse.Namespace) -> None:
    from .submit import submit_command

    submit_command(args)


def cmd_job(args: argparse.Namespace) -> None:
    from .submit import job_command

    job_command(args)


SELECT_HELP = (
    "diverse: pick --num-archs architectures for a new --target that span another target's predicted latency "
    "and op compositions (for `lanas fit --transfer-from`)"
)
PICKER_HELP = "with --select diverse: the target whose predictor picks (default: the first other target with one)"
TRANSFER_HELP = (
    "fit --target's predictor by transfer from SRC's (a target of the run, or a predictor folder "
    "fit/<hardware> of another run) instead of from scratch; for an imported --target, SRC[,SRC...]: "
    "devices of the run whose latencies its timings are mapped from"
)
SOURCES_HELP = "devices of the run (imported names, target specs or hardware ids) whose latencies the pick spreads over"
SAMPLES_HELP = "with --transfer-from: fit on K of the target's measured architectures (default: all), the rest test"
BUDGET_HELP = (
    "also search for the most accurate architecture under MS ms on TARGET (a target spec); repeatable; "
    "added to search.budgets_ms, and kept in the run's config"
)


def _measure_flags(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--num-archs", type=int, help="architectures to sample (default: measure.num_archs)")
    p.add_argument("--genotypes", help="measure exactly these genotypes (JSON lines) instead of sampling")
    p.add_argument("--select", choices=("random", "diverse"), default="random", help=SELECT_HELP)
    p.add_argument("--transfer-from", metavar="SRC", help=PICKER_HELP)
    _target_flag(p)


def _fit_flags(p: argparse.ArgumentParser) -> None:
    _common(p, config_required=False)
    _target_flag(p)
    p.add_argument("--transfer-from", metavar="SRC", help=TRANSFER_HELP)
    p.add_argument("--samples", type=int, metavar="K", help=SAMPLES_HELP)


def _predict_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", required=True, help="a run directory whose predictors are fitted (lanas fit)")
    p.add_argument("--genotypes", required=True, help="JSON lines file of genotypes")
    p.add_argument(
        "--target",
        metavar="ID",
        help="only this target: its spec (e.g. cpu-t1-onnxruntime-b1) or hardware id "
        "(default: every target the run fitted)",
    )


def _import_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", required=True, help="the run directory (created from --config if new)")
    p.add_argument("--config", help="YAML run profile: needed to create the run; default: the run's own config")
    p.add_argument("--target", metavar="NAME", help="the device the table times (added to the run if new)")
    p.add_argument("--table", help="CSV or Parquet: an arch / arch_str / genotype column and latency_ms")
    p.add_argument("--source", help="who timed the table and how (kept in every row; default: the table's path)")
    p.add_argument("--overwrite", action="store_true", help="accept a run directory made with another config")
    p.set_defaults(address=None, quiet=False, verbose=False)


def _select_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", required=True, help="a run directory holding the sources' latencies")
    p.add_argument("--target", required=True, metavar="NAME", help="the device to be timed")
    p.add_argument("--num-archs", required=True, type=int, metavar="K", help="architectures to time")
    p.add_argument("--transfer-from", required=True, metavar="SRC[,SRC...]", help=SOURCES_HELP)
    p.add_argument("--out", required=True, help="JSON lines file to write (an existing file is not overwritten)")
    p.add_argument("--seed", type=int, help="seed of the pick (default: the run's seed)")


def _runs_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default="runs", help="the folder holding run directories (default: runs)")


def _show_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory, e.g. runs/demo")


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", required=True, help="a run directory whose candidates are evaluated (lanas evaluate)")
    p.add_argument("--candidate", required=True, help="candidate name, as in report/pareto.csv (e.g. lam0.3-seed0-...)")
    p.add_argument("--onnx", required=True, help="output file (an existing file is not overwritten)")


def _budget_flags(p: argparse.ArgumentParser) -> None:
    _common(p)
    _search_flags(p)
    p.add_argument("--budget-ms", action="append", metavar="TARGET=MS", help=BUDGET_HELP)


def _reproduce_flags(p: argparse.ArgumentParser) -> None:
    _common(p)
    _search_flags(p)


def _submit_flags(p: argparse.ArgumentParser) -> None:
    from .submit import add_arguments

    add_arguments(p)


def _job_flags(p: argparse.ArgumentParser) -> None:
    from .submit import add_job_arguments

    add_job_arguments(p)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lanas")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    from .stages import BY_NAME

    parser = argparse.ArgumentParser(
        prog="lanas",
        description="Latency-aware differentiable NAS on Ray: measure -> fit -> search -> evaluate -> report.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: list[tuple[str, Callable, str, Callable[[argparse.ArgumentParser], None]]] = [
        ("measure", cmd_measure, BY_NAME["measure"].help, _measure_flags),
        ("fit", cmd_fit, BY_NAME["fit"].help, _fit_flags),
        ("import", cmd_import, "add a timed table of a device outside the cluster to the run", _import_flags),
        (
            "select",
            cmd_select,
            "which architectures a new device should time (diverse under other devices)",
            _select_flags,
        ),
        ("predict", cmd_predict, "predict the latency of genotypes with a run's fitted predictors", _predict_flags),
        ("export", cmd_export, "write an evaluated candidate as an ONNX file for deployment", _export_flags),
        ("search", cmd_stage, BY_NAME["search"].help, _budget_flags),
        ("evaluate", cmd_stage, BY_NAME["evaluate"].help, _common),
        ("report", cmd_stage, BY_NAME["report"].help, _common),
        ("reproduce", cmd_reproduce, "all five stages from one config, skipping completed ones", _reproduce_flags),
        ("submit", cmd_submit, "submit `lanas reproduce` to a Ray cluster through the Jobs API", _submit_flags),
        ("job", cmd_job, "Ray jobs as `ray job` has them: submit, list, status, logs [--follow], stop", _job_flags),
        ("runs", cmd_runs, "list the runs under a folder with each stage's state", _runs_flags),
        ("show", cmd_show, "print a run's front per target, its budgets and its predictors' quality", _show_flags),
    ]
    for name, fn, help_, flags in commands:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=fn)
        flags(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, GenotypeError, PipelineError) as exc:
        print(f"lanas: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lanas: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
