"""Search spaces, registered by name in ``nas.registry.SPACES``; wrappers that compose.

The contract is :class:`SearchSpace` plus the optional capabilities a space declares
(:class:`WeightSharing`, :class:`Prunable`); nothing outside this package imports its private
modules. ``pruned(base)`` and ``mixed_precision(base)`` wrap any space that fits and satisfy the
same contract, so they compose: ``mixed_precision(pruned(get_space("ofa_mbv3_small")))``.
"""

from __future__ import annotations

from typing import Any

from nas.registry import SPACES
from search_spaces._base import LayerSpec, Prunable, SearchSpace, Unit, WeightSharing
from search_spaces._mbv3 import ElasticMBV3Space, MBV3Config, make_divisible
from search_spaces._mixed import MixedConfig, MixedPrecisionSpace, mixed_precision
from search_spaces._pruned import PrunedConfig, PrunedSpace, pruned
from search_spaces.ofa_mbv3 import ofa_mbv3
from search_spaces.ofa_mbv3_small import ofa_mbv3_small

__all__ = [
    "ElasticMBV3Space",
    "LayerSpec",
    "MBV3Config",
    "MixedConfig",
    "MixedPrecisionSpace",
    "Prunable",
    "PrunedConfig",
    "PrunedSpace",
    "SearchSpace",
    "Unit",
    "WeightSharing",
    "get_space",
    "list_spaces",
    "make_divisible",
    "mixed_precision",
    "pruned",
]

SPACES.register("ofa_mbv3", ofa_mbv3)
SPACES.register("ofa_mbv3_small", ofa_mbv3_small)


def list_spaces() -> list[str]:
    """Names of every registered search space (``nas.registry.SPACES.names()``)."""
    return SPACES.names()


def get_space(name: str, **options: Any) -> SearchSpace:
    """The space registered as ``name``; ``options`` go to its factory (e.g. ``n_classes``).

    Raises:
        RegistryError: no such space (a ``SpecError`` and a ``KeyError``; the message lists the
            known ones).
    """
    return SPACES.create(name, **options)
