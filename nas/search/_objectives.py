"""What a study optimizes (``search.objective``): the Pareto objectives of ``search.objectives``,
or one reward that folds accuracy and the target device's latency into a single number
(MnasNet's, Tan et al., CVPR 2019). Whatever the objective, every trial keeps its accuracy and
latencies as attributes, so the fronts the search exports are drawn from all of its trials."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from nas.registry import OBJECTIVES

__all__ = ["MnasNetHard", "MnasNetSoft", "Objective", "ParetoObjective", "make_objective"]

#: the figures of a trial an objective may read: accuracy (top-1, 0-1), latency (the first
#: device's ms), params, macs and size (KiB of its TFLite file, predicted from the config:
#: ``nas.export.predicted_size_bytes``)
FIGURES = ("accuracy", "latency", "params", "macs", "size")


class Objective(abc.ABC):
    """How a trial's figures become the study's values; registered in
    ``nas.registry.OBJECTIVES`` and built with the study's ``SearchSpec``.

    Contract:
    - ``directions`` (``"maximize"`` / ``"minimize"`` each) is fixed for a study: the driver
      creates the Optuna study with it, and a resumed study must find the same.
    - ``values(figures)`` returns one float per direction from a mapping with every key of
      :data:`FIGURES`; it is a pure function (the same figures give the same values), finite
      for any accuracy in [0, 1] and any latency > 0.
    - ``needs_target``: the objective reads ``search.target_latency_ms`` (the spec refuses a
      study without it).
    """

    needs_target: bool = False

    def __init__(self, search: Any) -> None:
        self.search = search

    @property
    @abc.abstractmethod
    def directions(self) -> list[str]:
        """One Optuna direction per value."""

    @abc.abstractmethod
    def values(self, figures: Mapping[str, float]) -> list[float]:
        """The study's values of a trial with these figures."""


@OBJECTIVES.register("pareto")
class ParetoObjective(Objective):
    """The Pareto search: ``search.objectives`` (accuracy maximized; latency, params, macs,
    size minimized), one value each."""

    DIRECTIONS = {
        "accuracy": "maximize",
        "latency": "minimize",
        "params": "minimize",
        "macs": "minimize",
        "size": "minimize",
    }

    @property
    def directions(self) -> list[str]:
        return [self.DIRECTIONS[o] for o in self.search.objectives]

    def values(self, figures: Mapping[str, float]) -> list[float]:
        return [float(figures[o]) for o in self.search.objectives]


class _MnasNetReward(Objective):
    """MnasNet's reward ``ACC x (LAT / T) ** w`` with ``T = search.target_latency_ms``: one value,
    maximized."""

    needs_target = True

    @property
    def directions(self) -> list[str]:
        return ["maximize"]

    @abc.abstractmethod
    def exponent(self, ratio: float) -> float:
        """``w`` for a trial whose latency is ``ratio`` times the target."""

    def values(self, figures: Mapping[str, float]) -> list[float]:
        ratio = float(figures["latency"]) / self.search.target_latency_ms
        return [float(figures["accuracy"]) * ratio ** self.exponent(ratio)]


@OBJECTIVES.register("mnasnet-soft")
class MnasNetSoft(_MnasNetReward):
    """The soft constraint: ``w = -0.07`` on both sides of the target (the paper's choice: a
    model twice as slow must be about 5% more accurate to be worth as much)."""

    W = -0.07

    def exponent(self, ratio: float) -> float:
        return self.W


@OBJECTIVES.register("mnasnet-hard")
class MnasNetHard(_MnasNetReward):
    """The hard constraint: ``w = 0`` at or below the target (accuracy alone), ``-1`` above it
    (the reward falls as fast as the latency grows)."""

    def exponent(self, ratio: float) -> float:
        return 0.0 if ratio <= 1.0 else -1.0


def make_objective(search: Any) -> Objective:
    """The objective a ``SearchSpec`` names (``search.objective``).

    Raises:
        RegistryError: no objective is registered under that name.
    """
    return OBJECTIVES.create(search.objective, search)
