"""Search-step time of the full DARTS supernet versus the cheaper modes, on the demo profile.

    .venv/bin/python benchmarks/search_step.py [--steps 15] [--config configs/demo.yaml]

One step = the library's own step (lanas.search.arch_step: alpha on a validation batch
with CE + lambda * latency term, then lanas.search.weight_step on a training batch). All modes are timed in one
process, one thread, interleaved round-robin so drift hits them alike; medians are
reported with their ratio to full DARTS. Then one complete demo-profile search for one
lambda is timed with the chosen mode (target: <= 120 s on one core).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
from common import record

from lanas.data import load_splits, loader
from lanas.predictor import LatencyPredictor
from lanas.search import SearchState, arch_step, build_supernet, search, weight_step
from lanas_pipeline.config import load_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--steps", type=int, default=15, help="timed steps per mode")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    s = cfg.search.settings
    splits = load_splits(cfg.data)
    batches = list(itertools.islice(loader(splits.train, s.batch_size, True), 4))
    predictor = LatencyPredictor.for_space(cfg.space, (64,)).eval().requires_grad_(False)
    modes = ["darts", "pcdarts", "gdas"]
    nets = {}
    for mode in modes:
        torch.manual_seed(0)
        nets[mode] = build_supernet(cfg.space, cfg.macro(), type(s)(**{**s.__dict__, "mode": mode}))
    states = {m: SearchState.start(n, s, lam=1.0) for m, n in nets.items()}

    def step(mode: str, i: int) -> float:
        """One search step as lanas.search runs it: arch_step, then weight_step."""
        (xv, yv), (xt, yt) = batches[i % 4], batches[(i + 1) % 4]
        t0 = time.perf_counter()
        arch_step(states[mode], predictor, xv, yv)
        weight_step(states[mode], xt, yt, s.grad_clip)
        return time.perf_counter() - t0

    for mode in modes:  # warm-up
        step(mode, 0)
    times = {m: [] for m in modes}
    for i in range(args.steps):
        for mode in modes:
            times[mode].append(step(mode, i))
    med = {m: statistics.median(v) for m, v in times.items()}
    print(
        f"search step, demo profile ({s.layers} cells, C={s.channels}, batch {s.batch_size}, 8x8, 1 thread), "
        f"median of {args.steps}:"
    )
    for m in modes:
        print(f"  {m:8s} {med[m]:.3f} s/step   {med['darts'] / med[m]:.1f}x faster than full DARTS")

    # one complete demo search for one lambda with the configured (chosen) mode
    torch.manual_seed(0)
    net = build_supernet(cfg.space, cfg.macro(), s)
    t0 = time.perf_counter()
    result = search(
        net, predictor, loader(splits.train, s.batch_size, True), loader(splits.val, s.batch_size, True, 1), s, 1.0
    )
    full = time.perf_counter() - t0
    steps_per_epoch = len(loader(splits.train, s.batch_size, True))
    print(
        f"one demo search ({s.mode}, {s.epochs} epochs x {steps_per_epoch} steps, lambda=1): {full:.1f} s "
        f"on one core (target <= 120 s) -> {result.genotype.arch_id[:10]}"
    )
    record(
        "search_step",
        {
            "profile": args.config,
            "settings": {
                "layers": s.layers,
                "channels": s.channels,
                "batch_size": s.batch_size,
                "epochs": s.epochs,
                "mode": s.mode,
            },
            "median_step_s": med,
            "speedup_vs_darts": {m: med["darts"] / med[m] for m in modes},
            "steps_timed": args.steps,
            "one_search_s": full,
            "target_one_search_s": 120,
        },
        f"python benchmarks/search_step.py --steps {args.steps} --config {args.config}",
    )


if __name__ == "__main__":
    main()
