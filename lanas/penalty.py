"""What the search penalises: LA-DNAS and the latency-aware methods it is compared with.

Every method adds ``lambda * model(encode_alpha(alpha, beta)) / model.typical`` to the
architecture loss (:func:`lanas.search.latency_term`); they differ in ``model``:

* ``ladnas`` -- the learned latency predictor of the target (:mod:`lanas.predictor`: the
  model cross-validation chose, an additive table over (edge group, op) with or without
  the MLP), on the relaxed architecture;
* ``lut`` -- ProxylessNAS / FBNet: the expected latency ``sum softmax(alpha) * LUT`` with
  a lookup table per (cell, edge, op), fitted by relative-error least squares on the
  same measured rows as the predictor (:func:`lut_table`);
* ``flops`` -- the proxy the paper argues against: the expected FLOPs of the deployed
  network, from a FLOPs table per (edge group, op) (:func:`flops_table`: an op's FLOPs
  depend on its cell's width, resolution and stride, not on its edge, so the table is
  exact), the same for every target;
* ``random`` -- no supernet: random search (:mod:`lanas.random_search`). Candidates
  drawn across the latency range are trained from scratch for a few epochs within a time
  budget, and per target and lambda the one with the lowest
  ``validation CE + lambda * predictor latency term`` is kept.

All tables are :class:`~lanas.predictor.LatencyPredictor` modules without an MLP, so the
search loop treats every method alike.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lanas.encoding import encode_genotype, encoding_size
from lanas.genotype import Genotype
from lanas.network import MacroSettings
from lanas.predictor import LatencyPredictor, fit_additive
from lanas.quality import network_flops
from lanas.space import SearchSpace

METHODS = ("ladnas", "lut", "flops", "random")
GRADIENT_METHODS = ("ladnas", "lut", "flops")  # lambda = 0 is the same plain search for all three
PER_TARGET = ("ladnas", "lut", "random")  # methods whose penalty depends on the target
FLOPS_ARCHS = 40  # random architectures the FLOPs table is fitted on (24 unknowns, an exact fit)
FLOPS_SEED = 7  # ... drawn with this seed


def lut_table(space: SearchSpace, x: torch.Tensor, y: torch.Tensor) -> LatencyPredictor:
    """The ProxylessNAS/FBNet lookup table of encodings ``x`` and targets ``y``: one
    weight per (cell, edge, op) entry, no MLP, fitted by relative-error ridge least
    squares (:func:`lanas.predictor.fit_additive`)."""
    if len(x) == 0 or not torch.all(torch.isfinite(y)) or not torch.all(y > 0):
        raise ValueError("a lookup table needs rows with finite targets > 0")
    model = LatencyPredictor(encoding_size(space), ())
    model.set_target_stats(y)
    fit_additive(model, x, y)
    return model.eval()


def flops_table(
    space: SearchSpace, macro: MacroSettings, resolution: int, genotypes: Sequence[Genotype] | None = None
) -> tuple[LatencyPredictor, float]:
    """The FLOPs table of the deployed network (``macro`` on ``resolution``-pixel inputs)
    per (edge group, op), fitted on ``genotypes`` (default: :data:`FLOPS_ARCHS` random
    ones), in MFLOPs. Returns it and its largest relative error on those genotypes (exact
    up to the ridge and float32)."""

    genotypes = list(genotypes) if genotypes is not None else space.sample_unique(FLOPS_ARCHS, FLOPS_SEED)
    x = torch.stack([encode_genotype(g, space) for g in genotypes])
    y = torch.tensor([network_flops(g, macro, resolution) / 1e6 for g in genotypes], dtype=torch.float32)
    model = LatencyPredictor.for_space(space, (), sharing=False, repeats=False)  # FLOPs add up exactly
    model.set_target_stats(y)
    fit_additive(model, x, y)
    model.eval()
    with torch.no_grad():
        worst = float(((model(x) - y).abs() / y).max())
    return model, worst
