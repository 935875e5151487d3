"""Does a budget search land its derived architecture inside the window, and how soon?
Plain dual ascent (damping 1) against the damped one (the default, 0.5) on the same searches.

    .venv/bin/python benchmarks/budget_landing.py [--seeds 6] [--extra-epochs 20]

The setting of ``tests/test_budget.py``, made a sweep: a predictor linear in the encoding
with a random positive cost per (cell, edge, op) (one per seed), budgets at 5, 10, 20, 50
and 80 % of the way from the fastest to the slowest corner architecture (divided by the
window's middle, so the aim sits there), a GDAS supernet of 2 cells and 8 channels on 128
digits images, 2 scheduled epochs and up to ``--extra-epochs`` more, one thread. Records
per damping: how many searches landed, the epochs they took, and how far outside the
window the others ended.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import record

from lanas.budget import Budget, BudgetSettings, reachable
from lanas.data import DataSettings, load_splits, loader
from lanas.encoding import encode_genotype, encoding_size
from lanas.network import MacroSettings
from lanas.predictor import LatencyPredictor
from lanas.search import SearchSettings, build_supernet, search
from lanas.space import SearchSpace

SPACE = SearchSpace()
SETTINGS = SearchSettings(mode="gdas", layers=2, channels=8, epochs=2, batch_size=32, a_lr=0.05)
SHARES = (0.05, 0.1, 0.2, 0.5, 0.8)
DAMPINGS = (1.0, 0.5)


def linear_predictor(seed: int) -> LatencyPredictor:
    g = torch.Generator().manual_seed(seed)
    return LatencyPredictor.table(torch.rand(encoding_size(SPACE), generator=g) + 0.1, 1.0).eval().requires_grad_(False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=12, help="random predictors (each with len(SHARES) budgets)")
    ap.add_argument("--extra-epochs", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    splits = load_splits(DataSettings(limit=128))
    loaders = loader(splits.train, 32, True, 1), loader(splits.val, 32, True, 2)
    runs = {d: [] for d in DAMPINGS}
    for seed in range(args.seeds):
        p = linear_predictor(seed)
        lo, hi = reachable(lambda x: p(x), SPACE)  # noqa: B023
        for share in SHARES:
            for damping in DAMPINGS:
                budget = BudgetSettings(window=(0.87, 0.95), extra_epochs=args.extra_epochs, damping=damping)
                limit = (lo + share * (hi - lo)) / (sum(budget.window) / 2)
                torch.manual_seed(0)
                net = build_supernet(SPACE, MacroSettings(in_channels=1), SETTINGS)
                t0 = time.perf_counter()
                r = search(net, p, *loaders, SETTINGS, 0.0, budget=Budget(limit, budget))
                predicted = float(p(encode_genotype(r.genotype, SPACE)[None])) / limit
                landed = budget.window[0] <= predicted <= budget.window[1]
                runs[damping].append(
                    {"seed": seed, "share": share, "landed": landed, "epochs": len(r.history),
                     "predicted_over_budget": round(predicted, 4), "seconds": round(time.perf_counter() - t0, 1)}
                )  # fmt: skip
                print(f"seed {seed} share {share} damping {damping}: {runs[damping][-1]}", flush=True)
    summary = {}
    for damping, rows in runs.items():
        landed = [r for r in rows if r["landed"]]
        missed = [r for r in rows if not r["landed"]]
        summary[str(damping)] = {
            "landed": f"{len(landed)} of {len(rows)}",
            "epochs_when_landed_median": statistics.median(r["epochs"] for r in landed) if landed else None,
            "epochs_when_landed_max": max((r["epochs"] for r in landed), default=None),
            "missed_predicted_over_budget": [r["predicted_over_budget"] for r in missed],
            "seconds_median": statistics.median(r["seconds"] for r in rows),
        }
    print(summary)
    record(
        "budget_landing",
        {"summary": summary, "runs": {str(k): v for k, v in runs.items()}},
        f"python benchmarks/budget_landing.py --seeds {args.seeds} --extra-epochs {args.extra_epochs}",
    )


if __name__ == "__main__":
    main()
