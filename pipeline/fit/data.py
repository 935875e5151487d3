"""The rows a predictor is fitted and scored on: read from the stage-1 dataset, cleaned and split by origin."""

from __future__ import annotations

import functools
import hashlib
import operator
from typing import Any

import numpy as np
import torch

from lanas import quality
from lanas.target import Target

from .. import dataset as ds
from ..errors import PipelineError
from ..ray_env import quiet_ray_data
from ..records import LATENCY_RATIO
from ..rows import dataset_dir
from ..rundir import RunDir

MIN_ROWS = {"train": 10, "test": 5}


COLUMNS = [
    "arch_id",
    "genotype",
    "encoding",
    "status",
    "latency_ms",
    "ref_latency_ms",
    LATENCY_RATIO,
    "sampler",
    "round",
    *ds.SETTING_COLUMNS,
]


# the evaluation sets of a predictor: the random test split, and out of distribution
EVAL_SETS = {
    "test": "random test split (uniform samples)",
    "test_coverage": "coverage test split (Dirichlet op mixtures)",
    "published": "published genotypes (never trained on)",
}


def split_of(arch_id: str, test_fraction: float) -> str:
    u = int(hashlib.sha1(arch_id.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if u < test_fraction else "train"


def split_row(arch_id: str, sampler: str, test_fraction: float) -> str:
    """Where a row serves: random samples split train/test by arch_id hash (coverage
    test rows scored apart), architectures derived by a search round always train, the
    published probes are only ever scored."""
    if sampler == "published":
        return "published"
    if sampler == "derived":
        return "train"
    split = split_of(arch_id, test_fraction)
    return "test_coverage" if split == "test" and sampler == "coverage" else split


def _read_partition(run: RunDir, target: Target, hardware: str):
    """Ray Data read of one target's partition at the run's setting, as pandas."""
    import ray
    from ray.data.expressions import col

    quiet_ray_data()
    part = dataset_dir(run) / f"{ds.PARTITION}={hardware}"
    if not part.is_dir():
        raise PipelineError(
            f"no rows for target {target.spec} ({hardware}) in {dataset_dir(run)} (run `lanas measure` first)"
        )
    match = functools.reduce(operator.and_, (col(c) == v for c, v in run.config.setting(target).columns().items()))
    return ray.data.read_parquet(str(part), columns=COLUMNS, schema=ds.FILE_SCHEMA).filter(expr=match).to_pandas()


def load_rows(run: RunDir, target: Target, hardware: str) -> tuple[dict[str, Any], dict[str, int]]:
    """One target's usable rows by split (see :func:`split_row`), plus counts of what was dropped."""
    rows = _read_partition(run, target, hardware)
    dropped = {"failed": int((rows["status"] != "ok").sum())}
    ok = rows[rows["status"] == "ok"]
    lat, ms = ok[LATENCY_RATIO].astype(float), ok["latency_ms"].astype(float)
    bad = ~np.isfinite(lat) | (lat <= 0) | ~np.isfinite(ms) | (ms <= 0)
    dropped["nan_zero_or_negative"] = int(bad.sum())
    ok = ok[~bad].drop_duplicates("arch_id")
    if len(ok) == 0:
        raise PipelineError(
            f"no usable rows for target {hardware} at this run's measurement setting "
            f"({dropped['failed']} failed, {dropped['nan_zero_or_negative']} NaN/zero/negative)"
        )
    fit = run.config.fit
    samplers = ok["sampler"].fillna("uniform")
    ok = ok.assign(
        sampler=samplers, split=[split_row(a, k, fit.test_fraction) for a, k in zip(ok["arch_id"], samplers)]
    )
    splits = {name: ok[ok["split"] == name] for name in ("train", *EVAL_SETS)}
    splits["train"] = splits["train"].assign(fold=[quality.fold_of(a, fit.folds) for a in splits["train"]["arch_id"]])
    for name, minimum in MIN_ROWS.items():
        if len(splits[name]) < minimum:
            raise PipelineError(
                f"{hardware}: too few rows to split: {len(ok)} usable rows give {len(splits[name])} "
                f"{name} rows (need >= {minimum}); measure more architectures"
            )
    return splits, dropped


def predictor_round(train) -> int:
    """The closed-loop round a predictor serves: one past the last search round whose
    derived architectures it was trained on (0 without any)."""
    rounds = train.loc[train["sampler"] == "derived", "round"].dropna()
    return int(rounds.max()) + 1 if len(rounds) else 0


def arrays(frame) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(np.stack(frame["encoding"].to_numpy()), dtype=torch.float32)
    y = torch.tensor(frame[LATENCY_RATIO].to_numpy(), dtype=torch.float32)
    return x, y
