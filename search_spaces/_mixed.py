"""``mixed_precision(base)``: a base config plus one precision per priced layer.

The model is the base's (precision is applied when it is exported); ``layers(config)`` are the
base's layers, each carrying its precision in ``LayerSpec.dtype``, so a per-layer latency table
prices each layer at its own precision.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError
from search_spaces._base import LayerSpec, SearchSpace, WeightSharing
from search_spaces._wrapper import SharedSupernet, SpaceWrapper

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["DTYPE_CODES", "MixedConfig", "MixedPrecisionSpace", "mixed_precision"]

#: one letter per precision in a config's string form
DTYPE_CODES = {"fp32": "f", "fp16": "h", "bf16": "b", "int8": "i", "int4": "c"}
_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}


@dataclasses.dataclass(frozen=True)
class MixedConfig:
    """A base config and the precision of each of its priced layers (in ``layers`` order).

    String form: the base config, ``_q``, then runs of ``<letter><count>`` (letters in
    :data:`DTYPE_CODES`), e.g. ``<base>_qf2i17h2``: two fp32 layers, then 17 int8 layers, then
    two fp16 layers.
    """

    base: Any
    dtypes: tuple[str, ...]

    @property
    def resolution(self) -> int:
        """Deprecated: use ``space.input_shape(config)``; kept while callers move over."""
        return self.base.resolution

    def __str__(self) -> str:
        runs = (
            f"{DTYPE_CODES.get(d, '?')}{len(list(group))}"
            for d, group in itertools.groupby(self.dtypes)
        )
        return f"{self.base}_q{''.join(runs)}"

    def fields(self) -> dict[str, Any]:
        base = self.base.fields() if hasattr(self.base, "fields") else {"base": str(self.base)}
        return {**base, "dtypes": list(self.dtypes)}


_MIXED_RE = re.compile(r"(.+)_q((?:[a-z]\d+)+)")
_RUN_RE = re.compile(r"([a-z])(\d+)")


class MixedPrecisionSpace(SpaceWrapper[MixedConfig]):
    """Per-layer precision over ``base``; ``dtypes`` ordered from widest to narrowest
    (``largest`` runs every layer at the first, ``smallest`` at the last).

    Optuna parameters: the base's, plus ``q<i>`` (categorical over ``dtypes``) for every layer
    index up to the number of layers of ``base.largest()``, which must be the most any config
    has. A config string without ``_q`` parses as every layer at the first dtype.
    Immutable and thread-safe like its base.
    """

    config_type = MixedConfig
    what = "a mixed-precision config"

    def __init__(
        self, base: SearchSpace, dtypes: tuple[str, ...] = ("fp32", "fp16", "int8")
    ) -> None:
        dtypes = tuple(dtypes)
        unknown = [d for d in dtypes if d not in DTYPE_CODES]
        if not dtypes or unknown or len(set(dtypes)) != len(dtypes):
            raise ValueError(
                f"dtypes: must be distinct names from {sorted(DTYPE_CODES)}, but got {dtypes}"
            )
        super().__init__(base)
        self.dtypes = dtypes
        self._slots = len(base.layers(base.largest()))

    def uniform(self, base_config: Any, dtype: str) -> MixedConfig:
        """``base_config`` with every layer at ``dtype``."""
        return MixedConfig(base_config, (dtype,) * len(self.base.layers(base_config)))

    # ---- the SearchSpace contract --------------------------------------------------------
    @property
    def enumerable_layers(self) -> bool:  # type: ignore[override]
        return self.base.enumerable_layers

    def validate(self, config: MixedConfig) -> MixedConfig:
        self._check_base(config)
        n = len(self.base.layers(config.base))
        if not isinstance(config.dtypes, tuple) or len(config.dtypes) != n:
            got = len(config.dtypes) if isinstance(config.dtypes, tuple) else config.dtypes
            raise ConfigError(f"{config.base}: dtypes: {got} given, the config has {n} layers")
        for i, dtype in enumerate(config.dtypes):
            if dtype not in self.dtypes:
                raise ConfigError(
                    f"{config.base}: dtypes: layer {i + 1} precision {dtype!r} not in "
                    f"{list(self.dtypes)}"
                )
        return config

    def parse(self, text: str) -> MixedConfig:
        m = _MIXED_RE.fullmatch(text.strip())
        if m is None:
            return self.uniform(self.base.resolve(text), self.dtypes[0])
        base = self.base.resolve(m.group(1))
        dtypes: list[str] = []
        for code, count in _RUN_RE.findall(m.group(2)):
            if code not in _DTYPES:
                raise ConfigError(
                    f"{text}: dtypes: unknown precision letter {code!r}; known: {DTYPE_CODES}"
                )
            dtypes += [_DTYPES[code]] * int(count)
        return self.validate(MixedConfig(base, tuple(dtypes)))

    def largest(self) -> MixedConfig:
        return self.uniform(self.base.largest(), self.dtypes[0])

    def smallest(self) -> MixedConfig:
        return self.uniform(self.base.smallest(), self.dtypes[-1])

    def suggest(self, trial: optuna.trial.BaseTrial) -> MixedConfig:
        base = self.base.suggest(trial)
        # every slot is asked, used or not: a fixed parameter set (see SearchSpace)
        asked = [
            trial.suggest_categorical(f"q{i + 1}", list(self.dtypes)) for i in range(self._slots)
        ]
        n = len(self.base.layers(base))
        return MixedConfig(base, tuple(asked[:n]))

    def trial_params(self, config: MixedConfig) -> dict[str, Any]:
        params = dict(self.base.trial_params(config.base))
        for i in range(self._slots):
            params[f"q{i + 1}"] = config.dtypes[i] if i < len(config.dtypes) else self.dtypes[0]
        return params

    def sample(self, rng: np.random.Generator) -> MixedConfig:
        base = self.base.sample(rng)
        n = len(self.base.layers(base))
        return MixedConfig(base, tuple(str(d) for d in rng.choice(self.dtypes, n)))

    def mutate(self, config: MixedConfig, rng: np.random.Generator, prob: float) -> MixedConfig:
        base = self.base.mutate(config.base, rng, prob)
        dtypes = []
        for i in range(len(self.base.layers(base))):
            dtype = config.dtypes[i] if i < len(config.dtypes) else self.dtypes[0]
            if rng.random() < prob:
                dtype = str(rng.choice(self.dtypes))
            dtypes.append(dtype)
        return MixedConfig(base, tuple(dtypes))

    @property
    def encoding_size(self) -> int:
        return self.base.encoding_size + self._slots * len(self.dtypes)

    def encode(self, config: MixedConfig) -> np.ndarray:
        """The base's encoding, then one-hot precision per layer slot (absent layers: zeros)."""
        extra = np.zeros(self._slots * len(self.dtypes), dtype=np.float32)
        for i, dtype in enumerate(config.dtypes):
            extra[i * len(self.dtypes) + self.dtypes.index(dtype)] = 1.0
        return np.concatenate([self.base.encode(config.base).astype(np.float32), extra])

    def layers(self, config: MixedConfig) -> list[LayerSpec]:
        layers = self.base.layers(config.base)
        return [
            dataclasses.replace(layer, dtype=dtype)
            for layer, dtype in zip(layers, config.dtypes, strict=True)
        ]

    def all_layers(self, resolution: int) -> list[LayerSpec]:
        return [
            dataclasses.replace(layer, dtype=dtype)
            for layer in self.base.all_layers(resolution)
            for dtype in self.dtypes
        ]

    def macs(self, config: MixedConfig) -> int:
        return self.base.macs(config.base)

    def params(self, config: MixedConfig) -> int:
        return self.base.params(config.base)

    def fields(self, config: MixedConfig) -> dict[str, Any]:
        return {**self.base.fields(config.base), "dtypes": list(config.dtypes)}

    def build(self, config: MixedConfig, weights: Any = None) -> torch.nn.Module:
        """The base's model: precisions are applied by the exporter, not in PyTorch."""
        return self.base.build(config.base, weights)


class _WeightSharingMixedPrecisionSpace(
    SharedSupernet, MixedPrecisionSpace, WeightSharing[MixedConfig]
):
    """Mixed precision over a weight-sharing base: the supernet is the base's."""

    def extract(self, supernet: torch.nn.Module, config: MixedConfig) -> torch.nn.Module:
        return self.base.extract(supernet, config.base)


def mixed_precision(
    base: SearchSpace, dtypes: tuple[str, ...] = ("fp32", "fp16", "int8")
) -> MixedPrecisionSpace:
    """Per-layer precision over ``base``; declares :class:`WeightSharing` when ``base`` does."""
    cls = (
        _WeightSharingMixedPrecisionSpace
        if isinstance(base, WeightSharing)
        else MixedPrecisionSpace
    )
    return cls(base, dtypes)
