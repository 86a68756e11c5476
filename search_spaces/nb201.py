"""``nb201``: the NAS-Bench-201 cell space (Dong & Yang, ICLR 2020), 15,625 architectures.

One cell, repeated in every stage: 4 nodes, each of the 6 edges ``i -> j`` (``i < j``) one of
``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``; node ``j`` is
the sum of its incoming edges, the cell's output is node 3. The network is the benchmark's:
a 3x3 stem of ``width`` channels, ``cells`` cells, a residual reduction (stride 2, channels x2),
``cells`` cells, a reduction, ``cells`` cells, BN-ReLU, global average pooling and a classifier;
at ``width=16, cells=5`` and 32 px, the network HELP timed on six real devices (the shipped
``latency_luts/<phone>/nb201`` tables, keyed by the string form below). Fashion-MNIST's 28-px
images are resized to 32 px, the phones' input size (with one input channel instead of three:
the stem's cost differs by under 1% of the network's).

A config's string is the benchmark's: ``|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|
nor_conv_1x1~1|nor_conv_3x3~2|`` (edge ``op~i`` into node ``j``, nodes separated by ``+``).

Weight sharing: the supernet holds every op of every edge and runs the active one (single-path,
as SPOS and NB201's own weight-sharing baselines train it); a subnet is the same modules with
only its ops, loaded from the supernet's state dict by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import ConfigError
from search_spaces._base import LayerSpec, SearchSpace, WeightSharing, load_supernet_weights

__all__ = ["EDGES", "NB201Config", "NB201Space", "OPS", "nb201"]

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: the 6 edges (from node, to node), in the string form's order
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
RESOLUTION = 32


@dataclasses.dataclass(frozen=True)
class NB201Config:
    ops: tuple[str, ...]  # one of OPS per edge of EDGES

    def __str__(self) -> str:
        nodes = [
            "|"
            + "|".join(f"{op}~{i}" for op, (i, j) in zip(self.ops, EDGES, strict=True) if j == node)
            + "|"
            for node in (1, 2, 3)
        ]
        return "+".join(nodes)


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def _relu_conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


def _op(name: str, c: int) -> nn.Module:
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    return _relu_conv_bn(c, c, 1 if name == "nor_conv_1x1" else 3)


class _Cell(nn.Module):
    """Edge ``e`` holds the ops ``choices[e]`` (one for a subnet, all five for the supernet)
    under their names; ``active`` picks the one each edge runs."""

    def __init__(self, c: int, choices: tuple[tuple[str, ...], ...]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleDict({n: _op(n, c) for n in ops}) for ops in choices)
        self.active = tuple(ops[0] for ops in choices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            node = None
            for e, (i, to) in enumerate(EDGES):
                if to == j:
                    y = self.edges[e][self.active[e]](nodes[i])
                    node = y if node is None else node + y
            nodes.append(node)
        return nodes[3]


class _Reduction(nn.Module):
    """NAS-Bench-201's residual block between stages: stride 2, channels doubled."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_a = _relu_conv_bn(cin, cout, 3, 2)
        self.conv_b = _relu_conv_bn(cout, cout, 3)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


class _Network(nn.Module):
    def __init__(
        self,
        choices: tuple[tuple[str, ...], ...],
        *,
        width: int,
        cells: int,
        in_channels: int,
        n_classes: int,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width)
        )
        blocks: list[nn.Module] = []
        for stage, c in enumerate((width, 2 * width, 4 * width)):
            if stage:
                blocks.append(_Reduction(c // 2, c))
            blocks += [_Cell(c, choices) for _ in range(cells)]
        self.blocks = nn.Sequential(*blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * width), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * width, n_classes)

    def activate(self, ops: tuple[str, ...]) -> None:
        for block in self.blocks:
            if isinstance(block, _Cell):
                block.active = ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


class NB201Space(SearchSpace[NB201Config], WeightSharing[NB201Config]):
    """NAS-Bench-201's cell space at 32 px; ``width`` and ``cells`` other than 16 and 5 give a
    smaller network of the same cells (for tests; the shipped phone tables time 16 and 5)."""

    name = "nb201"
    exact_counts = True

    def __init__(
        self, *, n_classes: int = 10, in_channels: int = 1, width: int = 16, cells: int = 5
    ) -> None:
        for field, value in (("n_classes", n_classes), ("in_channels", in_channels),
                             ("width", width), ("cells", cells)):  # fmt: skip
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"nb201: {field} must be an integer >= 1, got {value!r}")
        self._n_classes, self.in_channels = n_classes, in_channels
        self.width, self.cells = width, cells

    @property
    def options(self) -> dict[str, Any]:
        return {"n_classes": self._n_classes, "in_channels": self.in_channels,
                "width": self.width, "cells": self.cells}  # fmt: skip

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def resolutions(self) -> tuple[int, ...]:
        return (RESOLUTION,)

    def input_shape(self, config: NB201Config) -> tuple[int, int, int]:
        return (self.in_channels, RESOLUTION, RESOLUTION)

    # ---- configs -----------------------------------------------------------------------------
    def suggest(self, trial: Any) -> NB201Config:
        return NB201Config(tuple(trial.suggest_categorical(f"edge{e}", OPS) for e in range(6)))

    def trial_params(self, config: NB201Config) -> dict[str, Any]:
        return {f"edge{e}": op for e, op in enumerate(config.ops)}

    def sample(self, rng: np.random.Generator) -> NB201Config:
        return NB201Config(tuple(OPS[i] for i in rng.integers(0, len(OPS), size=6)))

    def mutate(self, config: NB201Config, rng: np.random.Generator, prob: float) -> NB201Config:
        """Each edge takes another op with probability ``prob``; with ``prob > 0`` at least one
        does (as NAS-Bench-201's regularized evolution mutates one edge): six edges of five ops
        would otherwise leave a third of the children unchanged at ``prob = 0.2``."""
        pick = rng.random(6) < prob
        if prob > 0 and not pick.any():
            pick[rng.integers(6)] = True
        ops = list(config.ops)
        for e in np.flatnonzero(pick):
            ops[e] = OPS[(OPS.index(ops[e]) + rng.integers(1, len(OPS))) % len(OPS)]
        return NB201Config(tuple(ops))

    @property
    def encoding_size(self) -> int:
        return 6 * len(OPS)

    def encode(self, config: NB201Config) -> np.ndarray:
        return np.eye(len(OPS), dtype=np.float32)[[OPS.index(op) for op in config.ops]].ravel()

    def parse(self, text: str) -> NB201Config:
        nodes = text.split("+")
        edges = [e for node in nodes for e in node.strip("|").split("|")]
        ops, expected = [], [f"~{i}" for i, _ in EDGES]
        for edge, suffix in zip(edges, expected, strict=False):
            if not edge.endswith(suffix):
                break
            ops.append(edge[: -len(suffix)])
        if len(nodes) != 3 or len(edges) != 6 or len(ops) != 6:
            raise ConfigError(
                f"{text!r} is not a NAS-Bench-201 architecture "
                "(|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"
            )
        config = self.validate(NB201Config(tuple(ops)))
        if str(config) != text:
            raise ConfigError(f"{text!r} is not in the benchmark's string form ({config})")
        return config

    def validate(self, config: NB201Config) -> NB201Config:
        if not isinstance(config, NB201Config):
            raise ConfigError(f"nb201: expected an NB201Config, got {type(config).__name__}")
        ops = config.ops
        if not isinstance(ops, tuple) or len(ops) != 6 or any(op not in OPS for op in ops):
            raise ConfigError(f"ops = {ops!r} must be 6 ops (one per edge) of {OPS}")
        return config

    def largest(self) -> NB201Config:
        return NB201Config(("nor_conv_3x3",) * 6)

    def smallest(self) -> NB201Config:
        return NB201Config(("none",) * 6)

    # ---- costs -------------------------------------------------------------------------------
    def _stages(self) -> list[tuple[int, int]]:
        """(feature size, channels) of each stage."""
        return [(RESOLUTION >> s, self.width << s) for s in range(3)]

    def layers(self, config: NB201Config) -> list[LayerSpec]:
        """Stem, every edge of every cell (op and shape), the reductions, the head: what the
        network computes. Priced whole (``arch_table``), not summed per layer."""
        out = [LayerSpec("stem", (RESOLUTION, RESOLUTION, self.in_channels),
                         (RESOLUTION, RESOLUTION, self.width))]  # fmt: skip
        for stage, (h, c) in enumerate(self._stages()):
            if stage:
                out.append(LayerSpec("reduction", (2 * h, 2 * h, c // 2), (h, h, c)))
            for _ in range(self.cells):
                out += [
                    LayerSpec("edge", (h, h, c), (h, h, c), (("op", OPS.index(op)),))
                    for op in config.ops
                ]
        h, c = self._stages()[-1]
        return out + [LayerSpec("head", (h, h, c), (self._n_classes,))]

    def all_layers(self, resolution: int) -> list[LayerSpec]:
        seen = {}
        for op in OPS:
            for layer in self.layers(NB201Config((op,) * 6)):
                seen[layer.key] = layer
        return list(seen.values())

    def macs(self, config: NB201Config) -> int:
        per_edge = {"nor_conv_1x1": 1, "nor_conv_3x3": 9}
        total = RESOLUTION * RESOLUTION * self.width * self.in_channels * 9
        for stage, (h, c) in enumerate(self._stages()):
            if stage:  # conv_a (stride 2), conv_b, the 1x1 shortcut
                total += h * h * c * (c // 2 * 9 + c * 9 + c // 2)
            total += self.cells * sum(h * h * c * c * per_edge.get(op, 0) for op in config.ops)
        return total + 4 * self.width * self._n_classes

    def params(self, config: NB201Config) -> int:
        per_edge = {"nor_conv_1x1": 1, "nor_conv_3x3": 9}
        total = self.width * self.in_channels * 9 + 2 * self.width
        for stage, (_, c) in enumerate(self._stages()):
            if stage:
                total += c * (c // 2 * 9 + 2) + c * (c * 9 + 2) + c * (c // 2)
            convs = [per_edge[op] for op in config.ops if op in per_edge]
            total += self.cells * sum(c * c * k + 2 * c for k in convs)
        c = 4 * self.width
        return total + 2 * c + c * self._n_classes + self._n_classes

    # ---- models ------------------------------------------------------------------------------
    def _network(self, choices: tuple[tuple[str, ...], ...]) -> _Network:
        return _Network(choices, width=self.width, cells=self.cells,
                        in_channels=self.in_channels, n_classes=self._n_classes)  # fmt: skip

    def build(self, config: NB201Config, weights: Any = None) -> nn.Module:
        model = self._network(tuple((op,) for op in config.ops))
        if weights is not None:
            mine = model.state_dict()
            model.load_state_dict({k: weights[k].clone() for k in mine}, strict=True)
        return model.eval()

    def supernet(self) -> nn.Module:
        return self._network((OPS,) * 6)

    def load_supernet(self, supernet: nn.Module, state_dict: dict[str, Any]) -> None:
        load_supernet_weights(
            supernet, state_dict, f"{self.name} (width {self.width}, cells {self.cells})"
        )

    def activate(self, supernet: nn.Module, config: NB201Config) -> None:
        supernet.activate(config.ops)

    def extract(self, supernet: nn.Module, config: NB201Config) -> nn.Module:
        return self.build(config, supernet.state_dict())


def nb201(**options: Any) -> NB201Space:
    """The space for a dataset (``n_classes``, ``in_channels``); ``width``/``cells`` as above."""
    return NB201Space(**options)
