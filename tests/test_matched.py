"""Latency-matched random partners (pipeline.evaluate.match_pool): the pool reaches the
latency floor, where searches with a large lambda land, on a predictor with known costs."""

import torch

from lanas.encoding import encode_genotype
from lanas.genotype import Genotype
from lanas.predictor import LatencyPredictor
from lanas.space import SearchSpace
from lanas.topology import CONCAT, NODES
from lanas_pipeline.evaluate import MATCH_POOL, match_pool

SPACE = SearchSpace()
COST = {"none": 0.0, "max_pool_3x3": 1.0, "avg_pool_3x3": 1.0, "skip_connect": 0.5, "sep_conv_3x3": 6.0,
        "sep_conv_5x5": 8.0, "dil_conv_3x3": 4.0, "dil_conv_5x5": 5.0}  # fmt: skip


def _latency(genotypes):
    table = LatencyPredictor.table(torch.tensor([COST[o] for o in SPACE.ops]).repeat(28), 1.0)
    with torch.no_grad():
        return table(torch.stack([encode_genotype(g, SPACE) for g in genotypes]))


def test_the_match_pool_reaches_the_latency_floor_uniform_samples_miss():
    cheapest = tuple(("skip_connect", i) for n in NODES for i in (0, 1))
    floor = float(_latency([Genotype(cheapest, CONCAT, cheapest, CONCAT)])[0])
    pool = match_pool(SPACE, seed=0)
    assert len(pool) == MATCH_POOL and len({g.arch_id for g in pool}) == MATCH_POOL
    assert float(_latency(pool).min()) <= 1.10 * floor
    uniform = SPACE.sample_unique(MATCH_POOL, 0)
    assert float(_latency(uniform).min()) > 1.5 * floor
    # and it still spans the slow end: the partners of lambda = 0-like architectures exist too
    assert float(_latency(pool).max()) >= 0.9 * float(_latency(uniform).max())
