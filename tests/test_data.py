from dataclasses import replace

import pytest
import torch
from conftest import write_cifar10

from lanas.data import DataSettings, load_splits


def _stack(ds, k=0):
    return torch.stack([torch.as_tensor(ds[i][k]) for i in range(len(ds))])


def test_digits_splits_are_seeded_disjoint_and_normalised():
    a, b = load_splits(DataSettings()), load_splits(DataSettings())
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert (_stack(a.train) == _stack(b.train)).all()
    c = load_splits(DataSettings(seed=1))
    assert not (_stack(a.test, 1) == _stack(c.test, 1)).all()
    assert set(a.train.indices).isdisjoint(a.val.indices) and set(a.train.indices).isdisjoint(a.test.indices)
    x, y = a.train[0]
    assert x.shape == (1, 8, 8) and 0 <= int(y) < 10
    assert abs(float(_stack(a.train).mean())) < 1e-4


def test_final_training_set_holds_train_and_val_and_leaves_val_empty():
    s = DataSettings()
    plain, full = load_splits(s), load_splits(s, with_val=True)
    assert len(full.train) == len(plain.train) + len(plain.val) and len(full.val) == 0
    assert (_stack(full.test) == _stack(plain.test)).all()
    with pytest.raises(ValueError, match="augment .* cifar10 only"):
        DataSettings(augment=True)


def test_cifar10_training_transforms_touch_the_train_split_only(tmp_path):
    root = write_cifar10(tmp_path)
    s = DataSettings(dataset="cifar10", root=str(root), verify_checksums=False, val_fraction=0.2)
    plain = load_splits(s)
    torch.manual_seed(0)
    aug = load_splits(replace(s, augment=True), cutout=16)
    # val and test: exactly the plain normalised images, every time they are read
    for split in ("val", "test"):
        assert (_stack(getattr(aug, split)) == _stack(getattr(plain, split))).all()
        assert (_stack(getattr(aug, split)) == _stack(getattr(aug, split))).all()
    # train: crop, flip and cutout change the images and differ from read to read
    first, second, reference = _stack(aug.train), _stack(aug.train), _stack(plain.train)
    assert not (first == reference).all() and not (first == second).all()
    assert (_stack(aug.train, 1) == _stack(plain.train, 1)).all()  # same images, same labels
    # cutout: a 16x16 square (clipped at the border) of every training image is zero
    zero_pixels = (first == 0).all(dim=1).flatten(1).sum(1)
    assert (zero_pixels >= 8 * 8).all() and (zero_pixels <= 16 * 16 + 4 * 32).all()
    assert ((reference == 0).all(dim=1).flatten(1).sum(1) == 0).all()  # the plain images had none


def test_cutout_zeroes_one_square():
    from lanas.data import Cutout

    torch.manual_seed(0)
    out = Cutout(4)(torch.ones(3, 32, 32))
    zero = (out == 0).all(0)
    rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
    assert zero.sum() == len(rows) * len(cols) and 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4


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


def test_pixel_noise_is_a_fixed_draw_per_image_and_for_digits_only():
    clean, a, b = (load_splits(DataSettings(noise=n)).test[0][0] for n in (0.0, 1.0, 1.0))
    assert torch.equal(a, b) and not torch.equal(a, clean)  # the same dataset every time: not an augmentation
    assert 0.5 < float((a - clean).std()) < 1.5
    with pytest.raises(ValueError, match="noise must be >= 0 and is for digits only"):
        DataSettings(dataset="cifar10", root="x", noise=0.5)


def test_animal_mnist_ships_with_its_licence_and_checksum():
    import hashlib
    from importlib import resources

    folder = resources.files("lanas.datasets").joinpath("animal-mnist")
    assert "MIT License" in folder.joinpath("LICENSE").read_text()
    digest = hashlib.sha256(folder.joinpath("animal_mnist.npz").read_bytes()).hexdigest()
    assert digest == "c582d0c3c518d14a58601cce93eeb73011e98c2ec03f6384db6d08eeb7139ab4"


def test_animal_mnist_split_is_stratified_seeded_and_sized():
    import numpy as np

    from lanas.data import animal_mnist_arrays

    _, labels = animal_mnist_arrays()
    s = DataSettings(dataset="animal-mnist", test_fraction=0.2, val_fraction=0.25, image_size=14)
    a, b = load_splits(s), load_splits(s)
    assert (len(a.train), len(a.val), len(a.test)) == (6000, 2000, 2000)
    for split in (a.train, a.val, a.test):  # every class in its share, exactly
        counts = np.bincount(labels[split.indices], minlength=10)
        assert np.all(counts == len(split) // 10), counts
    assert a.train.indices == b.train.indices and a.test.indices == b.test.indices
    assert set(a.train.indices).isdisjoint(a.val.indices) and set(a.train.indices).isdisjoint(a.test.indices)
    assert set(a.val.indices).isdisjoint(a.test.indices)
    c = load_splits(replace(s, seed=1))
    assert c.test.indices != a.test.indices
    x, y = a.train[0]
    assert x.shape == (1, 14, 14) and s.resolution == 14 and s.in_channels == 1
    assert load_splits(replace(s, image_size=0)).train[0][0].shape == (1, 28, 28)


def test_animal_mnist_limit_keeps_classes_balanced():
    import numpy as np

    from lanas.data import animal_mnist_arrays

    _, labels = animal_mnist_arrays()
    small = load_splits(DataSettings(dataset="animal-mnist", limit=1003))
    counts = np.bincount(labels[small.train.indices], minlength=10)
    assert len(small.train) == 1003 and counts.max() - counts.min() <= 1


@pytest.mark.parametrize(
    "fields, message",
    [({"dataset": "digits", "image_size": 4}, "image_size is for animal-mnist"),
     ({"dataset": "animal-mnist", "image_size": 10}, "must divide 28")],
)  # fmt: skip
def test_image_size_is_checked(fields, message):
    with pytest.raises(ValueError, match=message):
        DataSettings(**fields)
