"""Channel-pruned subnets of an elastic MobileNetV3 space: a base config plus the width of every
prunable layer, priced by the same table-key grammar as the space itself.

Prunable layers ("units"): the expanded (middle) channels of every block that has an expansion
convolution, the final expand convolution (``Conv_1``) and the feature-mix convolution
(``Conv_2``). Stage widths stay as they are: they are tied together by the residual additions.
"""

from __future__ import annotations

import dataclasses
import re

from nas.errors import ConfigError
from search_spaces import ElasticMBV3Space, LayerSpec, MBV3Config
from search_spaces._mbv3 import count_macs, count_params, make_divisible

__all__ = ["PrunedConfig", "PrunedSpace", "Unit"]


@dataclasses.dataclass(frozen=True)
class Unit:
    """One prunable layer: its name, its index in ``space.layers()``, its input channels (a
    block's middle width may not equal them: the table key could not tell the expansion apart)."""

    name: str
    layer_index: int
    in_channels: int


@dataclasses.dataclass(frozen=True)
class PrunedConfig:
    """A base subnet and the width of each prunable unit. String form: the base config, then
    ``_p`` and the widths joined by ``-`` (e.g. ``r28_k77e66_..._p96-144-...-384-512``)."""

    base: MBV3Config
    widths: tuple[int, ...]

    @property
    def resolution(self) -> int:
        return self.base.resolution

    def __str__(self) -> str:
        return f"{self.base}_p{'-'.join(map(str, self.widths))}"

    def fields(self) -> dict:
        return {**self.base.fields(), "widths": list(self.widths)}


_PRUNED_RE = re.compile(r"(.+)_p(\d+(?:-\d+)*)")


class PrunedSpace:
    """Prices and parses :class:`PrunedConfig` s of one elastic MobileNetV3 space. Its ``name``
    is the base space's: pruned layers live in the base space's tables (keys carry the shapes)."""

    def __init__(self, base: ElasticMBV3Space, channel_step: int = 8) -> None:
        self.base = base
        self.name = base.name
        self.channel_step = channel_step

    # ---- units -----------------------------------------------------------------------------
    def units(self, config: MBV3Config) -> list[Unit]:
        layers = self.base.layers(config)
        units = []
        block = 0
        for i, layer in enumerate(layers):
            if layer.op == "expanded_conv":
                if layer.attr("expand") != layer.input_shape[-1]:
                    units.append(Unit(f"blocks.{block}.mid", i, layer.input_shape[-1]))
                block += 1
            elif layer.op in ("Conv_1", "Conv_2"):
                name = "final_expand" if layer.op == "Conv_1" else "feature_mix"
                units.append(Unit(name, i, layer.input_shape[-1]))
        return units

    def unpruned(self, config: MBV3Config) -> PrunedConfig:
        layers = self.base.layers(config)
        return PrunedConfig(
            config, tuple(self._width(layers[u.layer_index]) for u in self.units(config))
        )

    @staticmethod
    def _width(layer: LayerSpec) -> int:
        return layer.attr("expand") if layer.op == "expanded_conv" else layer.output_shape[-1]

    def allowed(self, unit: Unit, width: int) -> bool:
        """Widths on the channel grid, at least one step, never equal to a block's input."""
        return (
            width >= self.channel_step
            and width % self.channel_step == 0
            and not (unit.name.startswith("blocks.") and width == unit.in_channels)
        )

    def smaller_widths(self, config: PrunedConfig, index: int) -> list[int]:
        """Allowed widths of unit ``index`` below its current one, largest first."""
        unit = self.units(config.base)[index]
        current = config.widths[index]
        top = (current - 1) // self.channel_step * self.channel_step
        return [w for w in range(top, 0, -self.channel_step) if self.allowed(unit, w)]

    def with_width(self, config: PrunedConfig, index: int, width: int) -> PrunedConfig:
        widths = list(config.widths)
        widths[index] = width
        return self.validate(PrunedConfig(config.base, tuple(widths)))

    def uniform(self, config: MBV3Config, multiplier: float) -> PrunedConfig:
        """Every unit's width times ``multiplier``, on the channel grid (the width-multiplier
        baseline); a block width that would equal its input goes one step up."""
        start = self.unpruned(config)
        widths = []
        for unit, w in zip(self.units(config), start.widths, strict=True):
            new = min(w, make_divisible(w * multiplier, self.channel_step))
            if not self.allowed(unit, new):
                new += self.channel_step
            widths.append(min(new, w))
        return PrunedConfig(config, tuple(widths))

    # ---- contract shared with search spaces (what export and the tables use) ----------------
    def validate(self, config: PrunedConfig) -> PrunedConfig:
        self.base.validate(config.base)
        units = self.units(config.base)
        start = self.unpruned(config.base)
        if len(config.widths) != len(units):
            raise ConfigError(
                f"{config}: {len(config.widths)} widths given, {config.base} has "
                f"{len(units)} prunable layers"
            )
        for unit, w, top in zip(units, config.widths, start.widths, strict=True):
            if w > top or not (w == top or self.allowed(unit, w)):
                raise ConfigError(
                    f"{config}: width {w} of {unit.name} must be <= {top}, a multiple of "
                    f"{self.channel_step} and not equal to the block's input ({unit.in_channels})"
                )
        return config

    def parse(self, text: str) -> PrunedConfig:
        m = _PRUNED_RE.fullmatch(text.strip())
        if m is None:
            return self.unpruned(self.base.resolve(text))
        base = self.base.resolve(m.group(1))
        return self.validate(PrunedConfig(base, tuple(int(w) for w in m.group(2).split("-"))))

    def layers(self, config: PrunedConfig) -> list[LayerSpec]:
        layers = list(self.base.layers(config.base))
        for unit, width in zip(self.units(config.base), config.widths, strict=True):
            i = unit.layer_index
            layer = layers[i]
            if layer.op == "expanded_conv":
                attrs = tuple((k, width if k == "expand" else v) for k, v in layer.attrs)
                layers[i] = dataclasses.replace(layer, attrs=attrs)
            else:  # Conv_1 feeds the pooling and Conv_2; Conv_2 feeds the logits
                layers[i] = dataclasses.replace(
                    layer, output_shape=(*layer.output_shape[:-1], width)
                )
                nxt = layers[i + 1]
                layers[i + 1] = dataclasses.replace(
                    nxt,
                    input_shape=(*nxt.input_shape[:-1], width),
                    output_shape=nxt.output_shape
                    if nxt.op == "Logits"
                    else (*nxt.output_shape[:-1], width),
                )
                if layer.op == "Conv_1":
                    after = layers[i + 2]
                    layers[i + 2] = dataclasses.replace(
                        after, input_shape=(*after.input_shape[:-1], width)
                    )
        return layers

    def macs(self, config: PrunedConfig) -> int:
        return count_macs(self.layers(config))

    def params(self, config: PrunedConfig) -> int:
        return count_params(self.layers(config))
