"""Does the search's latency term estimate the latency of the genotypes its state describes?

    .venv/bin/python benchmarks/encoding_relaxed.py [--run-dir runs/bench-demo] [--states 20] [--samples 512]

For each fitted predictor of a run (one per target) and each search mode, search states
(alpha, and beta for pcdarts) are drawn at several concentrations ``s`` (logits
``s * N(0, 1)``: 0.001 is the initial state, 10 is nearly discrete). For each state:

* ``E[pred]``  -- the predictor's mean over genotypes sampled from the state: per edge an
  op from ``softmax(alpha)`` ('none' excluded, as the latency term does), per node two
  distinct inputs drawn without replacement with probabilities ``softmax(beta)`` (or
  uniformly without beta); Monte Carlo over ``--samples`` genotypes;
* ``derived``  -- the predictor on the genotype the state derives (DARTS' rule);
* the latency term's predictor value with the encoding before this fix (edge weights
  ``2 * softmax(beta)``) and after it (edge inclusion probabilities, at most 1 per edge).

Reported: the mean |term / E[pred] - 1| and |term / derived - 1| per (target, mode, s),
old and new encoding. Without beta (darts, gdas) both encodings are the same; they are
listed to show what the latency term cannot see there (the inputs a node keeps).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from common import record

from lanas.encoding import derive_genotype, encode_genotype, encode_relaxed, normalised_edge_weights
from lanas.space import SearchSpace
from lanas.topology import CELL_TYPES, NODES, NONE, NUM_EDGES, node_edges
from lanas_pipeline import predictor_store
from lanas_pipeline.rundir import RunDir

MODES = ("darts", "gdas", "pcdarts")
SCALES = (0.001, 1.0, 3.0, 10.0)


def none_masked(alpha: torch.Tensor, space: SearchSpace) -> torch.Tensor:
    return alpha.masked_fill(torch.tensor([op == NONE for op in space.ops]), float("-inf"))


def sample_encodings(
    alpha: torch.Tensor, beta: torch.Tensor | None, space: SearchSpace, n: int, gen: torch.Generator
) -> torch.Tensor:
    """``n`` discrete encodings of genotypes drawn from the state (see the module doc)."""
    k = len(space.ops)
    out = torch.zeros(n, len(CELL_TYPES), NUM_EDGES, k)
    op_probs = torch.softmax(none_masked(alpha, space), -1)
    for c in range(len(CELL_TYPES)):
        ops = torch.multinomial(op_probs[c], n, replacement=True, generator=gen).T  # [n, 14]
        chosen = torch.zeros(n, NUM_EDGES)
        for node in NODES:
            edges = node_edges(node)
            probs = torch.ones(node) if beta is None else torch.softmax(beta[c, edges], -1)
            picks = torch.multinomial(probs.expand(n, node), 2, replacement=False, generator=gen)
            chosen.scatter_(1, edges.start + picks, 1.0)
        out[:, c] = chosen.unsqueeze(-1) * torch.nn.functional.one_hot(ops, k).float()
    return out.flatten(1)


def old_edge_weights(beta: torch.Tensor) -> torch.Tensor:
    """The encoding before the fix: ``2 * softmax(beta)`` per node."""
    parts = [2.0 * torch.softmax(beta[..., node_edges(n)], -1) for n in NODES]
    return torch.cat(parts, -1)


def state_gaps(predictor, space: SearchSpace, mode: str, scale: float, gen: torch.Generator, samples: int) -> dict:
    alpha = scale * torch.randn(len(CELL_TYPES), NUM_EDGES, len(space.ops), generator=gen)
    beta = scale * torch.randn(len(CELL_TYPES), NUM_EDGES, generator=gen) if mode == "pcdarts" else None
    op_w = torch.softmax(none_masked(alpha, space), -1)
    with torch.no_grad():
        expected = float(predictor(sample_encodings(alpha, beta, space, samples, gen)).mean())
        derived = float(predictor(encode_genotype(derive_genotype(alpha, beta, space), space).unsqueeze(0)))
        new = float(
            predictor(encode_relaxed(op_w, None if beta is None else normalised_edge_weights(beta)).unsqueeze(0))
        )
        old = float(predictor(encode_relaxed(op_w, None if beta is None else old_edge_weights(beta)).unsqueeze(0)))
    return {
        "old_vs_expected": abs(old / expected - 1),
        "new_vs_expected": abs(new / expected - 1),
        "old_vs_derived": abs(old / derived - 1),
        "new_vs_derived": abs(new / derived - 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--run-dir", default="runs/bench-demo", help="a run with fitted predictors (e.g. after `make demo`)"
    )
    ap.add_argument("--states", type=int, default=20, help="search states per (mode, scale)")
    ap.add_argument("--samples", type=int, default=512, help="Monte Carlo genotypes per state")
    args = ap.parse_args()
    run = RunDir.existing(args.run_dir)
    rows = []
    for hw, stored in predictor_store.load_all(run).items():
        space = SearchSpace(stored.meta.ops)
        for mode in MODES:
            for scale in SCALES:
                gen = torch.Generator().manual_seed(0)
                gaps = [state_gaps(stored.model, space, mode, scale, gen, args.samples) for _ in range(args.states)]
                row = {
                    "target": hw,
                    "mode": mode,
                    "scale": scale,
                    **{k: statistics.mean(g[k] for g in gaps) for k in gaps[0]},
                }
                rows.append(row)
                print(
                    f"{hw:34s} {mode:8s} s={scale:<6g} |term/E-1| old {100 * row['old_vs_expected']:6.2f} % "
                    f"new {100 * row['new_vs_expected']:6.2f} %   "
                    f"|term/derived-1| old {100 * row['old_vs_derived']:6.2f} % "
                    f"new {100 * row['new_vs_derived']:6.2f} %",
                    flush=True,
                )
    record(
        "encoding_relaxed",
        {"run_dir": args.run_dir, "states": args.states, "samples": args.samples, "rows": rows},
        "python benchmarks/encoding_relaxed.py " + " ".join(sys.argv[1:]),
    )


if __name__ == "__main__":
    main()
