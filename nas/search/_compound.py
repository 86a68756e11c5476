"""The ``compound`` sampler: EfficientNet's compound scaling (Tan & Le, ICML 2019) as a baseline
search, priced by the same tables as any other.

From the space's smallest config (the base network), step 1 evaluates a grid of depth, width
and resolution multipliers ``(alpha, beta, gamma)`` with ``alpha * beta**2 * gamma**2 ~ 2``
(within 10%, each from 1.0 to 2.0 in steps of 0.1) at ``phi = 1``, as the paper grid-searches
them on its base; step 2 scales the base by the most accurate grid point's ``alpha**phi,
beta**phi, gamma**phi`` for ``phi = 0, 0.5, 1, ..., 6``. Multipliers are rounded to the space's
choices (``search_spaces.Scalable``), so distinct grid points may meet in one config; every
config is evaluated once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from nas.errors import SpecError

__all__ = ["CompoundProposer", "compound_grid"]


def compound_grid(tolerance: float = 0.1) -> list[tuple[float, float, float]]:
    """Every ``(alpha, beta, gamma)`` on the 0.1 grid over [1, 2] with ``alpha * beta**2 *
    gamma**2`` within ``tolerance`` of 2."""
    steps = [round(1 + 0.1 * i, 1) for i in range(11)]
    return [
        (a, b, g)
        for a, b, g in itertools.product(steps, steps, steps)
        if abs(a * b * b * g * g - 2) <= 2 * tolerance
    ]


PHIS = tuple(0.5 * i for i in range(13))


class CompoundProposer:
    """Proposes the grid at ``phi = 1`` first (no warm-up), then, once every grid config has
    been evaluated, the family of the most accurate one. Proposes each config once; returns
    nothing while grid configs are still being evaluated (the sampler's random draws fill in)."""

    warmup = 0

    def __init__(
        self,
        space: Any,
        latency: Callable[[Any], float],
        reference_ms: float,
        *,
        seed: int = 0,
        budgets_ms: Sequence[float] = (),  # the grid is the same whatever the budgets
    ) -> None:
        from search_spaces import Scalable

        if not isinstance(space, Scalable):
            raise SpecError(
                f"search.sampler = 'compound' needs a space that can be scaled "
                f"(search_spaces.Scalable); {space.name!r} cannot"
            )
        self.space, self.base = space, space.smallest()
        self.grid = {abg: space.scale(self.base, *abg) for abg in compound_grid()}
        self.proposed: set[str] = set()
        self.best: tuple[float, float, float] | None = None

    def propose(self, evaluated: Sequence[tuple[Any, float]], n: int) -> list[Any]:
        accuracy = {str(c): a for c, a in evaluated}
        todo = self._new(list(self.grid.values()), accuracy, n)
        if todo:
            return todo
        if any(str(c) not in accuracy for c in self.grid.values()):
            return []  # grid configs still running
        if self.best is None:
            self.best = max(self.grid, key=lambda abg: (accuracy[str(self.grid[abg])], -sum(abg)))
        a, b, g = self.best
        family = [self.space.scale(self.base, a**phi, b**phi, g**phi) for phi in PHIS]
        return self._new(family, accuracy, n)

    def _new(self, configs: list[Any], accuracy: dict[str, float], n: int) -> list[Any]:
        """Up to ``n`` of ``configs`` neither evaluated nor proposed before (now proposed)."""
        out: list[Any] = []
        for c in configs:
            key = str(c)
            if len(out) < n and key not in accuracy and key not in self.proposed:
                self.proposed.add(key)
                out.append(c)
        return out

    def family(self) -> list[Any]:
        """The scaled family of the chosen grid point (empty before it is chosen)."""
        if self.best is None:
            return []
        a, b, g = self.best
        return list(dict.fromkeys(self.space.scale(self.base, a**p, b**p, g**p) for p in PHIS))
