"""Search spaces, looked up by name in one explicit registry."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from search_spaces._base import LayerSpec, SearchSpace
from search_spaces._mbv3 import ElasticMBV3Space, MBV3Config
from search_spaces.ofa_mbv3 import ofa_mbv3
from search_spaces.ofa_mbv3_small import ofa_mbv3_small

__all__ = [
    "ElasticMBV3Space",
    "LayerSpec",
    "MBV3Config",
    "SearchSpace",
    "get_space",
    "list_spaces",
]

_REGISTRY: MappingProxyType[str, Callable[..., SearchSpace]] = MappingProxyType(
    {"ofa_mbv3": ofa_mbv3, "ofa_mbv3_small": ofa_mbv3_small}
)


def list_spaces() -> list[str]:
    """Names of every registered search space."""
    return sorted(_REGISTRY)


def get_space(name: str, **options: Any) -> SearchSpace:
    """The space registered as ``name``; ``options`` go to its factory (e.g. ``n_classes``).

    Raises:
        KeyError: no such space (the message lists the known ones).
    """
    from nas.errors import SpecError

    if name not in _REGISTRY:
        raise SpecError(f"unknown search space {name!r}; known: {', '.join(list_spaces())}")
    return _REGISTRY[name](**options)


def _register_in_nas_registry() -> None:
    # the engine validates space names against nas.registry.SPACES (nas.spec imports no space)
    from nas.registry import SPACES

    for name, factory in _REGISTRY.items():
        if name not in SPACES:  # a space registered there already keeps its entry
            SPACES.register(name, factory)


_register_in_nas_registry()
