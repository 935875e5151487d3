"""Datasets: Animal-MNIST (shipped with the package, the embedded default), scikit-learn's
bundled digits (the smoke tests), CIFAR-10, and the user's own images: ``npz`` (arrays
``images`` and ``labels`` in one ``.npz`` file) and ``folder`` (an ImageFolder tree, one
sub-folder per class). For the last two, resolution, channels and classes are read from
the data; they are split like Animal-MNIST (stratified, seeded).

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

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

DATASETS = ("digits", "cifar10", "animal-mnist", "npz", "folder")
OWN = ("npz", "folder")  # the user's own images: shape and classes read from the data
NOISE_SEED = 4_242  # the pixel noise of digits is drawn with data.seed + this
ANIMAL_SIDE = 28
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class DataSettings:
    dataset: str = "digits"  # "digits" (scikit-learn's), "animal-mnist" (shipped here), "cifar10", "npz" or "folder"
    root: str = ""  # cifar10: folder that holds cifar-10-batches-py/; npz: the .npz file; folder: the tree's root
    verify_checksums: bool = True  # cifar10: check torchvision's md5 sums of the files
    val_fraction: float = 0.25  # share of the training images held out as validation
    test_fraction: float = 0.2  # digits, animal-mnist: share held out as test (cifar10 has its own)
    limit: int = 0  # keep at most this many training images (0 = all; animal-mnist keeps classes balanced)
    image_size: int = 0  # animal-mnist: side, 28 or a divisor (14, 7); npz, folder: resized to this; 0 = as stored
    seed: int = 0  # seed of the splits
    augment: bool = False  # cifar10: random crop (4-px padding) + horizontal flip on the train split (DARTS)
    noise: float = 0.0  # digits: std of fixed Gaussian pixel noise added to every image (a harder task)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.dataset == "cifar10" and not self.root:
            raise ValueError("data.root must name the CIFAR-10 folder for dataset 'cifar10'")
        if self.dataset in OWN:
            own_shape(self.dataset, self.root, self.image_size)  # refuses a missing or unreadable dataset now
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.augment and self.dataset != "cifar10":
            raise ValueError("augment (crop and flip) is for cifar10 only: digits are not flip-invariant")
        if self.noise < 0 or (self.noise and self.dataset != "digits"):
            raise ValueError(f"noise must be >= 0 and is for digits only, got {self.noise}")
        if self.image_size < 0 or (self.image_size and self.dataset not in ("animal-mnist", *OWN)):
            raise ValueError(f"image_size is for animal-mnist, npz and folder only, got {self.image_size}")
        if self.image_size and self.dataset == "animal-mnist" and ANIMAL_SIDE % self.image_size:
            raise ValueError(f"image_size must divide 28 for animal-mnist (28, 14, 7), got {self.image_size}")

    @property
    def in_channels(self) -> int:
        if self.dataset in OWN:
            return own_shape(self.dataset, self.root, self.image_size)[0]
        return 3 if self.dataset == "cifar10" else 1

    @property
    def resolution(self) -> int:
        if self.dataset in OWN:
            return own_shape(self.dataset, self.root, self.image_size)[1]
        if self.dataset == "animal-mnist":
            return self.image_size or ANIMAL_SIDE
        return 8 if self.dataset == "digits" else 32

    @property
    def num_classes(self) -> int:
        return own_shape(self.dataset, self.root, self.image_size)[2] if self.dataset in OWN else 10


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


def _npz_arrays(root: str) -> tuple[np.ndarray, np.ndarray]:
    """``images`` ([N, H, W] grayscale or [N, H, W, C] channels-last, any numeric type) and
    ``labels`` (integers 0..K-1) of a .npz file, read without pickle."""
    path = Path(root)
    if not path.is_file():
        raise ValueError(f"data.root {root!r} is not a .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z or "labels" not in z:
                raise ValueError(f"{root} must hold arrays 'images' and 'labels', it has {sorted(z.files)}")
            images, labels = z["images"], z["labels"]
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"cannot read {root} as a .npz of images and labels: {exc}") from None
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] not in (1, 3):
        raise ValueError(f"{root}: images must be [N, H, H] or [N, H, H, 1 or 3], got {list(images.shape)}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
        raise ValueError(
            f"{root}: labels must be {len(images)} integers 0..K-1, got {labels.dtype} {list(labels.shape)}"
        )
    return images, labels.astype(np.int64)


def _folder_arrays(root: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """An ImageFolder tree (one sub-folder per class) as arrays: every image converted to
    the first image's mode (grayscale stays grayscale, anything else RGB) and resized to
    ``image_size`` (0: the first image's height) square."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    if not Path(root).is_dir():
        raise ValueError(f"data.root {root!r} is not a folder of class folders")
    try:
        tree = ImageFolder(root)
    except (FileNotFoundError, OSError) as exc:
        raise ValueError(f"cannot read {root} as an image folder: {exc}") from None
    with Image.open(tree.samples[0][0]) as first:
        mode, side = ("L" if first.mode in ("L", "1", "I;16") else "RGB"), image_size or first.height
    images = []
    for path, _ in tree.samples:
        with Image.open(path) as img:
            images.append(np.asarray(img.convert(mode).resize((side, side), Image.BILINEAR)))
    labels = np.array([label for _, label in tree.samples], dtype=np.int64)
    return np.stack(images).reshape(len(images), side, side, -1), labels


@functools.lru_cache(maxsize=8)
def _own_arrays(dataset: str, root: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "folder":
        return _folder_arrays(root, image_size)
    images, labels = _npz_arrays(root)
    if image_size and image_size != images.shape[1]:
        x = torch.nn.functional.interpolate(torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2),
                                            size=(image_size, image_size), mode="area")  # fmt: skip
        images = x.permute(0, 2, 3, 1).numpy()
    return images, labels


def own_shape(dataset: str, root: str, image_size: int) -> tuple[int, int, int]:
    """(channels, side, classes) of the user's own dataset, as loaded."""
    images, labels = _own_arrays(dataset, root, image_size)
    return int(images.shape[3]), int(images.shape[1]), int(labels.max()) + 1


def _own(s: DataSettings) -> tuple[Dataset, Dataset, Dataset, list[int], list[int]]:
    images, labels = _own_arrays(s.dataset, s.root, s.image_size)
    x = torch.tensor(images, dtype=torch.float32).permute(0, 3, 1, 2)
    train_idx, val_idx, test_idx = stratified_split(labels, s)
    mean = x[train_idx].mean(dim=(0, 2, 3), keepdim=True)
    std = x[train_idx].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
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
    readers = {"digits": _digits, "cifar10": _cifar10, "animal-mnist": _animal_mnist, "npz": _own, "folder": _own}
    train_full, eval_full, test, train_idx, val_idx = readers[settings.dataset](settings)
    train: Dataset = Subset(train_full, train_idx + val_idx if with_val else train_idx)
    if cutout:
        train = Transformed(train, Cutout(cutout))
    return Splits(train, Subset(eval_full, [] if with_val else val_idx), test)


def loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, drop_last=False)
