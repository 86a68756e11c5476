"""Contract suite run over every dataset loader registered in nas.registry.DATASETS: train, val
and test splits of one image shape with labels in range, the same splits for the same spec, a
relative root resolved against the spec's folder, and a missing root named in the error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data import DatasetLoader, load_dataset
from nas.errors import DatasetNotFoundError
from nas.registry import DATASETS
from nas.spec import DatasetSpec


def _fashion_mnist(fmnist: Path, tmp: Path) -> DatasetSpec:
    return DatasetSpec(name="fashion_mnist", root=str(fmnist), val_size=200, split_seed=1)


def _image_folder(fmnist: Path, tmp: Path) -> DatasetSpec:
    root = tmp / "images"
    rng = np.random.default_rng(0)
    for c in ("cat", "dog", "owl"):
        (root / c).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return DatasetSpec(name="image_folder", root=str(root), image_size=16, channels=3)


# one spec per registered loader: registering a new one without a spec here fails the suite
SPECS = {"fashion_mnist": _fashion_mnist, "image_folder": _image_folder}


def test_every_registered_dataset_has_a_spec_in_this_suite():
    assert set(DATASETS.names()) <= set(SPECS), set(DATASETS.names()) - set(SPECS)


@pytest.fixture(params=DATASETS.names())
def spec(request, small_fmnist, tmp_path) -> DatasetSpec:
    return SPECS[request.param](small_fmnist, tmp_path)


def test_loader_gives_three_splits_of_one_shape_with_labels_in_range(spec):
    assert isinstance(DATASETS.create(spec.name), DatasetLoader)
    data = load_dataset(spec)
    shape = data.train.images.shape[1:]
    assert len(shape) == 3 and shape[0] == data.in_channels == spec.channels
    for split in (data.train, data.val, data.test):
        assert len(split) > 0 and split.images.shape[1:] == shape
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert 0 <= int(split.labels.min()) and int(split.labels.max()) < data.n_classes


def test_loader_gives_the_same_splits_for_the_same_spec(spec):
    a, b = load_dataset(spec), load_dataset(spec)
    for name in ("train", "val", "test"):
        assert torch.equal(a.split(name).images, b.split(name).images)
        assert torch.equal(a.split(name).labels, b.split(name).labels)


def test_relative_root_resolves_against_the_spec_folder(spec, tmp_path, monkeypatch):
    root = Path(spec.root)
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    relative = dataclasses.replace(spec, root=root.name)
    assert len(load_dataset(relative, base=root.parent).train) == len(load_dataset(spec).train)


def test_missing_root_is_an_error_naming_it(spec, tmp_path):
    missing = dataclasses.replace(spec, root=str(tmp_path / "no_such_folder"))
    with pytest.raises(DatasetNotFoundError, match="no_such_folder"):
        load_dataset(missing)
