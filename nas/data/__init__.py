"""Datasets: Fashion-MNIST (IDX files) and image folders, held in memory with fixed splits."""

from nas.data._dataset import ImageDataset, Preprocessing, Split, batches, resize
from nas.data._fashion_mnist import (
    DEFAULT_FASHION_MNIST_ROOT,
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
)
from nas.data._folder import load_image_folder
from nas.data._from_spec import (
    DatasetLoader,
    FashionMNISTLoader,
    ImageFolderLoader,
    load_dataset,
)
from nas.data._idx import read_idx

__all__ = [
    "DEFAULT_FASHION_MNIST_ROOT",
    "FASHION_MNIST_CLASSES",
    "DatasetLoader",
    "FashionMNISTLoader",
    "ImageDataset",
    "ImageFolderLoader",
    "Preprocessing",
    "Split",
    "batches",
    "load_dataset",
    "load_fashion_mnist",
    "load_image_folder",
    "read_idx",
    "resize",
]
