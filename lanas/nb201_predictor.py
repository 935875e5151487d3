"""A device's latency over the whole NAS-Bench-201 space from some of its own timings.

The pipeline's predictor design on this space's encoding (``lanas.nb201``): three
candidates, simplest first, a richer one kept only when it beats the one kept so far on
the validation rows with 95 % confidence (:func:`lanas.quality.select_model`):

* ``table`` -- the additive lookup table, fitted for relative error;
* ``log_table`` -- the table on log latency plus the cell's disconnection flag
  (:func:`lanas.nb201.disconnected`): a runtime that folds constants runs a disconnected
  cell's network as a constant, a factor, not a sum, of its ops' costs;
* ``table+mlp`` -- the first table plus an MLP on the encoding.

``benchmarks/nb201_devices.py`` measures it on the 21 published devices (900 rows to
train, 100 to validate: the BRP-NAS protocol).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from sklearn.linear_model import RidgeCV

from lanas import nb201
from lanas.fewshot import RIDGE_ALPHAS
from lanas.nb201 import Cell
from lanas.predictor import LatencyPredictor, PredictorSettings, fit_additive, train_predictor
from lanas.quality import select_model

MLP = PredictorSettings(hidden=(64,), epochs=200, batch_size=64)


def features(cells: list[Cell]) -> np.ndarray:
    """``[cells, 31]``: the one-hot encoding, then the disconnection flag."""
    flag = np.array([[float(nb201.disconnected(c))] for c in cells])
    return np.hstack([nb201.encode_many(cells).numpy().astype(np.float64), flag])


def log_table(f: np.ndarray, y: np.ndarray) -> RidgeCV:
    """The lookup table on log latency over the encoding and the disconnection flag."""
    return RidgeCV(alphas=RIDGE_ALPHAS).fit(f, np.log(y))


def fit_predictor(
    f: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray, seed: int
) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The three candidates fitted on rows ``tr`` of ``f`` (:func:`features`) with latencies
    ``y`` (ms; only the rows ``tr`` and ``va`` are read), the one the validation rows
    ``va`` choose. Returns a function of row indices of ``f`` -> ms, and its name."""
    x, yt = torch.as_tensor(f[:, :-1], dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    table = LatencyPredictor(x.shape[1], hidden=())
    table.set_target_stats(yt[tr])
    fit_additive(table, x[tr], yt[tr])
    mlp = LatencyPredictor(x.shape[1], hidden=MLP.hidden)
    train_predictor(mlp, (x[tr], yt[tr]), (x[va], yt[va]), MLP, seed=seed)
    logt = log_table(f[tr], y[tr])

    def torch_predict(model: LatencyPredictor) -> Callable[[np.ndarray], np.ndarray]:
        def run(rows: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model.eval()(x[rows]).double().numpy()

        return run

    candidates = {
        "table": torch_predict(table),
        "log_table": lambda rows: np.exp(logt.predict(f[rows])),
        "table+mlp": torch_predict(mlp),
    }
    choice = select_model({k: c(va) for k, c in candidates.items()}, y[va], seed=seed)["chosen"]
    return candidates[choice], choice
