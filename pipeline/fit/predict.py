"""``lanas predict``: a stored predictor's latency for genotypes from a file."""

from __future__ import annotations

import json

import torch

from lanas.encoding import encode_genotype
from lanas.genotype import read_jsonl

from .. import predictor_store
from ..measure import select_targets
from ..records import PREDICTED_MS
from ..rundir import RunDir


def predict_genotypes(run_dir: str, genotypes_file: str, target: str | None = None) -> list[str]:
    """One JSON line per (genotype, target): predicted ratio and ms with each target's predictor."""
    run = RunDir.existing(run_dir)
    cfg = run.config
    gs = read_jsonl(genotypes_file, cfg.space.ops)
    x = torch.stack([encode_genotype(g, cfg.space) for g in gs])
    out = []
    for t in select_targets(cfg, target, run.hardware_ids()):
        stored = predictor_store.load_for(run, t, gate=False)
        for g, r in zip(gs, stored.predict_ratio(x).tolist()):
            out.append(
                json.dumps(
                    {
                        "arch_id": g.arch_id,
                        "target": t.spec,
                        "hardware": stored.meta.hardware,
                        "predicted_latency_ratio": round(r, 6),
                        PREDICTED_MS: round(r * stored.reference_ms, 6),
                    }
                )
            )
    return out
