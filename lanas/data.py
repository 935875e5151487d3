"""Datasets: Animal-MNIST (shipped with the package, the embedded default), scikit-learn's
bundled digits (the smoke tests) and CIFAR-10.

Each gives seeded train / val / test splits as torch datasets. The validation split is
what the search updates alpha on; the test split is only used for final evaluation.
Nothing is downloaded: CIFAR-10 must already be on disk in its own format. Animal-MNIST
(10,000 28x28 grayscale silhouettes of 10 animals, 1,000 each, MIT licence; see
``lanas/datasets/animal-mnist/``) has no official split: its train / val / test split is
stratified by class and seeded, and ``image_size`` may downsample it (area averaging).

Training transforms (the train split only; val and test are never augmented):
``DataSettings.augment`` -- DARTS' random crop (4-pixel padding) and horizontal flip, for
CIFAR-10; ``load_splits(..., cutout=16)`` -- DARTS' cutout in final training; and
``load_splits(..., with_val=True)`` -- the final training set of the DARTS protocol,
train and validation together (then the returned val split is empty).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

DATASETS = ("digits", "cifar10", "animal-mnist")
NOISE_SEED = 4_242  # the pixel noise of digits is drawn with data.seed + this
ANIMAL_SIDE = 28
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class DataSettings:
    dataset: str = "digits"  # "digits" (bundled with scikit-learn), "animal-mnist" (shipped here) or "cifar10"
    root: str = ""  # cifar10: folder that holds cifar-10-batches-py/
    verify_checksums: bool = True  # cifar10: check torchvision's md5 sums of the files
    val_fraction: float = 0.25  # share of the training images held out as validation
    test_fraction: float = 0.2  # digits, animal-mnist: share held out as test (cifar10 has its own)
    limit: int = 0  # keep at most this many training images (0 = all; animal-mnist keeps classes balanced)
    image_size: int = 0  # animal-mnist: side in pixels, 28 or a divisor of it (14, 7); 0 = 28
    seed: int = 0  # seed of the splits
    augment: bool = False  # cifar10: random crop (4-px padding) + horizontal flip on the train split (DARTS)
    noise: float = 0.0  # digits: std of fixed Gaussian pixel noise added to every image (a harder task)

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
        if self.augment and self.dataset != "cifar10":
            raise ValueError("augment (crop and flip) is for cifar10 only: digits are not flip-invariant")
        if self.noise < 0 or (self.noise and self.dataset != "digits"):
            raise ValueError(f"noise must be >= 0 and is for digits only, got {self.noise}")
        if self.image_size and (self.dataset != "animal-mnist" or self.image_size < 1 or 28 % self.image_size):
            raise ValueError(
                f"image_size is for animal-mnist only and must divide 28 (28, 14, 7), got {self.image_size}"
            )

    @property
    def in_channels(self) -> int:
        return 3 if self.dataset == "cifar10" else 1

    @property
    def resolution(self) -> int:
        if self.dataset == "animal-mnist":
            return self.image_size or ANIMAL_SIDE
        return 8 if self.dataset == "digits" else 32

    num_classes = 10


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset


class Cutout:
    """DARTS' cutout: zero one ``length`` x ``length`` square (clipped at the border) at a
    random centre of a normalised image tensor ``[C, H, W]``."""

    def __init__(self, length: int):
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        cy, cx = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
        half = self.length // 2
        out = img.clone()
        out[..., max(0, cy - half) : min(h, cy + half), max(0, cx - half) : min(w, cx + half)] = 0.0
        return out


class Transformed(Dataset):
    """``dataset`` with ``fn`` applied to each image."""

    def __init__(self, dataset: Dataset, fn):
        self.dataset, self.fn = dataset, fn

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i):
        x, y = self.dataset[i]
        return self.fn(x), y


def _permutation(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def _digits(s: DataSettings) -> tuple[Dataset, Dataset, Dataset, list[int], list[int]]:
    """(train images, the same without training transforms, test, train indices, val indices)."""
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
    if s.noise:  # one fixed draw per image (a dataset, not an augmentation), from the split seed
        x = x + s.noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(s.seed + NOISE_SEED))
    full = TensorDataset(x, y)
    return full, full, Subset(full, test_idx.tolist()), train_idx.tolist(), val_idx.tolist()


def stratified_split(labels: np.ndarray, s: DataSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices: per class, a seeded permutation cut at ``test_fraction``
    then ``val_fraction`` of the rest; ``limit`` keeps the first training images of each
    class in turn, so every split holds the classes in the data's proportions."""
    rng = np.random.default_rng(s.seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * s.test_fraction))
        n_val = int(round((len(idx) - n_test) * s.val_fraction))
        for part, chunk in zip(parts, (idx[n_test + n_val :], idx[n_test : n_test + n_val], idx[:n_test])):
            part.append(chunk)
    train = _interleave(parts[0])
    if s.limit:
        train = train[: s.limit]
    return train, np.sort(np.concatenate(parts[1])), np.sort(np.concatenate(parts[2]))


def _interleave(per_class: list[np.ndarray]) -> np.ndarray:
    """Round-robin over the classes: any prefix is as balanced as it can be."""
    out = [chunk[i] for i in range(max(map(len, per_class))) for chunk in per_class if i < len(chunk)]
    return np.asarray(out, dtype=np.int64)


def animal_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The shipped images (uint8 [10000, 28, 28]) and labels (uint8 [10000]), read with numpy
    alone (no pickle)."""
    from importlib import resources

    with resources.as_file(resources.files("lanas.datasets").joinpath("animal-mnist", "animal_mnist.npz")) as path:
        with np.load(path, allow_pickle=False) as z:
            return z["images"], z["labels"]


def _animal_mnist(s: DataSettings) -> tuple[Dataset, Dataset, Dataset, list[int], list[int]]:
    images, labels = animal_mnist_arrays()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0
    side = s.image_size or ANIMAL_SIDE
    if side != ANIMAL_SIDE:
        x = torch.nn.functional.avg_pool2d(x, ANIMAL_SIDE // side)
    train_idx, val_idx, test_idx = stratified_split(labels, s)
    mean, std = x[train_idx].mean(), x[train_idx].std()
    full = TensorDataset((x - mean) / std, torch.tensor(labels, dtype=torch.long))
    return full, full, Subset(full, test_idx.tolist()), train_idx.tolist(), val_idx.tolist()


def _cifar10(s: DataSettings) -> tuple[Dataset, Dataset, Dataset, list[int], list[int]]:
    from torchvision import datasets, transforms

    cls = datasets.CIFAR10
    if not s.verify_checksums:
        # same loader, but accept files whose md5 differs from the official archive
        # (small files written in CIFAR-10's own format, e.g. in tests)
        cls = type(
            "UncheckedCIFAR10",
            (datasets.CIFAR10,),
            {
                "train_list": [[name, None] for name, _ in datasets.CIFAR10.train_list],
                "test_list": [[name, None] for name, _ in datasets.CIFAR10.test_list],
                "meta": {**datasets.CIFAR10.meta, "md5": None},
            },
        )
    if not os.path.isdir(os.path.join(s.root, cls.base_folder)):
        raise FileNotFoundError(
            f"CIFAR-10 not found: {os.path.join(s.root, cls.base_folder)} does not exist (nothing is downloaded)"
        )
    plain = [transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]
    augment = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if s.augment else []
    train_full = cls(s.root, train=True, transform=transforms.Compose(augment + plain), download=False)
    eval_full = cls(s.root, train=True, transform=transforms.Compose(plain), download=False) if augment else train_full
    test = cls(s.root, train=False, transform=transforms.Compose(plain), download=False)
    perm = _permutation(len(train_full), s.seed)
    n_val = int(round(len(perm) * s.val_fraction))
    train_idx = perm[n_val:]
    if s.limit:
        train_idx = train_idx[: s.limit]
    return train_full, eval_full, test, train_idx.tolist(), perm[:n_val].tolist()


def load_splits(settings: DataSettings, cutout: int = 0, with_val: bool = False) -> Splits:
    """The seeded splits; ``cutout`` > 0 adds cutout of that length to the train split;
    ``with_val`` trains on train + val (DARTS' final training) and leaves val empty."""
    if cutout < 0:
        raise ValueError(f"cutout must be >= 0, got {cutout}")
    read = {"digits": _digits, "cifar10": _cifar10, "animal-mnist": _animal_mnist}[settings.dataset]
    train_full, eval_full, test, train_idx, val_idx = read(settings)
    train: Dataset = Subset(train_full, train_idx + val_idx if with_val else train_idx)
    if cutout:
        train = Transformed(train, Cutout(cutout))
    return Splits(train, Subset(eval_full, [] if with_val else val_idx), test)


def loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=False)
