"""Datasets: scikit-learn's bundled digits (the embedded default) and CIFAR-10.

Both give seeded train / val / test splits as torch datasets. The validation split is
what the search updates alpha on; the test split is only used for final evaluation.
Nothing is downloaded: CIFAR-10 must already be on disk in its own format.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

DATASETS = ("digits", "cifar10")
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class DataSettings:
    dataset: str = "digits"  # "digits" (bundled with scikit-learn) or "cifar10"
    root: str = ""  # cifar10: folder that holds cifar-10-batches-py/
    verify_checksums: bool = True  # cifar10: check torchvision's md5 sums of the files
    val_fraction: float = 0.25  # share of the training images held out as validation
    test_fraction: float = 0.2  # digits: share held out as test (cifar10 has its own)
    limit: int = 0  # keep at most this many training images (0 = all), for quick runs
    seed: int = 0  # seed of the splits

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.dataset == "cifar10" and not self.root:
            raise ValueError("data.root must name the CIFAR-10 folder for dataset 'cifar10'")
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")

    @property
    def in_channels(self) -> int:
        return 1 if self.dataset == "digits" else 3

    @property
    def resolution(self) -> int:
        return 8 if self.dataset == "digits" else 32

    num_classes = 10


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset


def _permutation(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def _digits(s: DataSettings) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    perm = torch.as_tensor(_permutation(len(x), s.seed))
    n_test = int(round(len(x) * s.test_fraction))
    test_idx, rest = perm[:n_test], perm[n_test:]
    n_val = int(round(len(rest) * s.val_fraction))
    val_idx, train_idx = rest[:n_val], rest[n_val:]
    if s.limit:
        train_idx = train_idx[: s.limit]
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    return Splits(*(TensorDataset(x[i], y[i]) for i in (train_idx, val_idx, test_idx)))


def _cifar10(s: DataSettings) -> Splits:
    from torchvision import datasets, transforms

    cls = datasets.CIFAR10
    if not s.verify_checksums:
        # same loader, but accept files whose md5 differs from the official archive
        # (small files written in CIFAR-10's own format, e.g. in tests)
        cls = type("UncheckedCIFAR10", (datasets.CIFAR10,), {
            "train_list": [[name, None] for name, _ in datasets.CIFAR10.train_list],
            "test_list": [[name, None] for name, _ in datasets.CIFAR10.test_list],
            "meta": {**datasets.CIFAR10.meta, "md5": None},
        })
    if not os.path.isdir(os.path.join(s.root, cls.base_folder)):
        raise FileNotFoundError(f"CIFAR-10 not found: {os.path.join(s.root, cls.base_folder)} does not exist (nothing is downloaded)")
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])
    train_full = cls(s.root, train=True, transform=tf, download=False)
    test = cls(s.root, train=False, transform=tf, download=False)
    perm = _permutation(len(train_full), s.seed)
    n_val = int(round(len(perm) * s.val_fraction))
    train_idx = perm[n_val:]
    if s.limit:
        train_idx = train_idx[: s.limit]
    return Splits(Subset(train_full, train_idx.tolist()), Subset(train_full, perm[:n_val].tolist()), test)


def load_splits(settings: DataSettings) -> Splits:
    return _digits(settings) if settings.dataset == "digits" else _cifar10(settings)


def loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=False)
