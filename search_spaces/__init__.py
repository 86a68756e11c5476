"""Search spaces, registered by name in ``nas.registry.SPACES``; wrappers that compose.

The contract is :class:`SearchSpace` plus the optional capabilities a space declares
(:class:`WeightSharing`, :class:`Prunable`); nothing outside this package imports its private
modules. ``pruned(base)`` and ``mixed_precision(base)`` wrap any space that fits and satisfy the
same contract, so they compose: ``mixed_precision(pruned(get_space("ofa_mbv3_small")))``;
``apq(base)`` is that composition as APQ searches it (kept shares of each unit's filters).
"""

from __future__ import annotations

from typing import Any

from nas.registry import SPACE_WRAPPERS, SPACES, split_space
from search_spaces._base import (
    BOUNDARY_OPS,
    LayerSpec,
    Prunable,
    Scalable,
    SearchSpace,
    Shrinkable,
    Unit,
    WeightSharing,
)
from search_spaces._joint import APQ_SHARES, apq, int8
from search_spaces._mbv3 import ElasticMBV3Space, MBV3Config, make_divisible
from search_spaces._mixed import MixedConfig, MixedPrecisionSpace, mixed_precision
from search_spaces._pruned import PrunedConfig, PrunedSpace, pruned
from search_spaces._wrapper import SpaceWrapper
from search_spaces.nb201 import NB201Config, NB201Space, nb201
from search_spaces.ofa_mbv3 import ofa_mbv3
from search_spaces.ofa_mbv3_small import ofa_mbv3_small

__all__ = [
    "BOUNDARY_OPS",
    "APQ_SHARES",
    "ElasticMBV3Space",
    "LayerSpec",
    "MBV3Config",
    "MixedConfig",
    "MixedPrecisionSpace",
    "NB201Config",
    "NB201Space",
    "Prunable",
    "Scalable",
    "PrunedConfig",
    "PrunedSpace",
    "SearchSpace",
    "Shrinkable",
    "SpaceWrapper",
    "Unit",
    "WeightSharing",
    "get_space",
    "list_spaces",
    "make_divisible",
    "apq",
    "int8",
    "mixed_precision",
    "pruned",
]

SPACES.register("ofa_mbv3", ofa_mbv3)
SPACES.register("ofa_mbv3_small", ofa_mbv3_small)
SPACES.register("nb201", nb201)
SPACE_WRAPPERS.register("pruned", pruned)
SPACE_WRAPPERS.register("mixed_precision", mixed_precision)
SPACE_WRAPPERS.register("apq", apq)
SPACE_WRAPPERS.register("int8", int8)


def list_spaces() -> list[str]:
    """Names of every registered search space (``nas.registry.SPACES.names()``)."""
    return SPACES.names()


def get_space(name: str, **options: Any) -> SearchSpace:
    """The space registered as ``name``, or registered wrappers around one
    (``mixed_precision(pruned(ofa_mbv3_small))``); ``options`` go to the base space's factory
    (e.g. ``n_classes``), the wrappers take their defaults.

    Raises:
        RegistryError: no such space or wrapper (a ``SpecError`` and a ``KeyError``; the
            message lists the known ones).
        SpecError: the name is malformed (unbalanced parentheses).
    """
    wrappers, base = split_space(name)
    space = SPACES.create(base, **options)
    for wrapper in reversed(wrappers):
        space = SPACE_WRAPPERS.get(wrapper)(space)
    return space
