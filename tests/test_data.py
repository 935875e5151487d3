import pytest

from conftest import write_cifar10
from lanas.data import DataSettings, load_splits


def test_digits_splits_are_seeded_disjoint_and_normalised():
    a, b = load_splits(DataSettings()), load_splits(DataSettings())
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert (a.train.tensors[0] == b.train.tensors[0]).all()
    c = load_splits(DataSettings(seed=1))
    assert not (a.test.tensors[1] == c.test.tensors[1]).all()
    x, y = a.train[0]
    assert x.shape == (1, 8, 8) and 0 <= int(y) < 10
    assert abs(float(a.train.tensors[0].mean())) < 1e-4


def test_cifar10_through_the_torchvision_loader(tmp_path):
    root = write_cifar10(tmp_path)
    s = DataSettings(dataset="cifar10", root=str(root), verify_checksums=False, val_fraction=0.2)
    splits = load_splits(s)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80, 20, 20)
    x, y = splits.train[0]
    assert x.shape == (3, 32, 32) and 0 <= y < 10
    # the official checksums are enforced by default: these small files fail them
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        load_splits(DataSettings(dataset="cifar10", root=str(root)))


def test_cifar10_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_splits(DataSettings(dataset="cifar10", root=str(tmp_path)))
