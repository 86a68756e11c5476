"""NetAdapt: latency-driven filter pruning of a trained subnet under a device's table.

The pruned-width space is ``search_spaces.pruned(base)``; the filter surgery is the base space's
``Prunable`` capability; which filters a unit keeps is a registered criterion
(``nas.registry.CRITERIA``: ``l2``, ``apoz``, ``taylor``; ``netadapt.criterion``).
``prune_to``/``widths_of``/``filter_norms``/``prune_unit`` here are thin wrappers kept for
callers of the former ``nas.prune`` API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.prune._criteria import APoZ, FilterCriterion, L2Norm, Taylor, make_criterion
from nas.prune._netadapt import NetAdaptJob, load_pruned, save_pruned
from search_spaces import PrunedConfig, PrunedSpace, Unit, get_space

if TYPE_CHECKING:
    import torch

__all__ = [
    "APoZ",
    "FilterCriterion",
    "L2Norm",
    "NetAdaptJob",
    "PrunedConfig",
    "PrunedSpace",
    "Unit",
    "filter_norms",
    "load_pruned",
    "prune_to",
    "prune_unit",
    "Taylor",
    "make_criterion",
    "save_pruned",
    "widths_of",
]


def prune_to(model: torch.nn.Module, space: PrunedSpace, config: PrunedConfig) -> torch.nn.Module:
    """``space.prune_to(model, config)``."""
    return space.prune_to(model, config)


def widths_of(model: torch.nn.Module, space: PrunedSpace, config: PrunedConfig) -> tuple[int, ...]:
    """``space.widths_of(model, config)``."""
    return space.widths_of(model, config)


def filter_norms(model: torch.nn.Module, unit: str, space: str = "ofa_mbv3_small") -> torch.Tensor:
    """``get_space(space).filter_norms(model, unit)`` (the former MobileNetV3-only function)."""
    return get_space(space).filter_norms(model, unit)


def prune_unit(
    model: torch.nn.Module, unit: str, width: int, space: str = "ofa_mbv3_small"
) -> None:
    """``get_space(space).prune_unit(model, unit, width)``."""
    get_space(space).prune_unit(model, unit, width)
