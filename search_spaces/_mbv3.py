"""The elastic MobileNetV3 family of Once-for-All: one definition, one supernet class, one space.

``ofa_mbv3`` (OFA's published w1.2 ImageNet space) and ``ofa_mbv3_small`` (28-px grayscale) are
two instances of :class:`ElasticMBV3Space` with different :class:`MBV3Definition` s.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError
from search_spaces._base import (
    LayerSpec,
    Prunable,
    Scalable,
    SearchSpace,
    Shrinkable,
    Unit,
    WeightSharing,
    load_supernet_weights,
)

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = [
    "MBV3Config",
    "MBV3Definition",
    "StageDef",
    "ElasticMBV3Space",
    "count_macs",
    "count_params",
    "make_divisible",
]

CHANNEL_DIVISIBLE = 8


def make_divisible(v: float, divisor: int = CHANNEL_DIVISIBLE) -> int:
    """OFA's (TF slim's) rounding of channel counts; identical to ``ofa.utils.make_divisible``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@dataclasses.dataclass(frozen=True)
class StageDef:
    """One elastic stage: output width, stride of its first block, activation, squeeze-excite."""

    width: int
    stride: int
    act: str  # "relu" or "h_swish"
    se: bool


@dataclasses.dataclass(frozen=True)
class MBV3Definition:
    """Everything that fixes an elastic MobileNetV3 supernet and its choices."""

    in_channels: int
    stem_width: int
    stem_stride: int
    first_block_width: int
    stages: tuple[StageDef, ...]
    final_expand_width: int
    feature_mix_width: int
    n_classes: int
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    depths: tuple[int, ...]
    resolutions: tuple[int, ...]
    #: resolutions the encoding has a one-hot slot for (OFA's predictor: 112..224 step 16)
    resolution_slots: tuple[int, ...]
    dropout: float = 0.1
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def n_block_slots(self) -> int:
        return len(self.stages) * self.max_depth


@dataclasses.dataclass(frozen=True)
class MBV3Config:
    """One subnet: input resolution, depth per stage, kernel and expand ratio per active block.

    Its string form is ``r<res>`` followed by ``_k<kernels>e<expands>`` per stage, one digit per
    active block, e.g. ``r28_k35e46_k733e436_k35e33_k777e666`` (depth = number of digits).
    """

    resolution: int
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]

    def __str__(self) -> str:
        parts, i = [f"r{self.resolution}"], 0
        for d in self.depths:
            ks = "".join(map(str, self.kernels[i : i + d]))
            es = "".join(map(str, self.expands[i : i + d]))
            parts.append(f"k{ks}e{es}")
            i += d
        return "_".join(parts)

    def stage_blocks(self) -> list[list[tuple[int, int]]]:
        """(kernel, expand) of each active block, grouped by stage."""
        out, i = [], 0
        for d in self.depths:
            out.append(list(zip(self.kernels[i : i + d], self.expands[i : i + d], strict=True)))
            i += d
        return out

    def fields(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "depths": list(self.depths),
            "kernels": list(self.kernels),
            "expands": list(self.expands),
        }


_CONFIG_RE = re.compile(r"r(\d+)((?:_k\d+e\d+)+)")
_STAGE_RE = re.compile(r"_k(\d+)e(\d+)")


class ElasticMBV3Space(
    SearchSpace[MBV3Config],
    WeightSharing[MBV3Config],
    Prunable[MBV3Config],
    Scalable[MBV3Config],
    Shrinkable,
):
    """An OFA elastic MobileNetV3 space (kernel, expand ratio, depth, resolution).

    Weight sharing: one OFA dynamic supernet. Prunable units: the expanded (middle) channels of
    every block with an expansion convolution (``blocks.<i>.mid``; a width equal to the block's
    input is excluded, the table key could not tell it from an unexpanded block), the final
    expand convolution (``final_expand``) and the feature-mix convolution (``feature_mix``).
    Stage widths are not prunable: the residual additions tie them together.
    Shrinkable dimensions: ``kernel``, ``expand``, ``depth`` and ``resolution``.
    """

    exact_counts = True

    def __init__(self, *, name: str, definition: MBV3Definition) -> None:
        d = definition
        if not all(r in d.resolution_slots for r in d.resolutions):
            raise ValueError(
                f"every resolution must have an encoding slot, but got {d.resolutions=}"
            )
        self.name = name
        self.definition = d

    @property
    def n_classes(self) -> int:
        return self.definition.n_classes

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(sorted(self.definition.resolutions))

    @property
    def options(self) -> dict[str, Any]:
        return {"n_classes": self.definition.n_classes, "in_channels": self.definition.in_channels}

    def input_shape(self, config: MBV3Config) -> tuple[int, int, int]:
        return (self.definition.in_channels, config.resolution, config.resolution)

    # ---- progressive shrinking (Shrinkable) ----------------------------------------------
    def dimensions(self) -> dict[str, tuple[int, ...]]:
        d = self.definition
        return {
            "kernel": tuple(sorted(d.kernels)),
            "expand": tuple(sorted(d.expands)),
            "depth": tuple(sorted(d.depths)),
            "resolution": tuple(sorted(d.resolutions)),
        }

    def restrict(self, **choices: tuple[int, ...]) -> ElasticMBV3Space:
        dims = self.dimensions()
        fields = {
            "kernel": "kernels",
            "expand": "expands",
            "depth": "depths",
            "resolution": "resolutions",
        }
        changes = {}
        for name, values in choices.items():
            if name not in dims:
                raise ConfigError(f"{self.name}: unknown dimension {name!r}; known: {list(dims)}")
            values = tuple(values)
            if not values or not set(values) <= set(dims[name]):
                raise ConfigError(
                    f"{self.name}: {name}: choices {list(values)} must be a non-empty subset of "
                    f"{list(dims[name])}"
                )
            changes[fields[name]] = values  # in the order given: sample() draws from it
        definition = dataclasses.replace(self.definition, **changes)
        return ElasticMBV3Space(name=self.name, definition=definition)

    # ---- configs -------------------------------------------------------------------------
    def largest(self) -> MBV3Config:
        d = self.definition
        n = d.max_depth * len(d.stages)
        return MBV3Config(
            max(d.resolutions),
            (d.max_depth,) * len(d.stages),
            (max(d.kernels),) * n,
            (max(d.expands),) * n,
        )

    def smallest(self) -> MBV3Config:
        d = self.definition
        n = min(d.depths) * len(d.stages)
        return MBV3Config(
            min(d.resolutions),
            (min(d.depths),) * len(d.stages),
            (min(d.kernels),) * n,
            (min(d.expands),) * n,
        )

    def scale(
        self, config: MBV3Config, depth: float, width: float, resolution: float
    ) -> MBV3Config:
        """Width is each block's expand ratio; a stage made deeper repeats its last block, one
        made shallower keeps its first blocks (as the elastic depth does)."""
        d = self.definition

        def nearest(choices: tuple[int, ...], x: float) -> int:
            return min(sorted(choices), key=lambda c: abs(c - x))

        depths = tuple(nearest(d.depths, n * depth) for n in config.depths)
        kernels, expands = [], []
        for blocks, n in zip(config.stage_blocks(), depths, strict=True):
            for k, e in (blocks + [blocks[-1]] * n)[:n]:
                kernels.append(k)
                expands.append(nearest(d.expands, e * width))
        res = nearest(d.resolutions, config.resolution * resolution)
        return self.validate(MBV3Config(res, depths, tuple(kernels), tuple(expands)))

    def validate(self, config: MBV3Config) -> MBV3Config:
        d = self.definition
        if not isinstance(config, MBV3Config):
            raise ConfigError(
                f"{self.name}: config: expected an MBV3Config, got {type(config).__name__}"
            )
        if config.resolution not in d.resolutions:
            raise ConfigError(
                f"{self.name}: resolution {config.resolution} not in {list(d.resolutions)}"
            )
        if len(config.depths) != len(d.stages):
            raise ConfigError(
                f"{self.name}: depths: {len(config.depths)} stage depths given, the space has "
                f"{len(d.stages)} stages"
            )
        for s, depth in enumerate(config.depths):
            if depth not in d.depths:
                raise ConfigError(
                    f"{self.name}: stage {s + 1} depth {depth} not in {list(d.depths)}"
                )
        n = sum(config.depths)
        if len(config.kernels) != n or len(config.expands) != n:
            raise ConfigError(
                f"{self.name}: kernels/expands: depths sum to {n} blocks but "
                f"{len(config.kernels)} kernels and {len(config.expands)} expand ratios are given"
            )
        for s, blocks in enumerate(config.stage_blocks()):
            for b, (k, e) in enumerate(blocks):
                if k not in d.kernels:
                    raise ConfigError(
                        f"{self.name}: stage {s + 1} block {b + 1}: kernel {k} not in "
                        f"{list(d.kernels)}"
                    )
                if e not in d.expands:
                    raise ConfigError(
                        f"{self.name}: stage {s + 1} block {b + 1}: expand ratio {e} not in "
                        f"{list(d.expands)}"
                    )
        return config

    def parse(self, text: str) -> MBV3Config:
        m = _CONFIG_RE.fullmatch(text.strip())
        if m is None:
            raise ConfigError(
                f"{self.name}: cannot parse config {text!r}; expected e.g. {str(self.largest())!r} "
                "(r<resolution>, then _k<kernels>e<expands> per stage, one digit per block), "
                "or 'largest' / 'smallest'"
            )
        depths, kernels, expands = [], [], []
        for ks, es in _STAGE_RE.findall(m.group(2)):
            if len(ks) != len(es):
                raise ConfigError(
                    f"{self.name}: stage k{ks}e{es} has {len(ks)} kernels but {len(es)} expand "
                    "ratios"
                )
            depths.append(len(ks))
            kernels += map(int, ks)
            expands += map(int, es)
        return self.validate(
            MBV3Config(int(m.group(1)), tuple(depths), tuple(kernels), tuple(expands))
        )

    def suggest(self, trial: optuna.trial.BaseTrial) -> MBV3Config:
        # Every block's kernel and expand ratio is suggested, active or not: a fixed set of
        # parameters keeps multivariate TPE, NSGA-II crossover and GP on one search space.
        return self._from_choices(trial.suggest_categorical)

    def config_from_params(self, params: dict[str, Any]) -> MBV3Config:
        # what suggest() returns through optuna's FixedTrial, without its per-parameter
        # bookkeeping (~0.1 ms per parameter): the proposers rebuild tens of thousands of
        # configs per round; a value outside the space is a ConfigError naming the field
        def choose(name: str, options: list[int]) -> int:
            if name not in params:
                raise ConfigError(f"{self.name}: parameter {name!r} missing from {params!r}")
            return params[name]

        return self.validate(self._from_choices(choose))

    def _from_choices(self, choose: Any) -> MBV3Config:
        """The config whose every choice is ``choose(parameter name, options)``."""
        d = self.definition
        resolution = choose("resolution", list(d.resolutions))
        depths, kernels, expands = [], [], []
        for s in range(len(d.stages)):
            depth = choose(f"d{s + 1}", list(d.depths))
            ks = [choose(f"k{s + 1}_{b + 1}", list(d.kernels)) for b in range(d.max_depth)]
            es = [choose(f"e{s + 1}_{b + 1}", list(d.expands)) for b in range(d.max_depth)]
            depths.append(depth)
            kernels += ks[:depth]
            expands += es[:depth]
        return MBV3Config(resolution, tuple(depths), tuple(kernels), tuple(expands))

    def trial_params(self, config: MBV3Config) -> dict[str, Any]:
        d = self.definition
        params: dict[str, Any] = {"resolution": config.resolution}
        for s, blocks in enumerate(config.stage_blocks()):
            params[f"d{s + 1}"] = len(blocks)
            for b in range(d.max_depth):
                # a skipped block's choices do not matter; repeat the stage's last active one
                k, e = blocks[min(b, len(blocks) - 1)]
                params[f"k{s + 1}_{b + 1}"], params[f"e{s + 1}_{b + 1}"] = k, e
        return params

    def mutate(self, config: MBV3Config, rng: np.random.Generator, prob: float) -> MBV3Config:
        d = self.definition
        params = self.trial_params(config)
        choices = {"resolution": d.resolutions}
        for name in params:
            if name != "resolution":
                choices[name] = {"d": d.depths, "k": d.kernels, "e": d.expands}[name[0]]
        redraw = rng.random(len(choices)) < prob  # one draw for all: a proposer mutates 10k+
        for (name, options), flip in zip(choices.items(), redraw, strict=True):
            if flip:
                params[name] = int(options[rng.integers(len(options))])
        return self.config_from_params(params)

    def sample(self, rng: np.random.Generator) -> MBV3Config:
        d = self.definition
        depths = tuple(int(rng.choice(d.depths)) for _ in d.stages)
        n = sum(depths)
        return MBV3Config(
            int(rng.choice(d.resolutions)),
            depths,
            tuple(int(k) for k in rng.choice(d.kernels, n)),
            tuple(int(e) for e in rng.choice(d.expands, n)),
        )

    # ---- encoding ------------------------------------------------------------------------
    @property
    def encoding_size(self) -> int:
        d = self.definition
        return d.n_block_slots * (len(d.kernels) + len(d.expands)) + len(d.resolution_slots)

    def encode(self, config: MBV3Config) -> np.ndarray:
        """One-hot kernel per block slot, then expand per slot, then resolution (OFA's layout;
        slots of skipped blocks stay all zero)."""
        d = self.definition
        nk, ne, slots = len(d.kernels), len(d.expands), d.n_block_slots
        x = np.zeros(self.encoding_size, dtype=np.float32)
        for s, blocks in enumerate(config.stage_blocks()):
            for b, (k, e) in enumerate(blocks):
                slot = s * d.max_depth + b
                x[slot * nk + d.kernels.index(k)] = 1.0
                x[slots * nk + slot * ne + d.expands.index(e)] = 1.0
        x[slots * (nk + ne) + d.resolution_slots.index(config.resolution)] = 1.0
        return x

    # ---- pricing -------------------------------------------------------------------------
    def layers(self, config: MBV3Config) -> list[LayerSpec]:
        d = self.definition
        r = config.resolution
        size = (r - 1) // d.stem_stride + 1
        out = [LayerSpec("Conv", (r, r, d.in_channels), (size, size, d.stem_width))]
        out.append(
            _block(
                size,
                d.stem_width,
                d.first_block_width,
                d.stem_width,
                3,
                1,
                d.stem_width == d.first_block_width,
                False,
                False,
            )
        )
        width = d.first_block_width
        for stage, blocks in zip(d.stages, config.stage_blocks(), strict=True):
            for b, (k, e) in enumerate(blocks):
                stride = stage.stride if b == 0 else 1
                mid = make_divisible(round(width * e))
                idskip = stride == 1 and width == stage.width
                out.append(
                    _block(
                        size,
                        width,
                        stage.width,
                        mid,
                        k,
                        stride,
                        idskip,
                        stage.se,
                        stage.act == "h_swish",
                    )
                )
                size = (size - 1) // stride + 1
                width = stage.width
        out.append(LayerSpec("Conv_1", (size, size, width), (size, size, d.final_expand_width)))
        out.append(
            LayerSpec("AvgPool2D", (size, size, d.final_expand_width), (1, 1, d.final_expand_width))
        )
        out.append(LayerSpec("Conv_2", (1, 1, d.final_expand_width), (1, 1, d.feature_mix_width)))
        out.append(LayerSpec("Logits", (1, 1, d.feature_mix_width), (d.n_classes,)))
        return out

    def all_layers(self, resolution: int) -> list[LayerSpec]:
        d = self.definition
        if resolution not in d.resolutions:
            raise ConfigError(f"{self.name}: resolution {resolution} not in {list(d.resolutions)}")
        seen: dict[str, LayerSpec] = {}
        # a stage's first block differs from the rest (input width, stride); two depth-2
        # configs per (kernel, expand) pair reach every first and every later block
        for k in d.kernels:
            for e in d.expands:
                n = len(d.stages) * d.max_depth
                config = MBV3Config(resolution, (d.max_depth,) * len(d.stages), (k,) * n, (e,) * n)
                for layer in self.layers(config):
                    seen.setdefault(layer.key, layer)
        return list(seen.values())

    def macs(self, config: MBV3Config) -> int:
        """Multiply-accumulates of one forward pass (convolutions, SE and the classifier)."""
        return count_macs(self.layers(config))

    def params(self, config: MBV3Config) -> int:
        """Parameters of the standalone PyTorch subnet (BatchNorm affine included), from the
        layer list: no model is built."""
        return count_params(self.layers(config))

    # ---- models --------------------------------------------------------------------------
    def supernet(self) -> torch.nn.Module:
        """A freshly initialized elastic supernet (OFA dynamic layers)."""
        from search_spaces._mbv3_supernet import ElasticMobileNetV3

        return ElasticMobileNetV3(self.definition)

    def activate(self, supernet: torch.nn.Module, config: MBV3Config) -> None:
        """Set the supernet's active subnet to ``config`` (in place)."""
        d = self.definition
        self.validate(config)
        ks, es = [], []
        for blocks in config.stage_blocks():
            pad = d.max_depth - len(blocks)
            ks += [k for k, _ in blocks] + [max(d.kernels)] * pad
            es += [e for _, e in blocks] + [max(d.expands)] * pad
        supernet.set_active_subnet(ks=ks, e=es, d=list(config.depths))

    def extract(self, supernet: torch.nn.Module, config: MBV3Config) -> torch.nn.Module:
        """A standalone copy of ``config``'s subnet with the supernet's weights."""
        self.activate(supernet, config)
        subnet = supernet.get_active_subnet(preserve_weight=True)
        subnet.eval()
        return subnet

    def load_supernet(self, supernet: torch.nn.Module, state_dict: dict[str, Any]) -> None:
        load_supernet_weights(supernet, state_dict, self.name)

    def layer_paths(self, config: MBV3Config) -> list[str]:
        """OFA ``MobileNetV3``'s submodules, in the order of ``layers(config)``."""
        n_blocks = 1 + sum(config.depths)
        return [
            "first_conv",
            *(f"blocks.{i}" for i in range(n_blocks)),
            "final_expand_layer",
            "global_avg_pool",
            "feature_mix_layer",
            "classifier",
        ]

    def layer_module(self, layer: LayerSpec) -> torch.nn.Module:
        """The OFA module a subnet runs for ``layer`` (see ``_mbv3_supernet.layer_module``)."""
        from search_spaces._mbv3_supernet import layer_module

        return layer_module(layer)

    def build(self, config: MBV3Config, weights: Any = None) -> torch.nn.Module:
        supernet = self.supernet()
        if weights is not None:
            load_supernet_weights(supernet, weights, self.name)
        return self.extract(supernet, config)

    # ---- pruning (Prunable) -----------------------------------------------------------------
    def unit_slots(self) -> dict[str, int]:
        d = self.definition
        slots, width = {}, d.first_block_width
        for s, stage in enumerate(d.stages):
            for b in range(d.max_depth):
                cin = width if b == 0 else stage.width
                slots[f"stage{s + 1}.block{b + 1}"] = make_divisible(round(cin * max(d.expands)))
            width = stage.width
        slots["final_expand"] = d.final_expand_width
        slots["feature_mix"] = d.feature_mix_width
        return slots

    def units(self, config: MBV3Config) -> list[Unit]:
        layers, slots = self.layers(config), self.unit_slots()
        units, i = [], 2  # layers: stem, first block, the stages' blocks, then the head
        for s, blocks in enumerate(config.stage_blocks()):
            for b in range(len(blocks)):
                cin, mid = layers[i].input_shape[-1], layers[i].attr("expand")
                if mid != cin:
                    slot = f"stage{s + 1}.block{b + 1}"
                    units.append(
                        Unit(f"blocks.{i - 1}.mid", i, cin, mid, slot, slots[slot], (cin,))
                    )
                i += 1
        for name, index in (("final_expand", i), ("feature_mix", i + 2)):
            layer = layers[index]
            width = layer.output_shape[-1]
            units.append(Unit(name, index, layer.input_shape[-1], width, name, slots[name]))
        return units

    def pruned_layers(self, config: MBV3Config, widths: tuple[int, ...]) -> list[LayerSpec]:
        layers = self.layers(config)
        units = self.units(config)
        if len(widths) != len(units):
            raise ConfigError(
                f"{self.name}: widths: {len(widths)} given, {config} has {len(units)} prunable "
                "layers"
            )
        for unit, width in zip(units, widths, strict=True):
            _set_width(layers, unit.layer_index, width)
        return layers

    def pruned_macs(self, config: MBV3Config, widths: tuple[int, ...]) -> int:
        return count_macs(self.pruned_layers(config, widths))

    def pruned_params(self, config: MBV3Config, widths: tuple[int, ...]) -> int:
        return count_params(self.pruned_layers(config, widths))

    def filter_norms(self, model: torch.nn.Module, unit: str) -> torch.Tensor:
        from search_spaces._mbv3_surgery import filter_norms

        return filter_norms(model, unit)

    def unit_output(self, model: torch.nn.Module, unit: str) -> torch.nn.Module:
        from search_spaces._mbv3_surgery import unit_output

        return unit_output(model, unit)

    def prune_unit(
        self,
        model: torch.nn.Module,
        unit: str,
        width: int,
        scores: torch.Tensor | None = None,
    ) -> None:
        from search_spaces._mbv3_surgery import prune_unit

        prune_unit(model, unit, width, scores)

    def widths_of(self, model: torch.nn.Module, config: MBV3Config) -> tuple[int, ...]:
        from search_spaces._mbv3_surgery import unit_width

        return tuple(unit_width(model, u.name) for u in self.units(config))


def _set_width(layers: list[LayerSpec], i: int, width: int) -> None:
    """Give layer ``i`` (a block's expansion, ``Conv_1`` or ``Conv_2``) ``width`` filters, and
    the layers that read them the matching input."""
    layer = layers[i]
    if layer.op == "expanded_conv":
        attrs = tuple((k, width if k == "expand" else v) for k, v in layer.attrs)
        layers[i] = dataclasses.replace(layer, attrs=attrs)
        return
    # Conv_1 feeds the pooling and Conv_2; Conv_2 feeds the logits
    layers[i] = dataclasses.replace(layer, output_shape=(*layer.output_shape[:-1], width))
    nxt = layers[i + 1]
    layers[i + 1] = dataclasses.replace(
        nxt,
        input_shape=(*nxt.input_shape[:-1], width),
        output_shape=nxt.output_shape if nxt.op == "Logits" else (*nxt.output_shape[:-1], width),
    )
    if layer.op == "Conv_1":
        after = layers[i + 2]
        layers[i + 2] = dataclasses.replace(after, input_shape=(*after.input_shape[:-1], width))


@functools.lru_cache(maxsize=65536)  # one LayerSpec per block shape: its key is built once
def _block(size, cin, cout, mid, k, stride, idskip, se, hs) -> LayerSpec:
    out = (size - 1) // stride + 1
    return LayerSpec(
        "expanded_conv",
        (size, size, cin),
        (out, out, cout),
        (
            ("expand", mid),
            ("kernel", k),
            ("stride", stride),
            ("idskip", int(idskip)),
            ("se", int(se)),
            ("hs", int(hs)),
        ),
    )


def count_macs(layers: list[LayerSpec]) -> int:
    """Multiply-accumulates of one forward pass over ``layers`` (convolutions, SE, classifier)."""
    total = 0
    for layer in layers:
        (h, w, cin), cout = layer.input_shape, layer.output_shape[-1]
        if layer.op in ("Conv", "Conv_1"):
            ho, wo = layer.output_shape[:2]
            k = 3 if layer.op == "Conv" else 1
            total += ho * wo * cin * cout * k * k
        elif layer.op in ("Conv_2", "Logits"):
            total += cin * cout
        elif layer.op == "expanded_conv":
            ho, wo = layer.output_shape[:2]
            mid, k = layer.attr("expand"), layer.attr("kernel")
            if mid != cin:
                total += h * w * cin * mid
            total += ho * wo * mid * k * k + ho * wo * mid * cout
            if layer.attr("se"):
                total += 2 * mid * make_divisible(mid // 4)
    return total


def count_params(layers: list[LayerSpec]) -> int:
    """Parameters of the PyTorch layers ``layers`` describe (BatchNorm affine included)."""
    total = 0
    for layer in layers:
        cin, cout = layer.input_shape[-1], layer.output_shape[-1]
        if layer.op == "Conv":
            total += 9 * cin * cout + 2 * cout
        elif layer.op == "Conv_1":
            total += cin * cout + 2 * cout
        elif layer.op == "Conv_2":
            total += cin * cout  # no bias, no BN (OFA's feature-mix layer)
        elif layer.op == "Logits":
            total += cin * cout + cout
        elif layer.op == "expanded_conv":
            mid, k = layer.attr("expand"), layer.attr("kernel")
            if mid != cin:
                total += cin * mid + 2 * mid
            total += mid * k * k + 2 * mid + mid * cout + 2 * cout
            if layer.attr("se"):
                r = make_divisible(mid // 4)
                total += mid * r + r + r * mid + mid
    return total
