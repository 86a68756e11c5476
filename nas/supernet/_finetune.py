"""Fine-tuning of an extracted (or pruned) subnet on the training split only."""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from nas.data import ImageDataset, batches

__all__ = ["Distillation", "finetune", "train_steps"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Distillation:
    """A teacher for a fine-tune (Hinton et al., 2015): the loss becomes
    ``alpha * CE(student, labels) + (1 - alpha) * T**2 * KL(softmax(teacher / T) ||
    softmax(student / T))``; the teacher (given in eval mode) runs without gradients on the same
    (augmented) batch as the student."""

    teacher: nn.Module
    alpha: float = 0.5
    temperature: float = 4.0

    def loss(
        self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, label_smoothing: float
    ) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(x)  # given in eval mode (an exported one is frozen)
        t = self.temperature
        kl = F.kl_div(
            F.log_softmax(logits / t, dim=1),
            F.log_softmax(target / t, dim=1),
            log_target=True,
            reduction="batchmean",
        )
        ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        return self.alpha * ce + (1 - self.alpha) * t * t * kl


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
    distill: Distillation | None = None,
) -> nn.Module:
    """``epochs`` of SGD (Nesterov, cosine schedule from ``lr``) with the supernet's augmentation
    on the training split, distilled from ``distill``'s teacher when given; returns the model in
    eval mode. Validation and test stay unseen."""
    return train_steps(
        model,
        dataset,
        resolution,
        epochs * (len(dataset.train) // batch_size),
        lr=lr,
        batch_size=batch_size,
        label_smoothing=label_smoothing,
        seed=seed,
        distill=distill,
    )


def train_steps(
    model: nn.Module,
    dataset: ImageDataset,
    resolution: int,
    steps: int,
    *,
    lr: float = 0.01,
    batch_size: int = 128,
    label_smoothing: float = 0.1,
    seed: int = 0,
    distill: Distillation | None = None,
) -> nn.Module:
    """``steps`` SGD steps (Nesterov, cosine schedule from ``lr``, the supernet's augmentation)
    on the training split, over as many epochs as they take (the loss :meth:`Distillation.loss`
    with ``distill``); returns the model in eval mode."""
    if steps <= 0:
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
    per_epoch = max(1, len(dataset.train) // batch_size)
    step = 0
    start = time.perf_counter()
    model.train()
    while step < steps:
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
            logits = model(x)
            if distill is None:
                loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            else:
                loss = distill.loss(logits, x, y, label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step % per_epoch == 0 or step == steps:
                logger.info(
                    "fine-tune step %d/%d: loss %.3f (%.0f s)",
                    step,
                    steps,
                    float(loss.detach()),
                    time.perf_counter() - start,
                )
            if step == steps:
                break
    return model.eval()
