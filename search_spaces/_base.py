"""The search-space contract every space implements; the engine never special-cases a space."""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["LayerSpec", "SearchSpace", "ConfigT"]

ConfigT = TypeVar("ConfigT")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One priced layer: an op, its input/output shapes and its attributes.

    ``key`` is the latency-table key (OFA's grammar), e.g.
    ``expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:0``.
    """

    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    attrs: tuple[tuple[str, int], ...] = ()
    #: the layer's precision (``fp32``, ``fp16``, ``int8``); None: the device's default
    dtype: str | None = None

    @property
    def key(self) -> str:
        parts = [
            self.op,
            "input:" + "x".join(map(str, self.input_shape)),
            "output:" + "x".join(map(str, self.output_shape)),
        ]
        parts += [f"{name}:{value}" for name, value in self.attrs]
        return "-".join(parts)

    def attr(self, name: str) -> int:
        return dict(self.attrs)[name]


class SearchSpace(abc.ABC, Generic[ConfigT]):
    """A search space: how to sample, encode, price and build architecture configs.

    Implementations are immutable after construction and safe to share between threads;
    every random choice comes from the generator or trial passed in.
    """

    #: the registry name, e.g. ``"ofa_mbv3"``
    name: str

    @abc.abstractmethod
    def suggest(self, trial: optuna.trial.BaseTrial) -> ConfigT:
        """Sample a config through Optuna distributions (define-by-run)."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> ConfigT:
        """Sample a config uniformly with the given generator."""

    @abc.abstractmethod
    def encode(self, config: ConfigT) -> np.ndarray:
        """A fixed-length float vector (``encoding_size``) for accuracy predictors."""

    @property
    @abc.abstractmethod
    def encoding_size(self) -> int:
        """Length of :meth:`encode`'s vector."""

    @abc.abstractmethod
    def layers(self, config: ConfigT) -> list[LayerSpec]:
        """What the latency table prices, one entry per layer, in execution order."""

    @abc.abstractmethod
    def macs(self, config: ConfigT) -> int:
        """Multiply-accumulates of one forward pass at batch 1."""

    @abc.abstractmethod
    def params(self, config: ConfigT) -> int:
        """Parameter count of the built subnet (computed without building it)."""

    @abc.abstractmethod
    def all_layers(self, resolution: int) -> list[LayerSpec]:
        """Every distinct layer any config of this space can produce at ``resolution``
        (what a latency calibration must measure), without duplicates."""

    @abc.abstractmethod
    def build(self, config: ConfigT, weights: Any = None) -> torch.nn.Module:
        """A standalone, exportable subnet; ``weights`` is a supernet state dict (or None)."""

    @abc.abstractmethod
    def parse(self, text: str) -> ConfigT:
        """The inverse of ``str(config)``; raises ``ConfigError`` naming what is wrong."""

    @abc.abstractmethod
    def validate(self, config: ConfigT) -> ConfigT:
        """Return ``config`` if it is in the space, else raise ``ConfigError`` naming the field."""

    @abc.abstractmethod
    def largest(self) -> ConfigT:
        """The largest config (every dimension at its maximum)."""

    @abc.abstractmethod
    def smallest(self) -> ConfigT:
        """The smallest config (every dimension at its minimum)."""

    def config_from_params(self, params: dict[str, Any]) -> ConfigT:
        """Rebuild a config from an Optuna trial's ``params`` (as recorded by :meth:`suggest`)."""
        import optuna

        return self.suggest(optuna.trial.FixedTrial(params))

    @abc.abstractmethod
    def trial_params(self, config: ConfigT) -> dict[str, Any]:
        """Optuna parameters that make :meth:`suggest` return ``config`` (what
        ``study.enqueue_trial`` takes); the inverse of :meth:`config_from_params`."""

    @abc.abstractmethod
    def mutate(self, config: ConfigT, rng: np.random.Generator, prob: float) -> ConfigT:
        """A neighbour of ``config``: every choice redrawn with probability ``prob``."""

    def resolve(self, text: str) -> ConfigT:
        """``largest``, ``smallest`` or a config string."""
        if text == "largest":
            return self.largest()
        if text == "smallest":
            return self.smallest()
        return self.parse(text)
