"""The search-space contract every space implements; the engine never special-cases a space."""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from nas.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = [
    "ConfigT",
    "LayerSpec",
    "Prunable",
    "SearchSpace",
    "Shrinkable",
    "Unit",
    "WeightSharing",
    "load_supernet_weights",
]

ConfigT = TypeVar("ConfigT")


#: the ops LiteRT runs where int8 and float layers meet: priced layers of their own in a
#: mixed-precision config (``nas.latency.boundary_layers``), timed as one-op files
#: (``nas.export.boundary_tflite``)
BOUNDARY_OPS = ("quantize", "dequantize")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One priced layer: an op, its input/output shapes and its attributes.

    ``key`` is the latency-table key (OFA's grammar), e.g.
    ``expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:0``.
    ``dtype`` is the precision this layer runs at (``"fp32"``, ``"fp16"``, ``"int8"``), or None
    for the device's default precision; it is not part of ``key`` (whoever prices the layer
    appends ``-dtype:<dtype>`` as its table wants).
    """

    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    attrs: tuple[tuple[str, int], ...] = ()
    dtype: str | None = None

    @functools.cached_property  # a search prices the same layers thousands of times
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

    Contract (every implementation, wrappers included):

    - A config is an immutable value (a frozen dataclass): equal configs are equal, hash
      equally and have the same ``str``; ``parse(str(c)) == c`` for every ``c`` in the space.
      ``str(c)`` is short, human-readable and stable across versions (MLflow shows it, tables
      and checkpoints store it).
    - Methods that take a config may assume it is in the space (``validate`` passed) unless they
      say otherwise; ``validate`` and ``parse`` are the only ones that must check, and they raise
      ``ConfigError`` whose message names the offending field.
    - Every random choice comes from the generator or trial passed in: ``sample(rng)`` with two
      generators seeded alike returns equal configs; nothing reads global random state.
    - ``suggest`` asks the same parameter names with the same distributions on every call (a
      fixed parameter set keeps multivariate samplers on one space); ``trial_params(c)`` are
      parameters for which ``suggest`` returns exactly ``c``.
    - ``build(c)`` returns a standalone ``torch.nn.Module`` that maps a batch of inputs of shape
      ``(N, *input_shape(c))`` to logits of shape ``(N, n_classes)``; ``params(c)`` and
      ``macs(c)`` are computed without building (exactly what ``build`` returns where
      ``exact_counts`` says so).
    - ``layers(c)`` lists what latency tables price, in execution order; ``all_layers(r)`` holds
      every layer (by key and dtype) any config at input resolution ``r`` produces, where
      ``enumerable_layers`` says so.
    - The registry factory of a space takes the keyword options ``n_classes`` and
      ``in_channels`` (what a dataset fixes); ``options`` rebuilds the same space.

    A space is immutable after construction and safe to share between threads; the engine never
    asks which space it has, only which optional capabilities it declares
    (:class:`WeightSharing`, :class:`Prunable`), by ``isinstance``.
    """

    #: the registry name, e.g. ``"ofa_mbv3"``; latency tables are looked up under it
    name: str

    #: True when ``macs(c)`` and ``params(c)`` equal what a FLOP counter (multiply-adds of
    #: convolutions and linear layers) and ``sum(p.numel())`` measure on ``build(c)``
    exact_counts: bool = False

    #: True when ``all_layers(r)`` lists every layer of every config at resolution ``r``
    #: (False where the layers are too many to enumerate and are priced on demand)
    enumerable_layers: bool = True

    @abc.abstractmethod
    def suggest(self, trial: optuna.trial.BaseTrial) -> ConfigT:
        """Sample a config through Optuna distributions (define-by-run)."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> ConfigT:
        """Sample a config with the given generator (reproducible for a seeded generator)."""

    @abc.abstractmethod
    def encode(self, config: ConfigT) -> np.ndarray:
        """A fixed-length float vector (``encoding_size``) for accuracy predictors."""

    @property
    @abc.abstractmethod
    def encoding_size(self) -> int:
        """Length of :meth:`encode`'s vector."""

    @property
    @abc.abstractmethod
    def n_classes(self) -> int:
        """Number of logits :meth:`build`'s model returns per input."""

    @property
    @abc.abstractmethod
    def resolutions(self) -> tuple[int, ...]:
        """Every input resolution (height = width) a config of this space may have, ascending."""

    @abc.abstractmethod
    def input_shape(self, config: ConfigT) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one input image of ``config``'s model."""

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

    def layer_module(self, layer: LayerSpec) -> torch.nn.Module:
        """``layer`` (as ``layers(c)`` lists it) alone, as a freshly initialized module in eval
        mode taking NCHW input of shape ``(C, H, W)`` = ``layer.input_shape`` reordered: what a
        per-layer latency table times (calibration, host re-timing). A space priced otherwise
        (a whole-architecture table) need not implement it.

        Raises:
            ConfigError: the space cannot build its layers alone, or ``layer`` is not its.
        """
        raise ConfigError(
            f"{self.name}: this space cannot build its layers alone, so per-layer tables "
            "cannot be calibrated for it (price it with an arch_table)"
        )

    @staticmethod
    def owning_layer(module: str, paths: list[str]) -> int | None:
        """The index in ``paths`` (a config's ``layer_paths``) of the layer that submodule
        ``module`` belongs to: the longest path that is ``module`` or contains it."""
        best = None
        for i, path in enumerate(paths):
            if (module == path or module.startswith(path + ".")) and (
                best is None or len(path) > len(paths[best])
            ):
                best = i
        return best

    def layer_paths(self, config: ConfigT) -> list[str]:
        """For each of ``layers(config)``, in order, the path of the submodule of
        ``build(config)`` (and of an extracted subnet) that computes it
        (``model.get_submodule(path)``): what per-layer precision is applied to, in the
        simulation and in the exported file.

        Raises:
            ConfigError: the space cannot say (its layers are not submodules of its models).
        """
        raise ConfigError(f"{self.name}: this space does not map its layers to submodules")

    def layer_dtypes(self, config: ConfigT) -> dict[str, str] | None:
        """Submodule path (``layer_paths``) -> precision of each layer, when the config gives
        its layers precisions (``LayerSpec.dtype``; a layer without one is fp32); None when
        no layer has one (the model runs at the device's precision)."""
        layers = self.layers(config)
        if all(layer.dtype is None for layer in layers):
            return None
        paths = self.layer_paths(config)
        return {path: layer.dtype or "fp32" for path, layer in zip(paths, layers, strict=True)}

    @abc.abstractmethod
    def build(self, config: ConfigT, weights: Any = None) -> torch.nn.Module:
        """A standalone, exportable subnet in eval mode; ``weights`` is a supernet state dict
        (spaces that declare :class:`WeightSharing`) or None (freshly initialized)."""

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
        """A neighbour of ``config`` in the space: every choice redrawn with probability
        ``prob`` (``prob == 0`` returns ``config``)."""

    def fields(self, config: ConfigT) -> dict[str, Any]:
        """The config's fields as JSON-able values (what tracking logs as parameters)."""
        return {f.name: _jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}

    @property
    def options(self) -> dict[str, Any]:
        """Keyword options that rebuild this space from its registry factory
        (``SPACES.create(name, **options)``); stored beside supernet checkpoints."""
        return {}

    def resolve(self, text: str) -> ConfigT:
        """``largest``, ``smallest`` or a config string."""
        if text == "largest":
            return self.largest()
        if text == "smallest":
            return self.smallest()
        return self.parse(text)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class WeightSharing(abc.ABC, Generic[ConfigT]):
    """Capability: the space's subnets share the weights of one supernet.

    Contract: ``supernet()`` returns a fresh module every call (the caller owns it);
    ``load_supernet(supernet, state_dict)`` loads strictly (a missing, unexpected or misshapen
    tensor raises ``CheckpointError`` naming it); ``activate`` changes only which subnet the
    supernet's forward runs (no weights change), so it is not thread-safe on a shared supernet;
    ``extract(supernet, c)`` returns a standalone copy (eval mode) that shares no tensor with the
    supernet, and equals ``build(c, supernet.state_dict())`` output for output.
    """

    @abc.abstractmethod
    def supernet(self) -> torch.nn.Module:
        """A freshly initialized supernet that holds every subnet of the space."""

    @abc.abstractmethod
    def load_supernet(self, supernet: torch.nn.Module, state_dict: dict[str, Any]) -> None:
        """Strictly load ``state_dict`` into ``supernet`` (raises ``CheckpointError``)."""

    @abc.abstractmethod
    def activate(self, supernet: torch.nn.Module, config: ConfigT) -> None:
        """Make ``supernet``'s forward run ``config``'s subnet (in place)."""

    @abc.abstractmethod
    def extract(self, supernet: torch.nn.Module, config: ConfigT) -> torch.nn.Module:
        """A standalone subnet of ``config`` with the supernet's weights, in eval mode."""


class Scalable(abc.ABC, Generic[ConfigT]):
    """Capability: a config scaled in depth, width and input resolution, as EfficientNet's
    compound scaling does (Tan & Le, ICML 2019).

    Contract: ``scale(c, depth, width, resolution)`` is a valid config of the space: every
    stage's depth times ``depth``, every block's width times ``width`` and the resolution times
    ``resolution``, each rounded to the nearest choice the space has (ties to the smaller);
    ``scale(c, 1, 1, 1) == c``; no multiplier that grows makes a value shrink.
    """

    @abc.abstractmethod
    def scale(self, config: ConfigT, depth: float, width: float, resolution: float) -> ConfigT:
        """``config`` scaled by the three multipliers."""


class Shrinkable(abc.ABC):
    """Capability: named elastic dimensions whose choices can be narrowed (what progressive
    shrinking trains phase by phase: first the largest kernels only, then more, ...).

    Contract: ``dimensions()`` maps each dimension name to its choices, ascending;
    ``restrict(**choices)`` returns a new space (same ``name``, same supernet) whose configs
    take only the given choices in the named dimensions (each a non-empty subset of the
    dimension's choices; unnamed dimensions keep theirs; an unknown name or choice raises
    ``ConfigError`` naming it). Every config of the restricted space is in this space. The
    restricted space samples from the choices in the order given; it is for sampling
    (its ``encode`` need not match this space's). ``restrict`` leaves this space unchanged and
    is thread-safe.
    """

    @abc.abstractmethod
    def dimensions(self) -> dict[str, tuple[int, ...]]:
        """Each elastic dimension's choices, ascending."""

    @abc.abstractmethod
    def restrict(self, **choices: tuple[int, ...]) -> SearchSpace:
        """The sub-space whose named dimensions take only ``choices``."""


@dataclasses.dataclass(frozen=True)
class Unit:
    """One prunable layer of a config: filters of ``name`` may be removed.

    ``layer_index``: its entry in ``space.layers(config)``; ``width``: its filters unpruned;
    ``slot``: a name stable across configs (the same place in the architecture), with
    ``max_width`` the largest ``width`` it has in any config; ``excluded``: widths it may not
    take (e.g. where the table key could not tell the layer from another).
    """

    name: str
    layer_index: int
    in_channels: int
    width: int
    slot: str
    max_width: int
    excluded: tuple[int, ...] = ()


class Prunable(abc.ABC, Generic[ConfigT]):
    """Capability: filters of some layers of a config can be removed (structured pruning).

    Contract: ``units(c)`` is deterministic and lists the prunable layers of ``c`` in execution
    order; ``unit_slots()`` lists every slot any config's unit may have (``slot -> max_width``).
    ``pruned_layers/macs/params(c, widths)`` describe ``c`` with unit ``i`` at ``widths[i]``
    (``widths`` as long as ``units(c)``, each in ``1..unit.width``) without building it.
    The surgery methods take a model built by ``build(c)`` (or one already pruned by them) and
    change it in place, keeping the filters with the largest ``scores`` (default
    :meth:`filter_norms`), so that after ``prune_unit`` for every unit the model equals what
    ``pruned_layers`` describes and its parameter count is ``pruned_params``. ``unit_output``
    is the module whose output holds the unit's filters after their activation (channel dim 1),
    what data-driven importance criteria (APoZ, Taylor) read. Surgery is not thread-safe on one
    model.
    """

    @abc.abstractmethod
    def units(self, config: ConfigT) -> list[Unit]:
        """The prunable layers of ``config``, in execution order."""

    @abc.abstractmethod
    def unit_slots(self) -> dict[str, int]:
        """Every slot a unit of any config may occupy, with its largest width, in order."""

    @abc.abstractmethod
    def pruned_layers(self, config: ConfigT, widths: tuple[int, ...]) -> list[LayerSpec]:
        """``layers(config)`` with every unit at its width in ``widths``."""

    @abc.abstractmethod
    def pruned_macs(self, config: ConfigT, widths: tuple[int, ...]) -> int:
        """``macs`` of ``config`` pruned to ``widths``."""

    @abc.abstractmethod
    def pruned_params(self, config: ConfigT, widths: tuple[int, ...]) -> int:
        """``params`` of ``config`` pruned to ``widths``."""

    @abc.abstractmethod
    def filter_norms(self, model: torch.nn.Module, unit: str) -> torch.Tensor:
        """Importance of each output filter of unit ``unit`` (higher is kept first)."""

    @abc.abstractmethod
    def unit_output(self, model: torch.nn.Module, unit: str) -> torch.nn.Module:
        """The module of ``model`` whose output is unit ``unit``'s activated filters (NCHW)."""

    @abc.abstractmethod
    def prune_unit(
        self,
        model: torch.nn.Module,
        unit: str,
        width: int,
        scores: torch.Tensor | None = None,
    ) -> None:
        """Keep the ``width`` filters of ``unit`` with the largest ``scores`` (one per filter;
        default :meth:`filter_norms`) and slice every consumer to match (in place)."""

    @abc.abstractmethod
    def widths_of(self, model: torch.nn.Module, config: ConfigT) -> tuple[int, ...]:
        """The widths ``model`` (a possibly pruned subnet of ``config``) has, unit by unit."""


def load_supernet_weights(supernet: torch.nn.Module, state_dict: dict, space_name: str) -> None:
    """Strictly load a supernet state dict; a mismatch is a ``CheckpointError`` naming tensors."""
    own = supernet.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(
        k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape)
    )
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shape", wrong),
            )
            if keys
        )
        raise CheckpointError(f"weights do not fit the {space_name} supernet ({detail})")
    supernet.load_state_dict(state_dict)
