"""``pruned(base)``: the channel-pruned subnets of a :class:`Prunable` space (NetAdapt's space).

A config is a base config plus the width of every prunable unit of it; it is priced, built and
counted through the base's ``Prunable`` capability, so pruned layers live in the base space's
latency tables (their keys carry the shapes) and the space keeps the base's ``name``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError
from search_spaces._base import LayerSpec, Prunable, SearchSpace, Unit, WeightSharing
from search_spaces._wrapper import SharedSupernet, SpaceWrapper

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["PrunedConfig", "PrunedSpace", "pruned"]


@dataclasses.dataclass(frozen=True)
class PrunedConfig:
    """A base config and the width of each of its prunable units. String form: the base config,
    then ``_p`` and the widths joined by ``-`` (e.g. ``r28_k77e66_..._p96-144-...-384-512``)."""

    base: Any
    widths: tuple[int, ...]

    @property
    def resolution(self) -> int:
        """Deprecated: use ``space.input_shape(config)``; kept while callers move over."""
        return self.base.resolution

    def __str__(self) -> str:
        return f"{self.base}_p{'-'.join(map(str, self.widths))}"

    def fields(self) -> dict[str, Any]:
        base = self.base.fields() if hasattr(self.base, "fields") else {"base": str(self.base)}
        return {**base, "widths": list(self.widths)}


_PRUNED_RE = re.compile(r"(.+)_p(\d+(?:-\d+)*)")


class PrunedSpace(SpaceWrapper[PrunedConfig]):
    """Channel-pruned configs of ``base`` (see the module docstring); widths are multiples of
    ``channel_step`` (or a unit's full width) and never one of a unit's excluded widths.

    Optuna parameters: the base's, plus ``w_<slot>`` per unit slot of the base (an int on the
    channel grid up to the slot's largest width; values above a unit's width mean unpruned).
    With ``shares`` (e.g. ``(0.5, 0.75, 1.0)``: shares of a slot's largest width, as APQ and AMC
    search widths), a unit's widths are those shares on the channel grid, up to its own width
    (a unit narrower than a share is at full width there), and the parameter is ``s_<slot>``
    (categorical over ``shares``); sampling and mutation draw from them too. Without, every
    width on the grid (NetAdapt's space).
    ``all_layers`` returns the base's catalogue only: pruned widths are too many to enumerate,
    their table entries are measured on demand (``nas.latency`` ``fill_missing``).
    Immutable and thread-safe like its base.
    """

    config_type = PrunedConfig
    what = "a pruned config"

    def __init__(
        self, base: SearchSpace, channel_step: int = 8, shares: tuple[float, ...] | None = None
    ) -> None:
        if not isinstance(base, Prunable):
            raise TypeError(f"base: {type(base).__name__} does not declare the Prunable capability")
        if channel_step < 1:
            raise ValueError(f"`channel_step >= 1` must hold, but got {channel_step=}")
        if shares is not None and (
            not shares or max(shares) != 1.0 or min(shares) <= 0 or len(set(shares)) != len(shares)
        ):
            raise ValueError(f"shares: distinct values in (0, 1] including 1.0, got {shares}")
        super().__init__(base)
        self.channel_step = channel_step
        self.shares = tuple(sorted(shares)) if shares is not None else None
        self._slots = base.unit_slots()

    # ---- units ---------------------------------------------------------------------------
    def units(self, config: Any) -> list[Unit]:
        """The prunable units of a *base* config."""
        return self.base.units(config)

    def unpruned(self, config: Any) -> PrunedConfig:
        """``config`` (a base config) with every unit at its full width."""
        return PrunedConfig(config, tuple(u.width for u in self.units(config)))

    def allowed(self, unit: Unit, width: int) -> bool:
        """Widths on the channel grid, at least one step, never an excluded one."""
        return (
            width >= self.channel_step
            and width % self.channel_step == 0
            and width not in unit.excluded
        )

    def smaller_widths(self, config: PrunedConfig, index: int) -> list[int]:
        """Allowed widths of unit ``index`` below its current one, largest first."""
        unit = self.units(config.base)[index]
        top = (config.widths[index] - 1) // self.channel_step * self.channel_step
        return [w for w in range(top, 0, -self.channel_step) if self.allowed(unit, w)]

    def with_width(self, config: PrunedConfig, index: int, width: int) -> PrunedConfig:
        widths = list(config.widths)
        widths[index] = width
        return self.validate(PrunedConfig(config.base, tuple(widths)))

    def uniform(self, config: Any, multiplier: float) -> PrunedConfig:
        """Every unit's width times ``multiplier``, on the channel grid (the width-multiplier
        baseline); a width that is not allowed goes one step up."""
        from search_spaces._mbv3 import make_divisible

        widths = []
        for unit in self.units(config):
            new = min(unit.width, make_divisible(unit.width * multiplier, self.channel_step))
            if not self.allowed(unit, new):
                new += self.channel_step
            widths.append(min(new, unit.width))
        return PrunedConfig(config, tuple(widths))

    def _fit(self, unit: Unit, width: int) -> int:
        """The nearest valid width of ``unit`` at or above ``width`` (its full width at most)."""
        while width < unit.width and not self.allowed(unit, width):
            width += self.channel_step
        return min(width, unit.width)

    def _share_width(self, unit: Unit, share: float) -> int:
        """``share`` of the slot's largest width, on the channel grid (a valid width of the
        unit, its own width at most)."""
        step = self.channel_step
        return self._fit(unit, max(step, round(share * unit.max_width / step) * step))

    def _options(self, unit: Unit) -> list[int]:
        if self.shares is not None:
            return sorted({self._share_width(unit, s) for s in self.shares})
        top = (unit.width - 1) // self.channel_step * self.channel_step
        grid = range(self.channel_step, top + 1, self.channel_step)
        return [w for w in grid if self.allowed(unit, w)] + [unit.width]

    def _grid_top(self, slot: str) -> int:
        return math.ceil(self._slots[slot] / self.channel_step) * self.channel_step

    # ---- surgery (through the base's Prunable capability) --------------------------------
    def prune_unit(
        self,
        model: torch.nn.Module,
        unit: str,
        width: int,
        scores: torch.Tensor | None = None,
    ) -> None:
        self.base.prune_unit(model, unit, width, scores)

    def unit_output(self, model: torch.nn.Module, unit: str) -> torch.nn.Module:
        return self.base.unit_output(model, unit)

    def filter_norms(self, model: torch.nn.Module, unit: str) -> torch.Tensor:
        return self.base.filter_norms(model, unit)

    def prune_to(self, model: torch.nn.Module, config: PrunedConfig) -> torch.nn.Module:
        """Prune ``model`` (built from ``config.base``, or less pruned) to ``config``."""
        for unit, width in zip(self.units(config.base), config.widths, strict=True):
            self.base.prune_unit(model, unit.name, width)
        return model

    def widths_of(self, model: torch.nn.Module, config: PrunedConfig) -> tuple[int, ...]:
        return self.base.widths_of(model, config.base)

    # ---- the SearchSpace contract --------------------------------------------------------
    @property
    def enumerable_layers(self) -> bool:  # type: ignore[override]
        return False  # pruned widths are measured on demand

    def validate(self, config: PrunedConfig) -> PrunedConfig:
        self._check_base(config)
        units = self.units(config.base)
        if not isinstance(config.widths, tuple) or len(config.widths) != len(units):
            n = len(config.widths) if isinstance(config.widths, tuple) else config.widths
            raise ConfigError(
                f"{config}: widths: {n} given, {config.base} has {len(units)} prunable layers"
            )
        for unit, w in zip(units, config.widths, strict=True):
            if w > unit.width or not (w == unit.width or self.allowed(unit, w)):
                raise ConfigError(
                    f"{config}: widths: width {w} of {unit.name} must be <= {unit.width}, a "
                    f"multiple of {self.channel_step} and not one of {list(unit.excluded)}"
                )
        return config

    def parse(self, text: str) -> PrunedConfig:
        m = _PRUNED_RE.fullmatch(text.strip())
        if m is None:
            return self.unpruned(self.base.resolve(text))
        base = self.base.resolve(m.group(1))
        return self.validate(PrunedConfig(base, tuple(int(w) for w in m.group(2).split("-"))))

    def largest(self) -> PrunedConfig:
        return self.unpruned(self.base.largest())

    def smallest(self) -> PrunedConfig:
        base = self.base.smallest()
        return PrunedConfig(base, tuple(self._options(u)[0] for u in self.units(base)))

    def suggest(self, trial: optuna.trial.BaseTrial) -> PrunedConfig:
        base = self.base.suggest(trial)
        units = self.units(base)
        # every slot is asked, used or not: a fixed parameter set (see SearchSpace)
        if self.shares is not None:
            kept = {
                slot: trial.suggest_categorical(f"s_{slot}", list(self.shares))
                for slot in self._slots
            }
            return PrunedConfig(base, tuple(self._share_width(u, kept[u.slot]) for u in units))
        asked = {
            slot: trial.suggest_int(
                f"w_{slot}", self.channel_step, self._grid_top(slot), step=self.channel_step
            )
            for slot in self._slots
        }
        return PrunedConfig(base, tuple(self._fit(u, asked[u.slot]) for u in units))

    def trial_params(self, config: PrunedConfig) -> dict[str, Any]:
        params = dict(self.base.trial_params(config.base))
        if self.shares is not None:  # the share whose width is nearest each unit's
            params.update({f"s_{slot}": 1.0 for slot in self._slots})
            for unit, width in zip(self.units(config.base), config.widths, strict=True):
                params[f"s_{unit.slot}"] = min(
                    self.shares, key=lambda s: (abs(self._share_width(unit, s) - width), -s)
                )
            return params
        params.update({f"w_{slot}": self._grid_top(slot) for slot in self._slots})
        for unit, width in zip(self.units(config.base), config.widths, strict=True):
            if width < unit.width:  # a full width may be off the grid: the top maps to it
                params[f"w_{unit.slot}"] = width
        return params

    def sample(self, rng: np.random.Generator) -> PrunedConfig:
        base = self.base.sample(rng)
        units = self.units(base)
        return PrunedConfig(base, tuple(int(rng.choice(self._options(u))) for u in units))

    def mutate(self, config: PrunedConfig, rng: np.random.Generator, prob: float) -> PrunedConfig:
        base = self.base.mutate(config.base, rng, prob)
        old = {u.slot: w for u, w in zip(self.units(config.base), config.widths, strict=True)}
        widths = []
        for unit in self.units(base):
            width = self._fit(unit, old.get(unit.slot, unit.width))
            if rng.random() < prob:
                width = int(rng.choice(self._options(unit)))
            widths.append(width)
        return PrunedConfig(base, tuple(widths))

    @property
    def encoding_size(self) -> int:
        return self.base.encoding_size + len(self._slots)

    def encode(self, config: PrunedConfig) -> np.ndarray:
        """The base's encoding, then each slot's width as a share of its largest (0: absent)."""
        share = dict.fromkeys(self._slots, 0.0)
        for unit, width in zip(self.units(config.base), config.widths, strict=True):
            share[unit.slot] = width / unit.max_width
        extra = np.array([share[slot] for slot in self._slots], dtype=np.float32)
        return np.concatenate([self.base.encode(config.base).astype(np.float32), extra])

    def layers(self, config: PrunedConfig) -> list[LayerSpec]:
        return self.base.pruned_layers(config.base, config.widths)

    def all_layers(self, resolution: int) -> list[LayerSpec]:
        return self.base.all_layers(resolution)

    def macs(self, config: PrunedConfig) -> int:
        return self.base.pruned_macs(config.base, config.widths)

    def params(self, config: PrunedConfig) -> int:
        return self.base.pruned_params(config.base, config.widths)

    def fields(self, config: PrunedConfig) -> dict[str, Any]:
        return {**self.base.fields(config.base), "widths": list(config.widths)}

    def build(self, config: PrunedConfig, weights: Any = None) -> torch.nn.Module:
        """The base subnet (with ``weights``), pruned to ``config`` by the base's surgery."""
        return self.prune_to(self.base.build(config.base, weights), config).eval()


class _WeightSharingPrunedSpace(SharedSupernet, PrunedSpace, WeightSharing[PrunedConfig]):
    """A pruned space over a weight-sharing base: pruned widths are not part of the supernet,
    so ``activate`` runs the unpruned base subnet and ``extract`` prunes what it extracts."""

    def extract(self, supernet: torch.nn.Module, config: PrunedConfig) -> torch.nn.Module:
        return self.prune_to(self.base.extract(supernet, config.base), config).eval()


def pruned(
    base: SearchSpace, channel_step: int = 8, shares: tuple[float, ...] | None = None
) -> PrunedSpace:
    """The pruned-width space over ``base`` (which must declare :class:`Prunable`); it declares
    :class:`WeightSharing` when ``base`` does."""
    cls = _WeightSharingPrunedSpace if isinstance(base, WeightSharing) else PrunedSpace
    return cls(base, channel_step, shares)
