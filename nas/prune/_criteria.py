"""Filter-importance criteria: which filters of a unit NetAdapt keeps when it prunes the unit.

- ``l2``: the L2 norm of each filter's weights, BatchNorm scale folded in (Li et al., ICLR 2017;
  what NetAdapt used from the start). No data.
- ``apoz``: one minus the Average Percentage of Zeros of each filter's activations (Hu et al.,
  2016) on training images. MobileNetV3's h-swish is not ReLU: it is exactly zero only at or
  below -3, and negative between -3 and 0; a non-positive output counts as a zero, so that on
  ReLU units this is the paper's APoZ and on h-swish units the share of the filter's outputs
  that are off.
- ``taylor``: the first-order Taylor expansion of the loss change when a filter's activation is
  removed (Molchanov et al., ICLR 2017): ``|mean over positions of activation x gradient|`` per
  image, averaged over training images (the loss is the cross-entropy of the labels).

The data-driven criteria read the unit's activated output through the space's ``Prunable``
``unit_output``; NetAdapt scores every unit of the current model once per iteration, on the
same ``netadapt.criterion_images`` training images (never validation or test images).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from nas.registry import CRITERIA

__all__ = ["APoZ", "FilterCriterion", "L2Norm", "Taylor", "make_criterion"]

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


class FilterCriterion(abc.ABC):
    """Importance of each filter of some prunable units of one model (higher is kept first).

    Contract: ``scores(space, model, units, batches)`` returns, for each name in ``units``, a
    1-D float tensor with one finite, non-negative score per filter the unit has in ``model``
    now; the same inputs give the same scores; the model's weights, gradients and train/eval
    mode are as they were. A filter whose activated output is zero on every image (a dead
    filter) scores no higher than any other filter of its unit. ``batches()`` yields
    ``(images, labels)`` at the model's resolution; a criterion with ``needs_data = False``
    never calls it.
    """

    name: str = ""
    needs_data: bool = True

    @abc.abstractmethod
    def scores(
        self,
        space: object,
        model: nn.Module,
        units: Sequence[str],
        batches: Batches,
    ) -> dict[str, torch.Tensor]:
        """One score per filter of each unit in ``units`` (see the class contract)."""


def make_criterion(name: str) -> FilterCriterion:
    """The registered criterion ``name`` (``nas.registry.CRITERIA``), built."""
    return CRITERIA.get(name)()


@CRITERIA.register("l2")
class L2Norm(FilterCriterion):
    name = "l2"
    needs_data = False

    def scores(self, space, model, units, batches):
        return {unit: space.filter_norms(model, unit).detach().clone() for unit in units}


class _ActivationCriterion(FilterCriterion):
    """Hooks every unit's output while the batches run through the model in eval mode (the
    BatchNorm statistics stay as they are); subclasses reduce each output to per-filter sums."""

    with_gradients = False

    @abc.abstractmethod
    def accumulate(self, output: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        """Per-filter sum over the batch's images of this criterion's per-image statistic."""

    @abc.abstractmethod
    def finish(self, total: torch.Tensor, images: int) -> torch.Tensor:
        """Scores from the sums over ``images`` images."""

    def scores(self, space, model, units, batches):
        was_training = model.training
        model.eval()
        outputs: dict[str, torch.Tensor] = {}
        handles = [
            space.unit_output(model, unit).register_forward_hook(
                lambda _m, _i, out, unit=unit: outputs.__setitem__(unit, out)
            )
            for unit in units
        ]
        totals = dict.fromkeys(units, 0.0)
        images = 0
        try:
            for x, y in batches():
                with torch.set_grad_enabled(self.with_gradients):
                    logits = model(x)
                    acts = [outputs[unit] for unit in units]
                    grads: Sequence[torch.Tensor | None] = [None] * len(acts)
                    if self.with_gradients:
                        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
                        grads = torch.autograd.grad(loss, acts)
                for unit, act, grad in zip(units, acts, grads, strict=True):
                    totals[unit] = totals[unit] + self.accumulate(act.detach(), grad)
                images += len(x)
                outputs.clear()
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)
        if not images:
            raise ValueError(f"criterion {self.name}: no images to score the filters on")
        return {unit: self.finish(totals[unit], images) for unit in units}


@CRITERIA.register("apoz")
class APoZ(_ActivationCriterion):
    name = "apoz"

    def accumulate(self, output, grad):
        # per image: the share of the filter's positions that are off (<= 0)
        return (output <= 0).float().mean(dim=(2, 3)).sum(dim=0)

    def finish(self, total, images):
        return 1.0 - total / images


@CRITERIA.register("taylor")
class Taylor(_ActivationCriterion):
    name = "taylor"
    with_gradients = True

    def accumulate(self, output, grad):
        return (output * grad).mean(dim=(2, 3)).abs().sum(dim=0)

    def finish(self, total, images):
        return total / images
