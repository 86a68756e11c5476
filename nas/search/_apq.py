"""The ``apq`` sampler: a joint architecture / width / precision search whose per-layer
precisions come from the target's latency table and the file-size model, not from chance.

A mixed-precision config is a base config (architecture and pruned widths) plus one precision
per layer. What a layer's precision costs in latency and in bytes is known before any accuracy is
spent: the table prices each layer at each precision (and the QUANTIZE / DEQUANTIZE ops where
precisions meet), the size model prices its weights. What it costs in accuracy is small and has
to be measured. So each proposal is

1. **a base config** from an evolution over the evaluated trials: the members of their front in
   (latency, size, top-1) are the parents; a proposal keeps a parent's base (a new trade-off of
   the same network), mutates it, crosses two parents' bases, or draws a new one;
2. **its precisions** chosen for a trade-off ``lam`` (KiB per ms) drawn per proposal: starting
   from every layer at each precision in turn, coordinate descent over the layers (each tried at
   every precision) minimizes ``size_kb + lam * latency_ms`` of the whole config as priced (so
   the boundary ops count exactly), and the best start's result is proposed. ``lam`` is drawn
   log-uniformly around the base's own exchange rate (the size its narrowest uniform precision
   saves per ms it costs over its fastest one), and at times 0 (the smallest file) or infinite
   (the fastest).

On LiteRT's x86 CPU kernels, for example, int8 runs the 7x7 depthwise blocks 7-8x slower than
fp32 while fp16 runs at fp32 speed in half the bytes: the descent keeps those blocks at fp16 and
puts int8 where it costs little time, which uniform precision and random per-layer draws cannot.
On a phone whose int8 kernels are fast, the same descent makes every layer int8.

The accuracy each precision costs is left to the evaluations (the evolution keeps what
scored well). On a space without per-layer precisions step 2 is skipped: an evolution over
configs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nas.search._pareto import nondominated
from nas.search._surrogate import crossover

__all__ = ["PrecisionProposer"]


class PrecisionProposer:
    """Proposes ``round_size`` configs per round (smaller rounds: more generations for the same
    evaluations); the first round, with nothing evaluated, proposes the smallest network (not
    pruned) and the largest, each at its fastest and at its smallest precisions."""

    warmup = 0

    def __init__(
        self,
        space: Any,
        latency: Callable[[Any], float],
        reference_ms: float,
        *,
        seed: int = 0,
        budgets_ms: Sequence[float] = (),  # every trade-off is searched, whatever the budgets
        round_size: int = 4,
        mutation_prob: float = 0.1,
        passes: int = 3,
        extremes: float = 0.1,
    ) -> None:
        self.space, self.latency = space, latency
        self.rng = np.random.default_rng(seed)
        self.round_size, self.mutation_prob, self.passes = round_size, mutation_prob, passes
        self.extremes = extremes
        #: the space's precisions (None: a space without per-layer precisions)
        self.dtypes: tuple[str, ...] | None = getattr(space, "dtypes", None)
        self.base_space = space.base if self.dtypes is not None else space
        self._sizes: dict[str, float] = {}

    # ---- pricing ---------------------------------------------------------------------------
    def size_kb(self, config: Any) -> float:
        """The predicted KiB of the config's file (its layers at their precisions)."""
        from nas.export import predicted_size_bytes

        key = str(config)
        if key not in self._sizes:
            self._sizes[key] = predicted_size_bytes(self.space, config) / 1024
        return self._sizes[key]

    def _with(self, base: Any, dtypes: Sequence[str]) -> Any:
        return self.space.config_type(base, tuple(dtypes))

    def precisions(self, base: Any, lam: float) -> Any:
        """``base`` with the precisions that minimize ``size_kb + lam * latency_ms`` (coordinate
        descent from each uniform precision; ``lam = inf``: latency first, then size)."""
        assert self.dtypes is not None
        n = len(self.base_space.layers(base))

        def cost(dtypes: Sequence[str]) -> tuple[float, float]:
            c = self._with(base, dtypes)
            ms, kb = self.latency(c), self.size_kb(c)
            return (ms, kb) if math.isinf(lam) else (kb + lam * ms, 0.0)

        # every layer priced at every precision and every boundary op priced once, in a few
        # whole configs (a host table measures what it lacks in one go per config)
        for d in self.dtypes:
            self.latency(self.space.uniform(base, d))
        if "int8" in self.dtypes and len(self.dtypes) > 1:
            other = next(d for d in self.dtypes if d != "int8")
            for start in (0, 1):
                self.latency(
                    self._with(base, ["int8" if (i + start) % 2 else other for i in range(n)])
                )
        best: tuple[tuple[float, float], list[str]] | None = None
        for start in self.dtypes:
            dtypes = [start] * n
            current = cost(dtypes)
            for _ in range(self.passes):
                improved = False
                for i in range(n):
                    for d in self.dtypes:
                        if d == dtypes[i]:
                            continue
                        trial = dtypes[:i] + [d] + dtypes[i + 1 :]
                        c = cost(trial)
                        if c < current:
                            dtypes, current, improved = trial, c, True
                if not improved:
                    break
            if best is None or current < best[0]:
                best = (current, dtypes)
        assert best is not None
        return self._with(base, best[1])

    def _lam(self, base: Any) -> float:
        """A trade-off for ``base``: 0 or inf at times, else log-uniform over two decades
        either side of its exchange rate between its fastest and its smallest uniform
        precisions."""
        u = self.rng.random()
        if u < self.extremes:
            return 0.0
        if u < 2 * self.extremes:
            return math.inf
        assert self.dtypes is not None
        uniform = [self.space.uniform(base, d) for d in self.dtypes]
        priced = [(self.latency(c), self.size_kb(c)) for c in uniform]
        fast, small = min(priced), min(priced, key=lambda p: p[1])
        rate = (fast[1] - small[1]) / max(small[0] - fast[0], 1e-6)
        return max(rate, 1e-3) * 10 ** self.rng.uniform(-2, 2)

    # ---- proposing ---------------------------------------------------------------------------
    def _base_of(self, config: Any) -> Any:
        return config.base if self.dtypes is not None else config

    def _finish(self, base: Any, lam: float | None = None) -> Any:
        if self.dtypes is None:
            return base
        return self.precisions(base, self._lam(base) if lam is None else lam)

    def _unwrapped_smallest(self) -> Any:
        """The smallest config of the innermost space as this base space reads it (for
        ``pruned(base)``: the base's smallest network, not pruned), else the base's own."""
        from search_spaces import SpaceWrapper

        inner = self.base_space
        while isinstance(inner, SpaceWrapper):
            inner = inner.base
        return self.base_space.parse(str(inner.smallest()))

    def propose(self, evaluated: Sequence[tuple[Any, float]], n: int) -> list[Any]:
        """Up to ``min(n, round_size)`` configs not among ``evaluated``."""
        n = min(n, self.round_size)
        seen = {str(c) for c, _ in evaluated}
        out: list[Any] = []

        def add(config: Any) -> None:
            if str(config) not in seen and len(out) < n:
                seen.add(str(config))
                out.append(config)

        if not evaluated:
            small, large = self._unwrapped_smallest(), self.base_space.largest()
            for base, lam in ((small, math.inf), (large, math.inf), (small, 0.0), (large, 0.0)):
                add(self._finish(base, lam))
            return out
        configs = [c for c, _ in evaluated]
        points = [(self.latency(c), self.size_kb(c), -a) for c, a in evaluated]
        parents = [self._base_of(configs[i]) for i in nondominated(points)]
        for _ in range(20 * n):
            if len(out) >= n:
                break
            u = self.rng.random()
            parent = parents[int(self.rng.integers(len(parents)))]
            if u < 0.25 and self.dtypes is not None:  # the same network, another trade-off
                base = parent
            elif u < 0.75:
                base = self.base_space.mutate(parent, self.rng, self.mutation_prob)
            elif u < 0.9:
                other = parents[int(self.rng.integers(len(parents)))]
                base = crossover(self.base_space, parent, other, self.rng)
            else:
                base = self.base_space.sample(self.rng)
            add(self._finish(base))
        return out
