"""Model selection by cross-validation, the baselines, and the chosen predictor's scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lanas import quality
from lanas.encoding import group_matrix
from lanas.predictor import LatencyPredictor, additive_predictor

from ..rundir import RunDir
from .data import EVAL_SETS, arrays

FLOPS_SAMPLE = 1000  # training rows the FLOPs baseline's line is fitted on


def select(run: RunDir, mlp: tuple[LatencyPredictor, np.ndarray], train, reference_ms: float):
    """The shipped predictor, chosen by k-fold cross-validation over the training rows
    between the additive lookup table (closed form) and additive + MLP (trained by the
    Ray Train job): :func:`lanas.quality.select_model`. Returns it and the selection record."""
    space, sharing, repeats = run.config.space, run.config.fit.model.sharing, run.config.fit.model.repeats
    x, y = arrays(train)

    def additive(xa, ya, xb):
        with torch.no_grad():
            return additive_predictor(space, torch.as_tensor(xa), torch.as_tensor(ya), sharing, repeats)(
                torch.as_tensor(xb)
            ).numpy()

    oof = {"additive": quality.out_of_fold(additive, x.numpy(), y.numpy(), train["fold"].to_numpy()), "mlp": mlp[1]}
    sel = quality.select_model(oof, y.numpy(), run.config.seed, reference_ms)
    model = additive_predictor(space, x, y, sharing, repeats) if sel["chosen"] == "additive" else mlp[0]
    return model, {**sel, "folds": run.config.fit.folds, "rows": len(y), "sharing": sharing, "repeats": repeats}


def _baselines(run: RunDir, train, flops: LatencyPredictor):
    """Name -> predict(frame) of every baseline, fitted on the ``train`` rows. ``flops`` is
    the run's FLOPs table (:func:`lanas.penalty.flops_table`: the deployed network's FLOPs
    add up exactly over (edge group, op), so a table fitted on a few networks counted op by
    op gives every row's FLOPs from its encoding)."""
    cfg = run.config
    xtr, ytr = (t.numpy() for t in arrays(train))
    groups = group_matrix(cfg.space).numpy()
    lut, lut_op, trees = (
        quality.fit_lut(xtr, ytr),
        quality.fit_lut(xtr @ groups, ytr),
        quality.fit_trees(xtr, ytr, cfg.seed),
    )
    sample = np.random.default_rng(cfg.seed).choice(len(train), size=min(len(train), FLOPS_SAMPLE), replace=False)

    def flops_of(frame) -> np.ndarray:
        with torch.no_grad():
            return flops(arrays(frame)[0]).double().numpy() * 1e6

    slope, intercept = quality.fit_flops(flops_of(train.iloc[sample]), ytr[sample])
    x = lambda frame: arrays(frame)[0].numpy()  # noqa: E731
    return {
        "lut": lambda f: lut.predict(x(f)),
        "lut_op": lambda f: lut_op.predict(x(f) @ groups),
        "trees": lambda f: trees.predict(x(f)),
        "flops": lambda f: slope * flops_of(f) + intercept,
    }


def score(run: RunDir, model: LatencyPredictor, splits: dict[str, Any], reference_ms: float, flops: LatencyPredictor):
    """Metrics of the shipped predictor and of every baseline on each evaluation set
    (:data:`EVAL_SETS` that have rows): set -> model -> metrics; the paired bootstrap of
    the predictor's relative errors on the random test split against the best baseline's;
    the test points of the scatter plot."""
    models = {"predictor": lambda f: _predict(model, f), **_baselines(run, splits["train"], flops)}
    scores, rel = {}, {}
    for name in (n for n in EVAL_SETS if len(splits[n])):
        y = arrays(splits[name])[1].numpy()
        preds = {k: np.asarray(m(splits[name]), dtype=float) for k, m in models.items()}
        scores[name] = {k: quality.regression_metrics(p, y, reference_ms) for k, p in preds.items()}
        if name == "test":
            rel = {k: np.abs(p - y) / y for k, p in preds.items()}
            points = {"test_true": y.tolist(), "test_pred": preds["predictor"].tolist()}
    best = min((k for k in scores["test"] if k != "predictor"), key=lambda k: scores["test"][k]["mape"])
    versus = {**quality.paired_bootstrap(rel["predictor"], rel[best], seed=run.config.seed), "best": best}
    return scores, versus, points


def _predict(model: LatencyPredictor, frame) -> np.ndarray:
    with torch.no_grad():
        return model(arrays(frame)[0]).numpy()
