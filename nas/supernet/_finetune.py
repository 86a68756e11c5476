"""Short fine-tuning of an extracted subnet before export (training split only)."""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from nas.data import ImageDataset, batches

__all__ = ["finetune"]

logger = logging.getLogger(__name__)


def finetune(
    model: nn.Module,
    dataset: ImageDataset,
    resolution: int,
    epochs: int,
    *,
    lr: float = 0.01,
    batch_size: int = 128,
    label_smoothing: float = 0.1,
    seed: int = 0,
) -> nn.Module:
    """``epochs`` of SGD (Nesterov, cosine schedule from ``lr``) with the supernet's augmentation
    on the training split; returns the model in eval mode. Validation and test stay unseen."""
    if epochs <= 0:
        return model.eval()
    generator = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-5}, {"params": rest, "weight_decay": 0.0}],
        lr=lr,
        momentum=0.9,
        nesterov=True,
    )
    steps = epochs * (len(dataset.train) // batch_size)
    step = 0
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        for x, y in batches(
            dataset.train,
            batch_size,
            dataset.preprocessing,
            resolution=resolution,
            shuffle=True,
            augment=True,
            generator=generator,
            drop_last=True,
        ):
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / steps))
            loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        logger.info(
            "fine-tune epoch %d/%d: loss %.3f (%.0f s)",
            epoch + 1,
            epochs,
            float(loss.detach()),
            time.perf_counter() - start,
        )
    return model.eval()
