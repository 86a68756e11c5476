"""An in-memory image-classification dataset with a fixed seeded validation split."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ImageDataset", "Split", "Preprocessing", "batches", "resize"]


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How raw 0-255 pixels become network input: ``(pixel * scale - mean) / std``, NCHW."""

    height: int
    width: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0 / 255.0
    layout: str = "NCHW"

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, C, H, W)`` -> normalized float32."""
        x = images.float() * self.scale
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x - mean) / std


@dataclasses.dataclass(frozen=True)
class Split:
    """One split held in memory: uint8 images ``(N, C, H, W)`` and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int, seed: int = 0) -> Split:
        """A fixed random subset of ``n`` examples (all of them if ``n >= len``)."""
        if n >= len(self):
            return self
        idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(self))[:n])
        return Split(self.images[idx], self.labels[idx])


#: training images that calibrate int8 activation ranges (``quantization_calibration``)
QUANTIZATION_IMAGES = 200


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Splits: search sees train and val; test is for final figures."""

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    preprocessing: Preprocessing

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return self.preprocessing.channels

    def quantization_calibration(self) -> Split:
        """The training images that set int8 activation ranges: the same ones for a file's
        quantizer and for the simulation that scores its config (``QUANTIZATION_IMAGES``)."""
        return self.train.subset(QUANTIZATION_IMAGES, seed=1)

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be one of train, val, test, but got {name!r}")
        return getattr(self, name)


def split_train_val(
    images: np.ndarray, labels: np.ndarray, val_size: int, seed: int
) -> tuple[Split, Split]:
    """A fixed, seeded, stratification-free split of the training set into train and val."""
    if not 0 < val_size < len(labels):
        raise ValueError(f"`0 < val_size < {len(labels)}` must hold, but got {val_size=}")
    perm = np.random.default_rng(seed).permutation(len(labels))
    val_idx, train_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    x, y = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    return Split(x[train_idx], y[train_idx]), Split(x[val_idx], y[val_idx])


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear (``align_corners=False``) resize of an NCHW batch to ``resolution`` x
    ``resolution``; unchanged when already that size. The one resize of every path (training,
    evaluation, export, the registered pyfunc model), so that what an app feeds matches."""
    if tuple(x.shape[-2:]) == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def batches(
    split: Split,
    batch_size: int,
    preprocessing: Preprocessing,
    *,
    resolution: int | None = None,
    shuffle: bool = False,
    augment: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield normalized float batches; optional random-crop (pad 2) + horizontal-flip augmentation
    and resizing to ``resolution`` (bilinear). Batches come from in-memory tensors (no workers)."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        x = preprocessing.apply(split.images[idx])
        if augment:
            x = _augment(x, generator)
        if resolution is not None:
            x = resize(x, resolution)
        yield x, split.labels[idx]


def _augment(x: torch.Tensor, generator: torch.Generator | None, pad: int = 2) -> torch.Tensor:
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    # One random translation per batch row via unfold-free gather: shift rows and columns.
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (
        (dy.view(-1, 1) + torch.arange(h).view(1, -1))
        .view(n, 1, h, 1)
        .expand(-1, x.shape[1], -1, w + 2 * pad)
    )
    out = padded.gather(2, rows)
    cols = (
        (dx.view(-1, 1) + torch.arange(w).view(1, -1))
        .view(n, 1, 1, w)
        .expand(-1, x.shape[1], h, -1)
    )
    return out.gather(3, cols)
