from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from nas.data import DEFAULT_FASHION_MNIST_ROOT, batches, load_fashion_mnist, read_idx
from nas.errors import DataError, DatasetNotFoundError
from tests.conftest import make_images, write_idx


def test_idx_round_trip_plain_and_gzipped(tmp_path):
    x, _ = make_images(5, 0)
    for gz in (True, False):
        path = write_idx(tmp_path / f"a{gz}", x, gz=gz)
        np.testing.assert_array_equal(read_idx(path), x)


def test_truncated_idx_file_is_an_error_naming_the_file(tmp_path):
    x, _ = make_images(5, 0)
    path = write_idx(tmp_path / "imgs", x, gz=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="imgs.*truncated"):
        read_idx(path)


def test_corrupt_gzip_is_an_error_naming_the_file(tmp_path):
    x, _ = make_images(5, 0)
    path = write_idx(tmp_path / "imgs", x)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match="imgs"):
        read_idx(path)


def test_bad_magic_is_rejected(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x01\x02\x03\x04" + b"\x00" * 20)
    with pytest.raises(DataError, match="magic"):
        read_idx(path)


def test_missing_folder_names_the_debian_package(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_image_label_count_mismatch_names_both_files(tmp_path):
    for split, n in (("train", 50), ("t10k", 20)):
        x, y = make_images(n, 0)
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", x)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", y[: n - 1] if split == "train" else y)
    with pytest.raises(DataError, match="train-images.*50 images.*train-labels.*49 labels"):
        load_fashion_mnist(tmp_path, val_size=10)


def test_split_is_fixed_by_seed_and_disjoint(small_fmnist):
    a = load_fashion_mnist(small_fmnist, val_size=200, seed=3)
    b = load_fashion_mnist(small_fmnist, val_size=200, seed=3)
    c = load_fashion_mnist(small_fmnist, val_size=200, seed=4)
    assert (len(a.train), len(a.val), len(a.test)) == (1000, 200, 300)
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    # every training image lands in exactly one of train/val
    assert len(a.train) + len(a.val) == 1200


def test_batches_normalize_resize_and_augment(small_fmnist):
    data = load_fashion_mnist(small_fmnist, val_size=200)
    x, y = next(batches(data.val, 64, data.preprocessing, resolution=24))
    assert x.shape == (64, 1, 24, 24) and y.shape == (64,) and x.dtype == torch.float32
    g = torch.Generator().manual_seed(0)
    xa, _ = next(batches(data.val, 64, data.preprocessing, augment=True, generator=g))
    x0, _ = next(batches(data.val, 64, data.preprocessing))
    assert xa.shape == x0.shape and not torch.equal(xa, x0)


def test_real_fashion_mnist_loads_60k_10k():
    data = load_fashion_mnist()
    assert (len(data.train), len(data.val), len(data.test)) == (50_000, 10_000, 10_000)
    assert data.train.images.shape[1:] == (1, 28, 28)
    assert sorted(set(data.test.labels.tolist())) == list(range(10))
    with gzip.open(DEFAULT_FASHION_MNIST_ROOT / "t10k-labels-idx1-ubyte.gz") as f:
        assert f.read(4) == b"\x00\x00\x08\x01"
