"""Honest subnet evaluation: extract, recalibrate BatchNorm on training images, score top-1."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn as nn

from nas.data import ImageDataset, Split, batches
from nas.supernet._quantsim import simulate_precisions
from search_spaces import SearchSpace

__all__ = ["SubnetEvaluator", "recalibrate_bn", "top1"]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them as an exact average over
    ``loader`` (momentum None), as OFA does for each extracted subnet."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(bn.momentum, bn.training) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    was_training = model.training
    model.eval()
    for bn in bns:
        bn.train()
    for x, _ in loader:
        model(x)
    for bn, (momentum, _) in zip(bns, saved, strict=True):
        bn.momentum = momentum
    model.train(was_training)


@torch.no_grad()
def top1(model: nn.Module, loader) -> tuple[float, int]:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1), total


@dataclasses.dataclass
class SubnetEvaluator:
    """Scores configs of one space against one trained supernet. Holds the supernet and data in
    memory (build once per process / Ray actor, call :meth:`evaluate` many times)."""

    space: SearchSpace
    supernet: nn.Module
    dataset: ImageDataset
    bn_calibration_images: int = 2000
    batch_size: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        self._calibration = self.dataset.train.subset(self.bn_calibration_images, seed=self.seed)
        self.supernet.eval()

    def _loader(self, split: Split, resolution: int):
        return batches(split, self.batch_size, self.dataset.preprocessing, resolution=resolution)

    def subnet(self, config: Any) -> nn.Module:
        """The standalone subnet with BatchNorm recalibrated (ready to export)."""
        model = self.space.extract(self.supernet, config)
        recalibrate_bn(model, self._loader(self._calibration, self.space.input_shape(config)[1]))
        return model.eval()

    def evaluate(
        self, config: Any, split: str = "val", max_images: int | None = None
    ) -> dict[str, Any]:
        data = self.dataset.split(split)
        if max_images is not None:
            data = data.subset(max_images, seed=self.seed)
        model = self.subnet(config)
        resolution = self.space.input_shape(config)[1]
        layer_dtypes = self.space.layer_dtypes(config)
        if layer_dtypes is not None:  # scored as its mixed-precision file computes
            calibration = self._loader(self.dataset.quantization_calibration(), resolution)
            model = simulate_precisions(model, layer_dtypes, (x for x, _ in calibration))
        accuracy, n = top1(model, self._loader(data, resolution))
        return {"config": str(config), "accuracy": accuracy, "split": split, "n_images": n}
