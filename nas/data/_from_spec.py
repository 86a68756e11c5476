"""Dataset loaders users pick by name (``dataset.name``), and ``load_dataset``: the one look-up
that turns a run spec's dataset entry into an in-memory :class:`ImageDataset`."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING

from nas.data._dataset import ImageDataset
from nas.data._fashion_mnist import load_fashion_mnist
from nas.data._folder import load_image_folder
from nas.paths import resolve
from nas.registry import DATASETS

if TYPE_CHECKING:
    from nas.spec import DatasetSpec

__all__ = ["DatasetLoader", "FashionMNISTLoader", "ImageFolderLoader", "load_dataset"]


class DatasetLoader(abc.ABC):
    """Loads the dataset a :class:`nas.spec.DatasetSpec` names; registered in
    ``nas.registry.DATASETS`` under that name.

    Contract:
    - ``load(spec, base)`` returns an :class:`ImageDataset` with non-empty ``train``, ``val`` and
      ``test`` splits: uint8 images ``(N, C, H, W)`` of one shape in every split, with ``C`` equal
      to ``preprocessing.channels``, and int64 labels in ``[0, n_classes)``.
    - The splits are a function of the spec alone: the same spec gives the same images in the
      same splits (every random choice is seeded with ``spec.split_seed``).
    - A relative ``spec.root`` resolves against ``base`` (the run spec's folder; None: the
      working directory), then against the shipped files (``nas.paths.resolve``).
    - A missing folder or file raises ``DatasetNotFoundError``, a malformed one ``DataError``;
      both name the path.
    - A loader holds no state: ``DATASETS.create(name)`` builds it with no arguments and it may
      be used from any thread.
    """

    @abc.abstractmethod
    def load(self, spec: DatasetSpec, base: Path | None = None) -> ImageDataset:
        """The dataset ``spec`` describes (see the class docstring for the contract)."""

    @staticmethod
    def root(spec: DatasetSpec, base: Path | None) -> Path | None:
        """``spec.root`` resolved against ``base``; None when the spec gives no root."""
        return None if spec.root is None else resolve(spec.root, base)


@DATASETS.register("fashion_mnist")
class FashionMNISTLoader(DatasetLoader):
    """Fashion-MNIST IDX files (default folder: Debian's ``/usr/share/datasets/fashion-mnist``);
    ``val_size`` training images are held out as val, the 10k test images are test."""

    def load(self, spec: DatasetSpec, base: Path | None = None) -> ImageDataset:
        return load_fashion_mnist(
            self.root(spec, base), val_size=spec.val_size, seed=spec.split_seed
        )


@DATASETS.register("image_folder")
class ImageFolderLoader(DatasetLoader):
    """``root/<class>/<image>`` (or ``root/train`` and ``root/test``), resized to
    ``image_size`` and converted to ``channels``; ``val_fraction`` of train is held out as val."""

    def load(self, spec: DatasetSpec, base: Path | None = None) -> ImageDataset:
        return load_image_folder(
            self.root(spec, base),
            size=spec.image_size,
            channels=spec.channels,
            val_fraction=spec.val_fraction,
            seed=spec.split_seed,
        )


def load_dataset(spec: DatasetSpec, base: Path | None = None) -> ImageDataset:
    """The dataset of ``spec`` (a :class:`nas.spec.DatasetSpec`), by the loader registered as
    ``spec.name``; a relative ``root`` resolves against ``base`` (the run spec's folder).

    Raises:
        RegistryError: no loader is registered as ``spec.name``.
        DatasetNotFoundError, DataError: see :class:`DatasetLoader`.
    """
    loader: DatasetLoader = DATASETS.create(spec.name)
    return loader.load(spec, base)
