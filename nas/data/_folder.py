"""Users' own data as an image folder: ``root/<class>/<image>`` (optionally ``root/train`` and
``root/test`` each laid out that way)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nas.data._dataset import ImageDataset, Preprocessing, Split, split_train_val
from nas.errors import DataError, DatasetNotFoundError

__all__ = ["load_image_folder"]

_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _scan(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"image folder {root} has no class sub-folders (expected root/<class>/<image>)"
        )
    items = []
    for label, name in enumerate(classes):
        files = sorted(
            p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in _EXTENSIONS
        )
        if not files:
            raise DataError(
                f"class folder {root / name} holds no images ({', '.join(sorted(_EXTENSIONS))})"
            )
        items += [(p, label) for p in files]
    return classes, items


def _read(items: list[tuple[Path, int]], size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    mode = "L" if channels == 1 else "RGB"
    images = np.empty((len(items), channels, size, size), dtype=np.uint8)
    for i, (path, _) in enumerate(items):
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert(mode).resize((size, size), Image.BILINEAR))
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot read image {path}: {e}") from e
        images[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return images, np.array([label for _, label in items], dtype=np.int64)


def load_image_folder(
    root: str | Path,
    *,
    size: int = 28,
    channels: int = 1,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> ImageDataset:
    """Load ``root/<class>/<image>``; images are resized to ``size`` and converted to ``channels``.

    With ``root/train`` and ``root/test`` present those are used as given; otherwise a seeded
    ``test_fraction`` is held out as test. A seeded ``val_fraction`` of train becomes val.

    Raises:
        DatasetNotFoundError: ``root`` does not exist.
        DataError: no class folders, a class without images, or an unreadable image (named).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder not found: {root}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, but got {channels}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes, train_items = _scan(root / "train")
        test_classes, test_items = _scan(root / "test")
        if test_classes != classes:
            raise DataError(f"{root / 'test'} has classes {test_classes}, train has {classes}")
        train_x, train_y = _read(train_items, size, channels)
        test_x, test_y = _read(test_items, size, channels)
    else:
        classes, items = _scan(root)
        x, y = _read(items, size, channels)
        perm = np.random.default_rng(seed + 1).permutation(len(y))
        n_test = max(1, int(round(test_fraction * len(y))))
        test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        train_x, train_y, test_x, test_y = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    n_val = max(1, int(round(val_fraction * len(train_y))))
    train, val = split_train_val(train_x, train_y, n_val, seed)
    scaled = train_x.astype(np.float32) / 255.0
    axes = (0, 2, 3)
    mean = tuple(float(m) for m in scaled.mean(axis=axes))
    std = tuple(max(float(s), 1e-3) for s in scaled.std(axis=axes))
    return ImageDataset(
        name=root.name,
        train=train,
        val=val,
        test=Split(torch.from_numpy(test_x), torch.from_numpy(test_y)),
        class_names=tuple(classes),
        preprocessing=Preprocessing(height=size, width=size, channels=channels, mean=mean, std=std),
    )
