"""Explicit registries of what users pick by name: search spaces, samplers, evaluators, datasets,
export formats, latency kinds. One ``Registry`` object per extension point (timm's explicit
registry, without module-level mutable dicts spread over the code).

A registry knows which modules provide its entries (``providers``) and imports them on its first
look-up, so that ``nas.spec`` can validate a name against a registry without importing any
engine module itself. Third-party packages add entries through the entry-point group
``nas.<kind>`` (each entry point names a module that registers on import).

Contract of every registry:
- ``register(name)`` is a decorator (or ``register(name, obj)`` a call); a name is registered
  once: a second registration under the same name raises ``ValueError``.
- ``get(name)`` returns what was registered, or raises ``RegistryError`` (a ``SpecError`` and a
  ``KeyError``) naming the kind and listing the known names.
- ``names()`` is sorted; ``temporarily(name, obj)`` registers for the duration of a ``with``
  block (tests, plug-ins defined in a script).
Registries are filled at import time; look-ups are read-only and thread-safe after that.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from nas.errors import SpecError

__all__ = [
    "CRITERIA",
    "DATASETS",
    "EVALUATORS",
    "EXPORT_FORMATS",
    "LATENCY_KINDS",
    "SAMPLERS",
    "SPACES",
    "SPACE_WRAPPERS",
    "Registry",
    "RegistryError",
    "split_space",
]

T = TypeVar("T")


class RegistryError(SpecError, KeyError):
    """A name that no registry entry has; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Name -> implementation (a class or a factory) for one extension point."""

    def __init__(self, kind: str, *, providers: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._providers = providers
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, a decorator that does it."""

        def add(value: T) -> T:
            with self._lock:
                if name in self._entries and self._entries[name] is not value:
                    raise ValueError(f"{self.kind} {name!r} is registered already")
                self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    @contextlib.contextmanager
    def temporarily(self, name: str, obj: T) -> Iterator[T]:
        """Register ``obj`` as ``name`` inside a ``with`` block."""
        self.register(name, obj)
        try:
            yield obj
        finally:
            self.unregister(name)

    def get(self, name: str) -> T:
        """What is registered as ``name``.

        Raises:
            RegistryError: no such name (the message lists the known ones).
        """
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``get(name)(*args, **kwargs)``: build an instance of the entry."""
        factory: Callable[..., Any] = self.get(name)  # type: ignore[assignment]
        return factory(*args, **kwargs)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True  # set first: providers look names up while they register
            for module in self._providers:
                importlib.import_module(module)
            group = "nas." + self.kind.replace(" ", "_")
            for ep in entry_points(group=group):
                importlib.import_module(ep.value.split(":")[0])


# one registry per extension point; `providers` are the modules whose import fills it.
# What an entry is: SPACES, a factory of search_spaces.SearchSpace; SAMPLERS, a subclass of
# nas.search.Sampler (built with no arguments); EVALUATORS, a subclass of nas.search.Evaluator
# (built with the RunSpec, once per worker); DATASETS, a subclass of nas.data.DatasetLoader
# (built with no arguments).
SPACES: Registry[Callable[..., Any]] = Registry("space", providers=("search_spaces",))
# SPACE_WRAPPERS: a function of a space returning a space (``pruned``, ``mixed_precision``)
SPACE_WRAPPERS: Registry[Callable[[Any], Any]] = Registry(
    "space wrapper", providers=("search_spaces",)
)
SAMPLERS: Registry[Callable[..., Any]] = Registry("sampler", providers=("nas.search",))
EVALUATORS: Registry[Callable[..., Any]] = Registry("evaluator", providers=("nas.search",))
# OBJECTIVES: a subclass of nas.search.Objective (built with the SearchSpec)
OBJECTIVES: Registry[Callable[..., Any]] = Registry("objective", providers=("nas.search",))
DATASETS: Registry[Callable[..., Any]] = Registry("dataset", providers=("nas.data",))
EXPORT_FORMATS: Registry[Any] = Registry("export format", providers=("nas.export",))
LATENCY_KINDS: Registry[Any] = Registry("latency kind", providers=("nas.latency",))
# CRITERIA: a subclass of nas.prune.FilterCriterion (built with no arguments): which filters
# NetAdapt keeps
CRITERIA: Registry[Callable[..., Any]] = Registry("criterion", providers=("nas.prune",))


def split_space(text: str) -> tuple[list[str], str]:
    """A space name as a spec writes it, ``base`` or wrappers around it
    (``mixed_precision(pruned(ofa_mbv3_small))``): the wrapper names, outermost first, and the
    base name. Only the shape is checked here (not the names).

    Raises:
        SpecError: unbalanced or empty parentheses.
    """
    wrappers, rest = [], text.strip()
    while "(" in rest:
        name, _, inner = rest.partition("(")
        if not inner.endswith(")") or not name.strip() or not inner[:-1].strip():
            raise SpecError(f"space: {text!r} must read name or wrapper(name), e.g. pruned(x)")
        wrappers.append(name.strip())
        rest = inner[:-1].strip()
    if ")" in rest or not rest:
        raise SpecError(f"space: {text!r} must read name or wrapper(name), e.g. pruned(x)")
    return wrappers, rest
