"""The ``surrogate`` sampler: spend the evaluator's queries where a cheap model says they pay.

Latency comes from the table and costs nothing; accuracy costs a query (a supernet evaluation,
or a predictor call). After a random warm-up, every round fits a ridge regression on
``encode()`` of the evaluated trials and evolves thousands of candidates on it (mutations and
crossovers from the current Pareto front, then from the best-rated candidate per latency bin,
for a few generations), pricing them all with the table; it proposes, in each of ``batch``
latency bins between the fastest evaluated subnet and the reference latency, the candidate the
ridge model rates most accurate. OFA's EvolutionFinder
spends the predictor on every candidate instead; this spends it only on the proposals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nas.search._pareto import pareto_front

__all__ = ["SurrogateProposer"]


class SurrogateProposer:
    warmup = None  # search.surrogate_warmup random trials first

    def __init__(
        self,
        space: Any,
        latency: Callable[[Any], float],
        max_latency_ms: float,
        *,
        seed: int = 0,
        candidates: int = 4000,
        generations: int = 4,
        parents_per_bin: int = 3,
        mutation_prob: float = 0.1,
        ridge: float = 1.0,
    ) -> None:
        self.space, self.latency, self.max_latency = space, latency, max_latency_ms
        self.rng = np.random.default_rng(seed)
        self.n_candidates, self.mutation_prob, self.ridge = candidates, mutation_prob, ridge
        self.generations, self.parents_per_bin = generations, parents_per_bin

    def _fit(self, configs: Sequence[Any], accuracy: np.ndarray) -> Callable[[np.ndarray], Any]:
        x = np.stack([self.space.encode(c) for c in configs]).astype(np.float64)
        mean_x, mean_y = x.mean(0), accuracy.mean()
        xc = x - mean_x
        w = np.linalg.solve(xc.T @ xc + self.ridge * np.eye(x.shape[1]), xc.T @ (accuracy - mean_y))
        return lambda z: (z - mean_x) @ w + mean_y

    def _crossover(self, a: Any, b: Any) -> Any:
        pa, pb = self.space.trial_params(a), self.space.trial_params(b)
        return self.space.config_from_params(
            {k: pa[k] if self.rng.random() < 0.5 else pb[k] for k in pa}
        )

    def propose(self, evaluated: Sequence[tuple[Any, float]], n: int) -> list[Any]:
        """Up to ``n`` configs not in ``evaluated`` (config, accuracy) pairs, one per latency
        bin, each the candidate the surrogate rates most accurate in its bin after a few
        generations of evolution on the surrogate (free: no query is spent on candidates)."""
        configs = [c for c, _ in evaluated]
        accuracy = np.array([a for _, a in evaluated], dtype=np.float64)
        predict = self._fit(configs, accuracy)
        latencies = np.array([self.latency(c) for c in configs])
        parents = [configs[i] for i in pareto_front(list(zip(latencies, accuracy, strict=True)))]
        parents.append(self.space.smallest())
        # bins from the fastest subnet of the space (priced, not evaluated) to the reference
        low = min(float(latencies.min()), self.latency(self.space.smallest()))
        edges = np.linspace(low, max(self.max_latency, low * 1.01), n + 1)
        seen = {str(c) for c in configs}
        pool: dict[str, tuple[Any, float, float]] = {}  # config -> (config, latency, score)
        per_generation = self.n_candidates // self.generations
        for _ in range(self.generations):
            children = []
            for i in range(per_generation):
                if i < per_generation * 3 // 4:
                    parent = parents[int(self.rng.integers(len(parents)))]
                    child = self.space.mutate(parent, self.rng, self.mutation_prob)
                elif i < per_generation * 7 // 8:
                    a, b = self.rng.integers(len(parents), size=2)
                    child = self._crossover(parents[a], parents[b])
                else:
                    child = self.space.sample(self.rng)
                if str(child) not in seen and str(child) not in pool:
                    children.append(child)
            if children:
                score = predict(np.stack([self.space.encode(c) for c in children]))
                for c, sc in zip(children, score, strict=True):
                    pool[str(c)] = (c, self.latency(c), float(sc))
            parents = [c for c, _, _ in self._best_per_bin(pool, edges, self.parents_per_bin)]
            if not parents:
                parents = [configs[int(np.argmax(accuracy))]]
        return [c for c, _, _ in self._best_per_bin(pool, edges, 1)]

    @staticmethod
    def _best_per_bin(
        pool: dict[str, tuple[Any, float, float]], edges: np.ndarray, k: int
    ) -> list[tuple[Any, float, float]]:
        rows = list(pool.values())
        out = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            inside = sorted((r for r in rows if lo < r[1] <= hi), key=lambda r: -r[2])
            out += inside[:k]
        return out
