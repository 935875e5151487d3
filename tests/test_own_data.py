"""The user's own images: ``data.dataset: npz`` (arrays in one file) and ``folder`` (an
ImageFolder tree), with resolution, channels and classes read from the data."""

import json

import numpy as np
import pytest
import torch
from conftest import copy_fitted, smoke_config
from PIL import Image

from lanas.data import DataSettings, load_splits
from lanas.genotype import published
from lanas.network import MacroSettings, Network


def write_npz(path, n_per_class=20, classes=3, side=12, channels=0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    shape = (len(labels), side, side) + ((channels,) if channels else ())
    images = (rng.integers(0, 256, shape) // (labels.reshape(-1, *[1] * (len(shape) - 1)) + 1)).astype(np.uint8)
    np.savez(path, images=images, labels=labels)
    return path


def write_folder(root, n_per_class=10, classes=("cat", "dog", "fox"), side=10, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            shape = (side, side, 3) if mode == "RGB" else (side, side)
            pixels = (rng.integers(0, 256, shape) // (k + 1)).astype(np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{i}.png")
    return root


def test_npz_images_are_split_stratified_with_shape_and_classes_from_the_data(tmp_path):
    s = DataSettings(dataset="npz", root=str(write_npz(tmp_path / "mine.npz")))
    assert (s.in_channels, s.resolution, s.num_classes) == (1, 12, 3)
    splits = load_splits(s)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 60
    labels = [int(splits.test[i][1]) for i in range(len(splits.test))]
    assert np.bincount(labels).tolist() == [4, 4, 4]  # 20 % of each class
    x, _ = splits.train[0]
    assert x.shape == (1, 12, 12) and x.dtype == torch.float32
    rgb = DataSettings(dataset="npz", root=str(write_npz(tmp_path / "rgb.npz", channels=3)), image_size=6)
    assert (rgb.in_channels, rgb.resolution) == (3, 6) and load_splits(rgb).train[0][0].shape == (3, 6, 6)
    net = Network(published("darts_v2"), MacroSettings(3, 8, 3, rgb.in_channels, rgb.num_classes))
    assert net(torch.stack([load_splits(rgb).train[i][0] for i in range(2)])).shape == (2, 3)


def test_an_image_folder_is_read_with_its_mode_size_and_classes(tmp_path):
    s = DataSettings(dataset="folder", root=str(write_folder(tmp_path / "rgb")))
    assert (s.in_channels, s.resolution, s.num_classes) == (3, 10, 3)
    splits = load_splits(s)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 30 and splits.train[0][0].shape == (3, 10, 10)
    gray = DataSettings(dataset="folder", root=str(write_folder(tmp_path / "gray", mode="L")), image_size=8)
    assert (gray.in_channels, gray.resolution) == (1, 8) and load_splits(gray).val[0][0].shape == (1, 8, 8)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: t / "none.npz", "is not a .npz file"),
        (lambda t: np.savez(t / "k.npz", pictures=np.zeros((4, 8, 8)), labels=np.zeros(4, int)) or t / "k.npz",
         "must hold arrays 'images' and 'labels'"),
        (lambda t: np.savez(t / "l.npz", images=np.zeros((4, 8, 8)), labels=np.array([0.5] * 4)) or t / "l.npz",
         "labels must be 4 integers"),
        (lambda t: np.savez(t / "s.npz", images=np.zeros((4, 8, 6)), labels=np.zeros(4, int)) or t / "s.npz",
         "images must be"),
        (lambda t: (t / "x.npz").write_text("not a zip") and t / "x.npz", "cannot read"),
    ],
)  # fmt: skip
def test_a_bad_npz_is_refused_in_one_line_when_the_config_is_read(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        DataSettings(dataset="npz", root=str(make(tmp_path)))
    with pytest.raises(ValueError, match="is not a folder of class folders"):
        DataSettings(dataset="folder", root=str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_search_and_evaluate_on_your_own_image_folder(fitted, tmp_path):
    """The fitted smoke run's network takes 8x8 grayscale images and 10 classes: a folder of
    such images searches and evaluates on it with the same predictors."""
    from lanas_pipeline.evaluate import run_evaluate
    from lanas_pipeline.search.stage import run_search

    classes = tuple(f"c{k}" for k in range(10))
    root = write_folder(tmp_path / "images", n_per_class=12, classes=classes, side=8, mode="L")
    cfg = smoke_config(**{"data.dataset": "folder", "data.root": str(root)})
    assert (cfg.data.in_channels, cfg.data.resolution, cfg.data.num_classes) == (1, 8, 10)
    run = copy_fitted(fitted[0], tmp_path / "run", cfg)
    rows = run_search(run, progress=False)
    assert {r["lam"] for r in rows} == {0.0, 2.0}
    run_evaluate(run, progress=False)
    evaluated = [json.loads(x) for x in (run.path / "evaluate" / "results.jsonl").read_text().splitlines()]
    assert evaluated and all(0.0 <= r["test_acc"] <= 1.0 for r in evaluated)
