"""Build the dataset a run spec names."""

from __future__ import annotations

from nas.data._dataset import ImageDataset
from nas.data._fashion_mnist import load_fashion_mnist
from nas.data._folder import load_image_folder

__all__ = ["load_dataset"]


def load_dataset(spec, base=None) -> ImageDataset:
    """``spec`` is a :class:`nas.spec.DatasetSpec`; a relative ``root`` resolves against
    ``base`` (the run spec's folder; default the working directory)."""
    from nas.paths import resolve

    root = None if spec.root is None else resolve(spec.root, base)
    if spec.name == "fashion_mnist":
        return load_fashion_mnist(root, val_size=spec.val_size, seed=spec.split_seed)
    return load_image_folder(
        root,
        size=spec.image_size,
        channels=spec.channels,
        val_fraction=spec.val_fraction,
        seed=spec.split_seed,
    )
