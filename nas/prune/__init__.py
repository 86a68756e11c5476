"""NetAdapt: latency-driven filter pruning of a trained subnet under a device's table."""

from nas.prune._netadapt import NetAdaptJob, load_pruned, save_pruned
from nas.prune._space import PrunedConfig, PrunedSpace, Unit
from nas.prune._surgery import filter_norms, prune_to, prune_unit, widths_of

__all__ = [
    "NetAdaptJob",
    "PrunedConfig",
    "PrunedSpace",
    "Unit",
    "filter_norms",
    "load_pruned",
    "prune_to",
    "prune_unit",
    "save_pruned",
    "widths_of",
]
