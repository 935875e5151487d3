"""Run configuration: frozen dataclasses loaded once from YAML and passed explicitly.

Each section reuses the settings type of the library function it drives. Unknown keys,
wrong types and out-of-range values raise :class:`ConfigError` naming the key path
(e.g. ``search.settings.epochs``). (dacite was tried: it loses the section path of
unknown keys and of ``__post_init__`` checks, which is what users need to see.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lanas.budget import BudgetSettings
from lanas.data import DataSettings
from lanas.measure import MeasureSettings
from lanas.nb201_supernet import MODES as NB201_MODES
from lanas.network import MacroSettings
from lanas.penalty import METHODS
from lanas.predictor import PredictorSettings
from lanas.search import SearchSettings
from lanas.space import SamplingSettings, SearchSpace
from lanas.target import Target
from lanas.train import TrainSettings

from .records import Setting

LOGGERS = ("tensorboard", "csv", "mlflow")  # search.loggers: Tune's experiment loggers

# keys added after run directories existed: left out of the identity at their default
NEWER_KEYS = (
    ("search", "methods"),
    ("search", "random_candidates"),
    ("search", "random_epochs"),
    ("search", "random_budget_s"),
    ("evaluate", "seeds"),
    ("data", "noise"),
    ("measure", "protocol", "statistic"),
    ("search", "budget", "damping"),
    ("measure", "protocol", "builds"),
    ("fit", "model", "repeats"),  # a run fitted before keeps its predictors (they load with their own table)
    ("data", "image_size"),
    ("measure", "protocol", "onnx_build"),
    ("space", "name"),
    ("search", "devices"),
    ("evaluate", "accuracy"),
)


# the config sections each stage's results depend on (pipeline.staleness)
_UP_TO_FIT = ("seed", "space", "network", "measure", "fit")
STAGE_SECTIONS = {
    "measure": ("seed", "space", "data", "network", "measure"),
    "fit": _UP_TO_FIT,
    "search": (*_UP_TO_FIT, "data", "search"),
    "evaluate": (*_UP_TO_FIT, "data", "search", "evaluate"),
    "report": (*_UP_TO_FIT, "data", "search", "evaluate"),
}


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Resources:
    num_cpus: float = 1.0  # CPUs each task / worker / trial reserves
    num_gpus: float = 0.0  # GPUs (fractions allowed for Tune trials)
    custom: dict[str, float] = field(default_factory=dict)  # e.g. {latency_node: 1}

    def __post_init__(self) -> None:
        if self.num_cpus < 0 or self.num_gpus < 0 or any(v < 0 for v in self.custom.values()):
            raise ValueError("resources must be >= 0")

    def ray_options(self) -> dict[str, Any]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": dict(self.custom)}

    def as_bundle(self) -> dict[str, float]:
        return {"CPU": self.num_cpus, "GPU": self.num_gpus, **self.custom}


@dataclass(frozen=True)
class NetworkConfig:
    """The deployed network: what is measured (stage 1), predicted and evaluated (stage 4)."""

    layers: int = 5  # cells
    channels: int = 16  # initial channels
    stem_multiplier: int = 3  # stem width = stem_multiplier * channels

    def __post_init__(self) -> None:
        MacroSettings(self.layers, self.channels, self.stem_multiplier)  # same checks


@dataclass(frozen=True)
class MeasureConfig:
    num_archs: int = 200  # random architectures to measure (the --num-archs default)
    sampling: SamplingSettings = SamplingSettings()  # uniform and coverage (Dirichlet op mixture) sampling
    published: bool = True  # also measure the published genotypes: a held-out probe of the predictor
    targets: tuple[Target, ...] = (Target(),)  # deployment targets; every architecture is timed on each
    chunk_size: int = 10  # architectures per Ray task
    max_in_flight: int = 0  # tasks in flight at once; 0 = as many as the cluster fits
    max_retries: int = 2  # retries of a task whose worker died
    protocol: MeasureSettings = MeasureSettings()  # warm-up and timed repeats
    resources: Resources = Resources()  # per task; a target raises it to its threads (CPU) or 1 GPU (cuda)

    def __post_init__(self) -> None:
        if self.num_archs < 1:
            raise ValueError(f"num_archs must be > 0, got {self.num_archs}")
        if self.chunk_size < 1 or self.max_in_flight < 0 or self.max_retries < 0:
            raise ValueError("chunk_size must be >= 1; max_in_flight, max_retries >= 0")
        if not self.targets:
            raise ValueError("targets must not be empty")
        specs = [t.spec for t in self.targets]
        if len(set(specs)) != len(specs):
            raise ValueError(f"targets must be distinct, got {specs}")

    def task_options(self, target: Target) -> dict[str, Any]:
        """Ray options of a task measuring on ``target``."""
        cpus, gpus = target.resource_options(self.resources.num_cpus, self.resources.num_gpus)
        return {"num_cpus": cpus, "num_gpus": gpus, "resources": dict(self.resources.custom)}


@dataclass(frozen=True)
class FitConfig:
    model: PredictorSettings = PredictorSettings()
    test_fraction: float = 0.2  # share of random architectures (by arch_id hash) held out as the test split
    folds: int = 5  # cross-validation folds over the training rows: model selection and the quality gate
    max_val_mape: float = 0.10  # quality gate on the cross-validated MAPE: search refuses a worse predictor
    num_workers: int = 1  # Ray Train workers (data-parallel)
    resources_per_worker: Resources = Resources()
    max_failures: int = 2  # restarts of the Train worker group after a worker dies (Ray Train FailureConfig)

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        if self.max_val_mape <= 0:
            raise ValueError(f"max_val_mape must be > 0, got {self.max_val_mape}")
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")
        if self.max_failures < 0:
            raise ValueError(f"max_failures must be >= 0, got {self.max_failures}")


@dataclass(frozen=True)
class SearchConfig:
    lambdas: tuple[float, ...] = (0.0, 1.0)  # the lambda grid, one Tune trial per (lambda, seed)
    # latency budgets (ms) per target spec (space nb201: per searched device), one Tune trial per (budget, seed): the
    # most accurate architecture under each (lanas.budget); `lanas search --budget-ms TARGET=T` adds more
    budgets_ms: dict[str, tuple[float, ...]] = field(default_factory=dict)
    budget: BudgetSettings = BudgetSettings()  # how a budget search lands inside its budget
    seeds: tuple[int, ...] = (0,)
    # what the search penalises (lanas.penalty): ladnas (the predictor), lut (ProxylessNAS/FBNet per-edge table),
    # flops (expected FLOPs), random (random search, lanas.random_search); all swept by the same Tune run
    methods: tuple[str, ...] = ("ladnas",)
    random_candidates: int = 100  # random method: the most candidates trained per seed (drawn across the latency range)
    random_epochs: int = 2  # random method: proxy epochs from scratch per candidate (search.settings' network size)
    # random method: proxy-training seconds per seed; 0 = the seed's LA-DNAS sweep time (lambda = 0 and every
    # lambda > 0 trial: the same CPU-seconds), so the random trials run after the gradient ones
    random_budget_s: float = 0.0
    # Tune's experiment loggers (search/tune/): tensorboard (TensorBoard events), csv (progress.csv), mlflow (an
    # MLflow file store in search/mlruns, needs `pip install 'lanas[mlflow]'`); Tune's result.json is always written
    loggers: tuple[str, ...] = ("tensorboard", "csv")
    # closed loop: after a round's sweep, its derived architectures are measured and added to the dataset, the
    # predictors refitted, and the sweep run again; 0 = one sweep (its derived architectures are still measured)
    rounds: int = 0
    # space nb201: the imported devices searched for, each with its latency over the whole space (a published
    # table, or a cross-device fit from a few timings); the search's latency term is then exact (lanas.nb201_supernet)
    devices: tuple[str, ...] = ()
    settings: SearchSettings = SearchSettings()
    max_failures: int = 2  # retries of a failed trial (Tune FailureConfig)
    resources: Resources = Resources()

    def __post_init__(self) -> None:
        if not self.lambdas and not any(self.budgets_ms.values()):
            raise ValueError("lambdas must not be empty (unless budgets_ms gives budgets)")
        for lam in self.lambdas:
            if not math.isfinite(lam) or lam < 0:
                raise ValueError(f"lambdas must be finite numbers >= 0, got {lam}")
        for spec, budgets in self.budgets_ms.items():
            for t in budgets:
                if not (math.isfinite(t) and t > 0):
                    raise ValueError(f"budgets_ms.{spec}: budgets must be finite numbers of ms > 0, got {t}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be distinct names out of {list(METHODS)}, got {list(self.methods)}")
        if self.random_candidates < 1 or self.random_epochs < 1:
            raise ValueError(f"random_candidates and random_epochs must be >= 1, got {self.random_candidates}, "
                             f"{self.random_epochs}")  # fmt: skip
        if any(x not in LOGGERS for x in self.loggers) or len(set(self.loggers)) != len(self.loggers):
            raise ValueError(f"loggers must be distinct names out of {list(LOGGERS)}, got {list(self.loggers)}")
        if not (math.isfinite(self.random_budget_s) and self.random_budget_s >= 0):
            raise ValueError(f"random_budget_s must be a finite number of seconds >= 0, got {self.random_budget_s}")

    def budget_list(self) -> list[tuple[str, float]]:
        """(target spec, budget ms) of every budget, in config order, without repeats."""
        return list(dict.fromkeys((spec, float(t)) for spec, budgets in self.budgets_ms.items() for t in budgets))


@dataclass(frozen=True)
class EvaluateConfig:
    train: TrainSettings = TrainSettings()
    random_archs: int = 4  # random architectures trained as a reference cloud
    published: bool = True  # also train the published genotypes (DARTS V1/V2, PC-DARTS)
    trivial: bool = True  # also train the no-convolution baseline (skip / max-pool cells; lanas.genotype.trivial)
    matched_random: bool = True  # per searched lambda > 0 architecture, a random one of the same predicted latency
    seeds: tuple[int, ...] = ()  # training seeds of every candidate (accuracy: mean +- std); () = the run's seed
    # train: from scratch (evaluate.train); lookup: the space's published accuracy (space nb201: 200-epoch NATS-Bench
    # validation accuracy on data.dataset), and latency looked up too: nothing trained or timed
    accuracy: str = "train"
    max_in_flight: int = 0  # training tasks in flight at once; 0 = as many as the cluster fits
    resources: Resources = Resources()

    def __post_init__(self) -> None:
        if self.random_archs < 0 or self.max_in_flight < 0:
            raise ValueError(
                f"random_archs and max_in_flight must be >= 0, got {self.random_archs}, {self.max_in_flight}"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}")
        if self.accuracy not in ("train", "lookup"):
            raise ValueError(f"accuracy must be train or lookup, got {self.accuracy!r}")


DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
VENDORED = "nb201:"  # ImportedDevice.table prefix: a device of the vendored NAS-Bench-201 tables


@dataclass(frozen=True)
class ImportedDevice:
    """A device that cannot join the cluster: its latencies come as a timed table
    (``lanas import``), stored in the dataset as partition ``hardware=<name>``."""

    name: str  # the partition and the name commands take (--target NAME)
    table: str = ""  # where `lanas import` reads it: a CSV / Parquet path, or nb201:<device> (vendored)
    source: str = ""  # who timed it and how (free text, kept in every row)

    def __post_init__(self) -> None:
        if not DEVICE_NAME.fullmatch(self.name):
            raise ValueError(f"imported device name {self.name!r}: use letters, digits, '.', '_', '-'")


RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # runs/<name>: never a path out of runs/


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"  # default run directory: runs/<name>
    seed: int = 0  # seeds sampling, splits and training
    space: SearchSpace = SearchSpace()
    data: DataSettings = DataSettings()
    network: NetworkConfig = NetworkConfig()
    measure: MeasureConfig = MeasureConfig()
    fit: FitConfig = FitConfig()
    search: SearchConfig = SearchConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    # devices timed outside the cluster (`lanas import`); an import of a device not listed adds it here
    imported: tuple[ImportedDevice, ...] = ()

    def __post_init__(self) -> None:
        names = [d.name for d in self.imported]
        if len(set(names)) != len(names):
            raise ValueError(f"imported: device names must be distinct, got {names}")
        if (self.evaluate.accuracy == "lookup") != (self.space.name == "nb201"):
            raise ValueError(
                f"evaluate.accuracy: {self.evaluate.accuracy} with space {self.space.name}: the nb201 space is "
                "evaluated by lookup (its published accuracies), the darts space by training"
            )
        if self.space.name == "nb201" and self.data.dataset != "cifar10":
            raise ValueError(
                f"data.dataset: space nb201 searches on cifar10 (its accuracy table's), not {self.data.dataset}"
            )
        if self.space.name == "nb201" and self.search.settings.mode not in NB201_MODES:
            raise ValueError(f"search.settings.mode: space nb201 searches with {' or '.join(NB201_MODES)}, not "
                             f"{self.search.settings.mode}")  # fmt: skip
        if not RUN_NAME.fullmatch(self.name):
            raise ValueError(
                f"name must be a plain folder name (letters, digits, '.', '_', '-'; not starting with '.'), "
                f"got {self.name!r}"
            )
        specs = [t.spec for t in self.targets] if self.space.name == "darts" else list(self.search.devices)
        unknown = [spec for spec in self.search.budgets_ms if spec not in specs]
        if unknown:
            raise ValueError(
                f"search.budgets_ms: {unknown[0]!r} is not a target of this config (targets: {', '.join(specs)})"
            )

    def with_budgets(self, extra: dict[str, tuple[float, ...]]) -> "RunConfig":
        """This config with ``extra`` latency budgets added to ``search.budgets_ms``."""
        own = self.search.budgets_ms
        merged = {spec: tuple(dict.fromkeys(own.get(spec, ()) + extra.get(spec, ()))) for spec in {**own, **extra}}
        try:
            return dataclasses.replace(self, search=dataclasses.replace(self.search, budgets_ms=merged))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def require_sampled(self, what: str) -> None:
        """Refuse ``what``, an option of a space sampled and timed here, in a space of tables."""
        if self.space.name != "darts":
            raise ConfigError(f"{what}: for the darts space; a space {self.space.name} run takes its latencies from "
                              "tables (`lanas import`) and its stages from `lanas reproduce`")  # fmt: skip

    def with_imported(self, devices: tuple[ImportedDevice, ...]) -> "RunConfig":
        """This config with ``devices`` added to ``imported`` (a name listed already keeps its entry)."""
        known = {d.name for d in self.imported}
        return dataclasses.replace(self, imported=self.imported + tuple(d for d in devices if d.name not in known))

    def imported_device(self, name: str) -> ImportedDevice | None:
        return next((d for d in self.imported if d.name == name), None)

    def macro(self) -> MacroSettings:
        n = self.network
        return MacroSettings(n.layers, n.channels, n.stem_multiplier, self.data.in_channels, self.data.num_classes)

    @property
    def targets(self) -> tuple[Target, ...]:
        return self.measure.targets

    def resource_asks(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Key (``measure:<spec>``, ``fit``, ``search``, ``evaluate``) -> (what, Ray options per
        task) of every stage's tasks: what the stages check when they start and ``lanas
        submit`` checks before submitting."""
        return {
            **{
                f"measure:{t.spec}": (f"measuring on target {t.spec}", self.measure.task_options(t))
                for t in self.targets
            },
            "fit": (
                f"fit (each of {self.fit.num_workers} Ray Train workers)",
                self.fit.resources_per_worker.ray_options(),
            ),
            "search": ("search (each Tune trial)", self.search.resources.ray_options()),
            "evaluate": ("evaluate (training)", self.evaluate.resources.ray_options()),
        }

    def train_seeds(self) -> tuple[int, ...]:
        """The training seeds of every evaluated candidate."""
        return self.evaluate.seeds or (self.seed,)

    def setting(self, target: Target) -> Setting:
        """The measurement setting of ``target`` in this run (input size from ``data``)."""
        return Setting(target, self.macro(), self.data.resolution, self.space.ops)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def identity_dict(self) -> dict[str, Any]:
        """Everything that gives the run's results their meaning. The number of
        architectures to measure and the latency budgets are left out (a run may be
        extended with more of either), and the name."""
        d = self.to_dict()
        d["measure"].pop("num_archs")
        d["search"].pop("budgets_ms")
        d["search"].pop("loggers")  # what Tune logs to, not what the search does
        d.pop("imported")  # devices join a run by import (the dataset holds their rows)
        d.pop("name")
        defaults = RunConfig()
        for *parents, key in NEWER_KEYS:  # at their default, as runs made before them were
            where, default = d, defaults
            for name in parents:
                where, default = where[name], getattr(default, name)
            if where[key] == _plain(getattr(default, key)):
                where.pop(key)
        return d

    def identity(self, stage: str | None = None) -> str:
        """The hash of :meth:`identity_dict`, or of the sections ``stage`` depends on
        (:data:`STAGE_SECTIONS`: a new λ grid leaves the predictor current)."""
        d = self.identity_dict()
        if stage is not None:
            d = {k: v for k, v in d.items() if k in STAGE_SECTIONS[stage]}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        item = args[0]
        return tuple(_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): _convert(v, args[1], f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is Any:  # free-form metadata (e.g. a predictor's provenance): plain JSON data as it is
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover - programming error


def build(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from plain data; missing keys take their defaults."""
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - fields)
    if unknown:
        prefix = f"{path}." if path else ""
        raise ConfigError(f"unknown config key {prefix}{unknown[0]} (valid keys here: {', '.join(sorted(fields))})")
    kwargs = {k: _convert(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        text = str(exc)
        raise ConfigError(text if text.startswith(f"{where}.") else f"{where}: {text}") from None  # named once


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Load a YAML profile. ``overrides`` maps dotted keys to values (from the CLI)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--config {path} is a directory; give a YAML profile, e.g. configs/demo.yaml")
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        what = "is empty" if data is None or data == {} else f"holds a {type(data).__name__}"
        raise ConfigError(f"{path} {what}: a profile is a YAML mapping of settings (see configs/demo.yaml)")
    return config_from_dict(data, overrides)


def config_from_dict(data: dict[str, Any], overrides: dict[str, Any] | None = None) -> RunConfig:
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return build(RunConfig, data)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
