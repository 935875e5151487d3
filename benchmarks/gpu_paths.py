"""The library's GPU paths on a CUDA machine: latency measurement per CUDA target, the
search loop and the training loop on the GPU. Uses ``lanas`` only (no Ray), so it runs
on a GPU box that has torch (and onnxruntime) but no Ray.

    python benchmarks/gpu_paths.py [--archs 20] [--out benchmarks/results/gpu_paths.json]

Per target (the CIFAR-10 profile's evaluation network, 32x32 input): every
architecture is measured twice (second pass in reverse order) with the profile's
protocol; reported are the median latency, the seconds per architecture, the
repeatability (median |r1/r2 - 1| of the reference-normalised ratio) and Kendall tau
between targets. Then one search epoch per mode and one training epoch, on random
CIFAR-shaped tensors (no dataset on the GPU box), time per step on the GPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from lanas.genotype import published
from lanas.measure import LatencyMeter, MeasureSettings
from lanas.network import MacroSettings, Network
from lanas.predictor import LatencyPredictor
from lanas.runtimes import RuntimeMissing, device_name, runtime_version
from lanas.search import SearchSettings, build_supernet, search
from lanas.space import SearchSpace
from lanas.target import Target
from lanas.train import TrainSettings, train_network

# The CIFAR-10 profile (configs/cifar10.yaml): evaluation network, protocol, search settings.
CIFAR_MACRO = MacroSettings(layers=20, channels=36, stem_multiplier=3, in_channels=3, num_classes=10)
PROTOCOL = MeasureSettings(warmup=10, repeats=50)
SEARCH = dict(layers=8, channels=16, epochs=1, batch_size=256, partial_channels=4)
TARGETS = (
    Target("cuda", "torch", "float32", 32),
    Target("cuda", "torch", "float16", 32),
    Target("cuda", "torch", "bfloat16", 32),
    Target("cuda", "onnxruntime", "float32", 32),
    Target("cuda", "torch", "float32", 1),
)
PUBLISHED = ("darts_v1", "darts_v2", "pc_darts")


def kendall(a: list[float], b: list[float]) -> float:
    pairs = list(itertools.combinations(range(len(a)), 2))
    s = sum((1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1) for i, j in pairs if a[i] != a[j] and b[i] != b[j])
    return s / len(pairs)


def time_targets(genotypes: list, space: SearchSpace) -> dict:
    out = {}
    for target in TARGETS:
        try:
            version = runtime_version(target.runtime)
            meter = LatencyMeter(CIFAR_MACRO, target, PROTOCOL, resolution=32)
        except (RuntimeMissing, RuntimeError, ValueError) as err:
            out[target.spec] = {"error": str(err).splitlines()[0]}
            print(f"{target.spec}: skipped ({out[target.spec]['error']})", flush=True)
            continue
        t0 = time.perf_counter()
        first = [meter.measure(g).timing for g in genotypes]
        per_arch = (time.perf_counter() - t0) / len(genotypes)
        second = [meter.measure(g).timing for g in reversed(genotypes)][::-1]
        rep = [abs(a.ratio / b.ratio - 1) for a, b in zip(first, second)]
        ms = [t.arch.median_ms for t in first]
        out[target.spec] = {
            "runtime_version": version,
            "seconds_per_arch": per_arch,
            "median_ms": statistics.median(ms),
            "min_ms": min(ms),
            "max_ms": max(ms),
            "reference_ms": first[0].reference.median_ms,
            "repeatability_median": statistics.median(rep),
            "repeatability_max": max(rep),
            "ratios": [t.ratio for t in first],
        }
        print(
            f"{target.spec:28s} {statistics.median(ms):8.3f} ms (range {min(ms):.3f}-{max(ms):.3f}), "
            f"{per_arch:.2f} s/arch, repeat |dr| median {100 * statistics.median(rep):.2f} %",
            flush=True,
        )
    timed = [k for k, v in out.items() if "ratios" in v]
    out["kendall_tau"] = {
        f"{a} vs {b}": kendall(out[a]["ratios"], out[b]["ratios"]) for a, b in itertools.combinations(timed, 2)
    }
    return out


def fake_loader(n: int, batch: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(
        TensorDataset(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)),
        batch,
        shuffle=True,
    )


def time_search(space: SearchSpace, steps: int) -> dict:
    out = {}
    predictor = LatencyPredictor.for_space(space, (256, 256))
    for mode in ("darts", "pcdarts", "gdas"):
        settings = SearchSettings(mode=mode, **SEARCH)
        net = build_supernet(space, CIFAR_MACRO, settings)
        data = fake_loader(steps * settings.batch_size, settings.batch_size)
        search(net, predictor, data, data, settings, lam=0.1, device="cuda")  # warm-up (cuDNN autotune)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = search(net, predictor, data, data, settings, lam=0.1, device="cuda")
        torch.cuda.synchronize()
        out[mode] = {
            "seconds_per_step": (time.perf_counter() - t0) / steps,
            "batch": settings.batch_size,
            "finite": all(v == v for v in result.history[-1].values() if isinstance(v, float)),
            "genotype_valid": bool(result.genotype.arch_id),
        }
        print(
            f"search {mode:8s} {out[mode]['seconds_per_step'] * 1e3:8.1f} ms/step (batch {settings.batch_size})",
            flush=True,
        )
    return out


def time_train(steps: int) -> dict:
    net = Network(published("darts_v2"), CIFAR_MACRO)
    settings = TrainSettings(epochs=1, batch_size=96, drop_path=0.2)
    data = fake_loader(steps * settings.batch_size, settings.batch_size)
    train_network(net, data, settings, device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    metrics = train_network(net, data, settings, device="cuda")
    torch.cuda.synchronize()
    s = (time.perf_counter() - t0) / steps
    print(f"train darts_v2 (20 cells, C=36) {s * 1e3:.1f} ms/step (batch 96)", flush=True)
    return {"seconds_per_step": s, "batch": 96, "train_loss": metrics["train_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=20, help="random architectures besides the published ones")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--sections", default="search,train,targets", help="comma-separated: search, train, targets")
    ap.add_argument("--out", default="benchmarks/results/gpu_paths.json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_paths: no CUDA device visible")
    space = SearchSpace()
    genotypes = [published(n) for n in PUBLISHED] + space.sample_unique(args.archs, seed=0)
    figures = {
        "command": "python " + " ".join(sys.argv),
        "device": device_name(TARGETS[0]),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "archs": len(genotypes),
        "protocol": PROTOCOL.__dict__,
    }
    sections = {
        "search": lambda: time_search(space, args.steps),
        "train": lambda: time_train(args.steps),
        "targets": lambda: time_targets(genotypes, space),
    }
    for name in args.sections.split(","):
        figures[name] = sections[name]()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"recorded {args.out}")


if __name__ == "__main__":
    main()
