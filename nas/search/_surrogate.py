"""The ``surrogate`` sampler: spend the evaluator's queries where a cheap model says they pay.

Latency comes from the table and costs nothing; accuracy costs a query (a supernet evaluation,
or a predictor call). After a random warm-up every round fits a ridge regression on
``encode()`` of the evaluated trials and proposes in two ways:

- **over the range**: thousands of candidates evolve on the ridge model (mutations and
  crossovers from the current Pareto front, then from the best-rated candidate per latency bin,
  for a few generations), all priced by the table; in each latency bin between the fastest
  subnet and the reference latency, the candidate the model rates most accurate is proposed.
- **under each budget** (from ``local_after`` evaluated trials on, ``local_share`` of the
  round): for each latency budget in turn (``export.budgets_ms``, else
  ``search.max_latency_ms``; with neither, ten log-spaced from the smallest subnet to the
  reference latency), a ridge model fitted with the trials near that latency weighted most (a
  kernel of width ``width`` in log latency) rates the children of a short evolution from the
  best evaluated subnets under the budget, and the best-rated unseen child under the budget is
  proposed. Most children are small mutations (they stay near the parents); ``local_jump`` of
  them are large ones (``jump_prob`` per choice) brought back under the budget by setting
  random choices to the smallest subnet's, so a different shape at the same latency (deeper
  stages with smaller expansions, say) can be reached at all. The rating is the prediction plus
  ``local_explore`` posterior standard deviations (the ridge read as Bayesian linear
  regression), so a child unlike any evaluated trial is not ranked by extrapolation alone.

A linear model on one-hot choices fits the whole range only roughly (what a kernel in one layer
is worth depends on the resolution and the depth); fitted around one latency it ranks the
subnets near that latency better, and a search under a budget wants exactly the subnets that
fill it. OFA's EvolutionFinder runs one evolution per budget too, but spends a predictor query on
every candidate (500 generations of 100); this spends queries only on the proposals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nas.search._pareto import pareto_front

__all__ = ["SurrogateProposer", "crossover", "default_budgets"]

N_BUDGETS = 10


def default_budgets(low_ms: float, high_ms: float, n: int = N_BUDGETS) -> list[float]:
    """``n`` latency budgets log-spaced from ``low_ms`` (the fastest subnet) to ``high_ms``."""
    return [float(b) for b in np.geomspace(low_ms, max(high_ms, low_ms * 1.01), n + 1)[1:]]


def crossover(space: Any, a: Any, b: Any, rng: np.random.Generator) -> Any:
    """A uniform crossover of two configs of ``space``: each Optuna parameter from either."""
    pa, pb = space.trial_params(a), space.trial_params(b)
    return space.config_from_params({k: pa[k] if rng.random() < 0.5 else pb[k] for k in pa})


class SurrogateProposer:
    warmup = None  # search.surrogate_warmup random trials first

    def __init__(
        self,
        space: Any,
        latency: Callable[[Any], float],
        max_latency_ms: float,
        *,
        seed: int = 0,
        budgets_ms: Sequence[float] = (),
        candidates: int = 4000,
        generations: int = 4,
        parents_per_bin: int = 3,
        mutation_prob: float = 0.1,
        ridge: float = 1.0,
        local_after: int = 100,
        local_share: float = 0.4,
        width: float = 0.15,
        local_generations: int = 5,
        local_children: int = 400,
        local_parents: int = 5,
        local_mutation_prob: float = 0.04,
        local_explore: float = 1.0,
        local_jump: float = 0.3,
        jump_prob: float = 0.15,
    ) -> None:
        self.space, self.max_latency = space, max_latency_ms
        self._price, self._prices = latency, {}  # config string -> ms, within one round
        self.rng = np.random.default_rng(seed)
        self.n_candidates, self.mutation_prob, self.ridge = candidates, mutation_prob, ridge
        self.generations, self.parents_per_bin = generations, parents_per_bin
        self.budgets = sorted(float(b) for b in budgets_ms) or default_budgets(
            latency(space.smallest()), max_latency_ms
        )
        self.local_after, self.local_share, self.width = local_after, local_share, width
        self.local_generations, self.local_children = local_generations, local_children
        self.local_parents, self.local_mutation_prob = local_parents, local_mutation_prob
        self.local_explore, self.local_jump, self.jump_prob = local_explore, local_jump, jump_prob
        self._smallest_params = space.trial_params(space.smallest())  # what _shrink sets

    def _fit(
        self,
        x: np.ndarray,
        accuracy: np.ndarray,
        weight: np.ndarray | None = None,
        explore: float = 0.0,
    ) -> Callable[[np.ndarray], Any]:
        """Ridge regression of ``accuracy`` on the encodings ``x`` (rows weighted by ``weight``;
        None: all alike); returns the model's rating of a stack of encodings: its prediction,
        plus ``explore`` times its posterior standard deviation (Bayesian linear regression
        with the ridge as the prior: large where the evaluated trials say little)."""
        w = np.ones(len(x)) if weight is None else weight
        mean_x, mean_y = (w @ x) / w.sum(), (w @ accuracy) / w.sum()
        xc = x - mean_x
        xw = xc * w[:, None]
        a = xw.T @ xc + self.ridge * np.eye(x.shape[1])
        coef = np.linalg.solve(a, xw.T @ (accuracy - mean_y))

        def predict(z: np.ndarray) -> Any:
            return (z - mean_x) @ coef + mean_y

        if not explore:
            return predict
        residual = accuracy - predict(x)
        noise = float(w @ residual**2 / w.sum())
        a_inv = np.linalg.inv(a)

        def rate(z: np.ndarray) -> Any:
            zc = z - mean_x
            std = np.sqrt(noise * np.maximum(np.einsum("ij,jk,ik->i", zc, a_inv, zc), 0.0))
            return predict(z) + explore * std

        return rate

    def latency(self, config: Any) -> float:
        """``config``'s predicted latency (ms), priced once per config in a round (the shrink
        loop and the evolutions price the same candidates again; kept across rounds, the memo
        grew by ~20k configs, ~3 MB, a round)."""
        key = str(config)
        if key not in self._prices:
            self._prices[key] = self._price(config)
        return self._prices[key]

    def _encode(self, configs: Sequence[Any]) -> np.ndarray:
        return np.stack([self.space.encode(c) for c in configs]).astype(np.float64)

    def _crossover(self, a: Any, b: Any) -> Any:
        return crossover(self.space, a, b, self.rng)

    def propose(self, evaluated: Sequence[tuple[Any, float]], n: int) -> list[Any]:
        """Up to ``n`` configs not in ``evaluated`` (config, accuracy) pairs: the round's share
        under each budget (once ``local_after`` trials are evaluated), the rest one per latency
        bin over the range. No query is spent on candidates."""
        self._prices = {}
        configs = [c for c, _ in evaluated]
        accuracy = np.array([a for _, a in evaluated], dtype=np.float64)
        x = self._encode(configs)
        latencies = np.array([self.latency(c) for c in configs])
        seen = {str(c) for c in configs}
        n_local = 0
        if len(configs) >= self.local_after and n >= 2:
            n_local = min(n - 1, max(1, round(n * self.local_share)))
        out = self._over_the_range(configs, accuracy, x, latencies, seen, n - n_local)
        seen |= {str(c) for c in out}
        return out + self._under_budgets(configs, accuracy, x, latencies, seen, n_local)

    # ---- over the range ----------------------------------------------------------------------
    def _over_the_range(self, configs, accuracy, x, latencies, seen, n: int) -> list[Any]:
        if n < 1:
            return []
        predict = self._fit(x, accuracy)
        parents = [configs[i] for i in pareto_front(list(zip(latencies, accuracy, strict=True)))]
        parents.append(self.space.smallest())
        # bins from the fastest subnet of the space (priced, not evaluated) to the reference
        low = min(float(latencies.min()), self.latency(self.space.smallest()))
        edges = np.linspace(low, max(self.max_latency, low * 1.01), n + 1)
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
                score = predict(self._encode(children))
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

    # ---- under each budget -------------------------------------------------------------------
    def _under_budgets(self, configs, accuracy, x, latencies, seen, n: int) -> list[Any]:
        """``n`` proposals, the budgets taken in turn (a shuffled order per pass)."""
        order = [
            int(i)
            for _ in range(-(-n // len(self.budgets)))
            for i in self.rng.permutation(len(self.budgets))
        ][:n]
        out = []
        for i in order:
            best = self._under(self.budgets[i], configs, accuracy, x, latencies, seen)
            if best is not None:
                seen.add(str(best))
                out.append(best)
        return out

    def _under(self, budget, configs, accuracy, x, latencies, seen) -> Any | None:
        under = np.flatnonzero(latencies <= budget)
        if not len(under):
            return None
        # trials near the budget's latency weigh most (the floor keeps the system solvable)
        weight = np.exp(-np.abs(np.log(latencies / budget)) / self.width) + 1e-3
        predict = self._fit(x, accuracy, weight, self.local_explore)
        parents = [configs[i] for i in under[np.argsort(-accuracy[under])][: self.local_parents]]
        pool: dict[str, tuple[Any, float]] = {}
        for _ in range(self.local_generations):
            children = []
            for _ in range(self.local_children):
                parent = parents[int(self.rng.integers(len(parents)))]
                r = self.rng.random()
                if r < self.local_jump:
                    child = self._shrink(
                        self.space.mutate(parent, self.rng, self.jump_prob), budget
                    )
                elif r < 0.8:
                    child = self.space.mutate(parent, self.rng, self.local_mutation_prob)
                else:
                    other = parents[int(self.rng.integers(len(parents)))]
                    child = self._crossover(parent, other)
                key = str(child)
                if key not in seen and key not in pool and self.latency(child) <= budget:
                    children.append(child)
            if children:
                for c, sc in zip(children, predict(self._encode(children)), strict=True):
                    pool[str(c)] = (c, float(sc))
            if pool:
                top = sorted(pool.values(), key=lambda r: -r[1])[: self.local_parents]
                parents = [c for c, _ in top]
        return max(pool.values(), key=lambda r: r[1])[0] if pool else None

    def _shrink(self, config: Any, budget: float) -> Any:
        """``config`` brought under ``budget``: one choice at a time, drawn at random among
        those that differ from the space's smallest config, set to the smallest's."""
        params, small = self.space.trial_params(config), self._smallest_params
        while self.latency(config) > budget:
            differ = [k for k in params if k in small and params[k] != small[k]]
            if not differ:
                break
            k = differ[int(self.rng.integers(len(differ)))]
            params[k] = small[k]
            config = self.space.config_from_params(params)
        return config
