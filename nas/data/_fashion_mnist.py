"""Fashion-MNIST from its IDX files (default: Debian's package ``dataset-fashion-mnist``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.data._dataset import ImageDataset, Preprocessing, split_train_val
from nas.data._idx import read_idx
from nas.errors import DataError, DatasetNotFoundError

__all__ = ["DEFAULT_FASHION_MNIST_ROOT", "FASHION_MNIST_CLASSES", "load_fashion_mnist"]

DEFAULT_FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Mean and std of the 60k training pixels scaled to [0, 1].
_MEAN, _STD = 0.2860, 0.3530
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise DatasetNotFoundError(f"Fashion-MNIST file {stem}[.gz] not found in {root}")


def _load_pair(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = (_find(root, stem) for stem in _FILES[split])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, H, W), got {images.shape}"
        )
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-d label vector, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if labels.max(initial=0) >= len(FASHION_MNIST_CLASSES):
        raise DataError(f"{labels_path}: label {labels.max()} outside 0..9")
    return images[:, None, :, :], labels


def load_fashion_mnist(
    root: str | Path | None = None, *, val_size: int = 10_000, seed: int = 0
) -> ImageDataset:
    """Load Fashion-MNIST: 60k training images split into train / val (seeded), 10k test.

    Raises:
        DatasetNotFoundError: the folder or a file is missing (says which package provides it).
        DataError: a file is truncated or corrupt, or image and label counts differ.
    """
    root = Path(root) if root is not None else DEFAULT_FASHION_MNIST_ROOT
    if not root.is_dir():
        hint = (
            " Install it with `apt-get install dataset-fashion-mnist` (Debian package), or point "
            "`dataset.root` / --data-root at a folder holding the four IDX files."
        )
        raise DatasetNotFoundError(f"Fashion-MNIST folder not found: {root}.{hint}")
    train_x, train_y = _load_pair(root, "train")
    test_x, test_y = _load_pair(root, "test")
    train, val = split_train_val(train_x, train_y, val_size, seed)
    import torch

    test = type(train)(torch.from_numpy(test_x), torch.from_numpy(test_y.astype(np.int64)))
    h, w = train_x.shape[-2:]
    return ImageDataset(
        name="fashion_mnist",
        train=train,
        val=val,
        test=test,
        class_names=FASHION_MNIST_CLASSES,
        preprocessing=Preprocessing(height=h, width=w, channels=1, mean=(_MEAN,), std=(_STD,)),
    )
