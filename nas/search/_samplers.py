"""Samplers users pick by name (``search.sampler``): each builds the study's Optuna sampler from
a seed and may add a proposer whose configs the driver queues before it asks the sampler."""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import optuna

from nas.registry import SAMPLERS

__all__ = [
    "APQSampler",
    "GPSampler",
    "NSGA2Sampler",
    "ProposingSampler",
    "Proposer",
    "RandomSampler",
    "Sampler",
    "SurrogateSampler",
    "CompoundSampler",
    "TPESampler",
    "make_proposer",
    "make_sampler",
]


class Proposer(Protocol):
    """Proposes configs to evaluate next from the configs evaluated so far. ``warmup``: the
    trials the study completes before the driver first asks it (None: the spec's
    ``search.surrogate_warmup``)."""

    warmup: int | None

    def propose(self, evaluated: Sequence[tuple[Any, float]], n: int) -> list[Any]:
        """Up to ``n`` configs not among ``evaluated`` ((config, accuracy) pairs)."""
        ...


class Sampler(abc.ABC):
    """A search strategy registered in ``nas.registry.SAMPLERS``.

    Contract:
    - ``optuna_sampler(seed)`` returns a new ``optuna.samplers.BaseSampler`` every call. Only the
      driver calls it, once per study, and the driver alone asks and tells that study, so the
      sampler sees every running trial. With the same seed and the same sequence of asks and
      tells it suggests the same parameters (a re-run of a spec is reproducible).
    - ``proposer(space, latency, reference_ms, seed=...)`` returns a :class:`Proposer` or, by
      default, None (the Optuna sampler alone picks the trials). The driver enqueues the
      proposer's configs (``space.trial_params``) before it asks, so each proposal goes through
      the same ``space.suggest`` as any trial. ``latency(config)`` is the target device's
      predicted milliseconds; ``reference_ms`` the hypervolume reference latency.
    - A sampler holds no state of its own: ``SAMPLERS.create(name)`` builds it with no
      arguments; its state lives in what it returns.
    - ``measures_missing``: whether ``latency`` may have a host table of this machine measure
      the entries it lacks (a proposer that prices a few configs per proposal); False (the
      default) for one that rates thousands of candidates, which gets the table as it is and
      fails on a missing entry rather than measuring thousands.
    """

    measures_missing: bool = False

    @abc.abstractmethod
    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """A new Optuna sampler seeded with ``seed``."""

    def proposer(
        self,
        space: Any,
        latency: Callable[[Any], float],
        reference_ms: float,
        *,
        seed: int = 0,
        budgets_ms: Sequence[float] = (),
    ) -> Proposer | None:
        """The proposer of this strategy; None: none."""
        return None


@SAMPLERS.register("tpe")
class TPESampler(Sampler):
    """Multivariate TPE with the constant liar, so that parallel trials spread out."""

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


@SAMPLERS.register("nsga2")
class NSGA2Sampler(Sampler):
    """NSGA-II (Optuna's defaults: population 50)."""

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(seed=seed)


@SAMPLERS.register("gp")
class GPSampler(Sampler):
    """Gaussian-process Bayesian optimization."""

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(seed=seed)


@SAMPLERS.register("random")
class RandomSampler(Sampler):
    """Independent uniform draws (the baseline)."""

    def optuna_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)


class ProposingSampler(RandomSampler):
    """Random draws where the proposer has nothing to propose; the proposer is the class named
    by ``proposer_path`` (``module:Class``, imported on first use), built as
    ``Class(space, latency, reference_ms, seed=seed, budgets_ms=budgets_ms)``."""

    proposer_path: str

    def proposer(
        self,
        space: Any,
        latency: Callable[[Any], float],
        reference_ms: float,
        *,
        seed: int = 0,
        budgets_ms: Sequence[float] = (),
    ) -> Proposer:
        module, _, name = self.proposer_path.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls(space, latency, reference_ms, seed=seed, budgets_ms=budgets_ms)


@SAMPLERS.register("surrogate")
class SurrogateSampler(ProposingSampler):
    """Random draws for the warm-up and as filler, then the proposals of a ridge surrogate on
    ``encode()`` (see ``nas/search/_surrogate.py``)."""

    proposer_path = "nas.search._surrogate:SurrogateProposer"


@SAMPLERS.register("compound")
class CompoundSampler(ProposingSampler):
    """EfficientNet's compound scaling as a baseline (``nas/search/_compound.py``): a grid of
    depth/width/resolution multipliers on the space's smallest config, then the best one's
    scaled family; random draws only fill in while grid configs are being evaluated."""

    proposer_path = "nas.search._compound:CompoundProposer"


@SAMPLERS.register("apq")
class APQSampler(ProposingSampler):
    """The joint architecture / width / precision search (``nas/search/_apq.py``): an
    evolution over base configs, each layer's precision chosen from the latency table and the
    size model for a trade-off drawn per proposal; random draws only fill in."""

    proposer_path = "nas.search._apq:PrecisionProposer"
    measures_missing = True  # each proposal prices its network at each precision once


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of the strategy registered as ``name``.

    Raises:
        RegistryError: no sampler is registered as ``name`` (the message lists the known ones).
    """
    sampler: Sampler = SAMPLERS.create(name)
    return sampler.optuna_sampler(seed)


def make_proposer(
    name: str,
    space: Any,
    latency: Callable[[Any], float],
    reference_ms: float,
    *,
    seed: int,
    budgets_ms: Sequence[float] = (),
) -> Proposer | None:
    """The proposer of the strategy registered as ``name``, or None when it has none."""
    sampler: Sampler = SAMPLERS.create(name)
    return sampler.proposer(space, latency, reference_ms, seed=seed, budgets_ms=budgets_ms)
