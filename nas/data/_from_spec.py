"""Build the dataset a run spec names."""

from __future__ import annotations

from nas.data._dataset import ImageDataset
from nas.data._fashion_mnist import load_fashion_mnist
from nas.data._folder import load_image_folder

__all__ = ["load_dataset"]


def load_dataset(spec) -> ImageDataset:
    """``spec`` is a :class:`nas.spec.DatasetSpec`."""
    from pathlib import Path

    from nas.spec import project_root

    root = None
    if spec.root is not None:
        root = Path(spec.root).expanduser()
        root = root if root.is_absolute() else project_root() / root
    if spec.name == "fashion_mnist":
        return load_fashion_mnist(root, val_size=spec.val_size, seed=spec.split_seed)
    return load_image_folder(
        root,
        size=spec.image_size,
        channels=spec.channels,
        val_fraction=spec.val_fraction,
        seed=spec.split_seed,
    )
