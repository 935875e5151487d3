"""Is accuracy on the task saturated? The spread of accuracy over random architectures
against the seed-to-seed noise of one architecture, per data regime.

    .venv/bin/python benchmarks/task_spread.py [--limits 0 400 200 100] [--archs 6] [--seeds 3] [--epochs 10]
        [--layers 5 --channels 16] [--config configs/demo.yaml] [--image-size 14] [--name task_spread_e10]
        [--sampling uniform|latency-range]

For each ``data.limit`` (training images kept; 0 = all of the config's training split),
``--archs`` random architectures (uniform, or ``--sampling latency-range``: across the
latency range, as the latency-matched partners are drawn) of the deployed network are each
trained from scratch with ``--seeds`` training seeds (the demo's evaluation settings:
10 epochs, batch 64, lr 0.05) and scored on the config's test split; the trivial
(convolution-free) network beside them, with the same seeds. *Spread*: the standard
deviation, over architectures, of each architecture's mean accuracy; *noise*: the
pooled standard deviation over seeds of one architecture. A task on which methods can
be told apart needs spread / noise well above 1 (the issue asks for several times).
Two worker processes (one torch thread each), no Ray.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import record


def train_one(job: tuple) -> tuple[int, str, int, float, float]:
    import dataclasses

    import torch

    from lanas.data import load_splits, loader
    from lanas.genotype import Genotype
    from lanas.network import Network
    from lanas.train import accuracy_and_loss, train_network
    from lanas_pipeline.config import load_config

    limit, genotype_json, seed, epochs, layers, channels, noise, config, image_size = job
    torch.set_num_threads(1)
    overrides = {"network.layers": layers, "network.channels": channels}
    cfg = load_config(Path(__file__).resolve().parents[1] / config, overrides)
    data = dataclasses.replace(cfg.data, limit=limit, noise=noise)
    if image_size is not None:
        data = dataclasses.replace(data, image_size=image_size)
    cfg = dataclasses.replace(cfg, data=data)
    settings = dataclasses.replace(cfg.evaluate.train, epochs=epochs)
    splits = load_splits(data)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    net = Network(Genotype.from_json(genotype_json, cfg.space.ops), cfg.macro())
    train_network(net, loader(splits.train, settings.batch_size, True, seed), settings)
    acc, _ = accuracy_and_loss(net, loader(splits.test, 512, False))
    return limit, genotype_json, seed, acc, time.perf_counter() - t0


def main() -> None:
    from lanas_pipeline.config import load_config

    ap = argparse.ArgumentParser()
    ap.add_argument("--limits", type=int, nargs="+", default=[0, 400, 200, 100])
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--layers", type=int, default=5, help="cells of the deployed network (demo: 5)")
    ap.add_argument("--channels", type=int, default=16, help="its initial channels (demo: 16)")
    ap.add_argument("--noise", type=float, default=0.0, help="data.noise: fixed Gaussian pixel noise (std)")
    ap.add_argument("--config", default="configs/demo.yaml", help="the profile whose data and training are used")
    ap.add_argument("--image-size", type=int, default=None, help="data.image_size (animal-mnist; default: config's)")
    ap.add_argument("--name", default="task_spread", help="record results/<name>.json")
    ap.add_argument(
        "--sampling",
        choices=("uniform", "latency-range"),
        default="uniform",
        help="uniform random architectures, or drawn across the latency range as the latency-matched partners and "
        "the random-search peer draw them (lanas.space.LATENCY_RANGE: half uniform, half one op per cell)",
    )
    args = ap.parse_args()
    from lanas.genotype import trivial
    from lanas.space import LATENCY_RANGE, sample_mixed

    cfg = load_config(Path(__file__).resolve().parents[1] / args.config)
    if args.sampling == "uniform":
        archs = [g.to_json() for g in cfg.space.sample_unique(args.archs, 12345)]
    else:
        archs = [g.to_json() for g, _ in sample_mixed(cfg.space, args.archs, 12345, LATENCY_RANGE)]
    triv = trivial().to_json()
    jobs = [
        (lim, g, s, args.epochs, args.layers, args.channels, args.noise, args.config, args.image_size)
        for lim in args.limits
        for g in [*archs, triv]
        for s in range(args.seeds)
    ]
    out: dict[int, dict[str, list[float]]] = {lim: {g: [] for g in [*archs, triv]} for lim in args.limits}
    times: dict[int, list[float]] = {lim: [] for lim in args.limits}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for i, (lim, g, _, acc, sec) in enumerate(pool.map(train_one, jobs), 1):
            out[lim][g].append(acc)
            times[lim].append(sec)
            print(f"[{i}/{len(jobs)}] limit {lim}: {100 * acc:.1f} % ({sec:.1f} s)", flush=True)
    regimes = []
    for lim in args.limits:
        trivial_accs = out[lim].pop(triv)
        means = [statistics.mean(v) for v in out[lim].values()]
        noise = statistics.mean(statistics.variance(v) for v in out[lim].values()) ** 0.5
        spread = statistics.stdev(means)
        regimes.append({
            "limit": lim, "train_images": lim or 1078, "mean_acc": statistics.mean(means),
            "min_arch_acc": min(means), "max_arch_acc": max(means), "spread_sd": spread, "noise_sd": noise,
            "ratio": spread / noise if noise > 0 else None, "median_train_s": statistics.median(times[lim]),
            "accs": list(out[lim].values()), "trivial_acc": statistics.mean(trivial_accs), "trivial_accs": trivial_accs,
        })  # fmt: skip
        r = regimes[-1]
        print(
            f"limit {lim or 'all'}: mean {100 * r['mean_acc']:.1f} % (archs {100 * r['min_arch_acc']:.1f}-"
            f"{100 * r['max_arch_acc']:.1f}), spread {100 * spread:.2f} pts, noise {100 * noise:.2f} pts, "
            f"ratio {r['ratio'] if r['ratio'] is None else round(r['ratio'], 2)}, trivial "
            f"{100 * r['trivial_acc']:.1f} %, {r['median_train_s']:.1f} s/train"
        )
    cmd = (
        f"python benchmarks/task_spread.py --limits {' '.join(map(str, args.limits))} --archs {args.archs} "
        f"--seeds {args.seeds} --epochs {args.epochs} --layers {args.layers} --channels {args.channels} "
        f"--noise {args.noise:g} --config {args.config}"
        + (f" --image-size {args.image_size}" if args.image_size is not None else "")
        + f" --name {args.name} --sampling {args.sampling}"
    )
    figures = {"archs": args.archs, "sampling": args.sampling, "seeds": args.seeds, "epochs": args.epochs,
               "layers": args.layers, "channels": args.channels, "noise": args.noise, "config": args.config,
               "image_size": args.image_size, "wall_s": time.perf_counter() - t0,
               "regimes": regimes}  # fmt: skip
    record(args.name, figures, cmd)


if __name__ == "__main__":
    main()
