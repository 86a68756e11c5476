"""A search space the engine has never seen, defined here and nowhere else — a plain CNN with a
width and a kernel choice per layer and its own tiny weight-sharing supernet — with a
whole-architecture latency table of its own, runs search → export (TFLite) → verification →
registry → ``nas pick`` end to end, with no change to the engine: it is registered, and the
spec names this module in ``plugins`` so that every process of the job (Ray workers too)
imports it."""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from nas.errors import ConfigError
from nas.registry import SPACES
from search_spaces import LayerSpec, SearchSpace, WeightSharing

WIDTHS, KERNELS, STRIDES, DEPTH, RESOLUTION = (8, 16), (3, 5), (1, 2, 2), 3, 28


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    widths: tuple[int, ...]
    kernels: tuple[int, ...]

    def __str__(self) -> str:
        return "w" + "-".join(map(str, self.widths)) + "_k" + "-".join(map(str, self.kernels))


class _ElasticConv(nn.Module):
    """Conv + BN + ReLU at the largest width and kernel; runs any smaller one by slicing."""

    def __init__(self, cin: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, max(WIDTHS), max(KERNELS), stride, bias=False)
        self.bn = nn.BatchNorm2d(max(WIDTHS))
        self.stride, self.active = stride, (max(WIDTHS), max(KERNELS), cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width, kernel, _ = self.active
        crop = (max(KERNELS) - kernel) // 2
        weight = self.conv.weight[:width, : x.shape[1], crop : crop + kernel, crop : crop + kernel]
        y = F.conv2d(x, weight, stride=self.stride, padding=kernel // 2)
        bn = self.bn
        y = F.batch_norm(
            y,
            bn.running_mean[:width],
            bn.running_var[:width],
            bn.weight[:width],
            bn.bias[:width],
            self.training,
            bn.momentum,
            bn.eps,
        )
        return F.relu(y)


class _Supernet(nn.Module):
    def __init__(self, in_channels: int, n_classes: int) -> None:
        super().__init__()
        cins = (in_channels,) + (max(WIDTHS),) * (DEPTH - 1)
        self.blocks = nn.ModuleList(_ElasticConv(c, s) for c, s in zip(cins, STRIDES, strict=True))
        self.head = nn.Linear(max(WIDTHS), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = x.mean((2, 3))
        return F.linear(x, self.head.weight[:, : x.shape[1]], self.head.bias)


class TinyCNNSpace(SearchSpace[CNNConfig], WeightSharing[CNNConfig]):
    name = "tiny_cnn_e2e"
    exact_counts = True

    def __init__(self, *, n_classes: int = 10, in_channels: int = 1) -> None:
        self._n_classes, self.in_channels = n_classes, in_channels

    # ---- the contract ----------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def resolutions(self) -> tuple[int, ...]:
        return (RESOLUTION,)

    @property
    def options(self) -> dict:
        return {"n_classes": self._n_classes, "in_channels": self.in_channels}

    def input_shape(self, config: CNNConfig) -> tuple[int, int, int]:
        return (self.in_channels, RESOLUTION, RESOLUTION)

    def suggest(self, trial) -> CNNConfig:
        return CNNConfig(
            tuple(trial.suggest_categorical(f"w{i}", WIDTHS) for i in range(DEPTH)),
            tuple(trial.suggest_categorical(f"k{i}", KERNELS) for i in range(DEPTH)),
        )

    def trial_params(self, config: CNNConfig) -> dict:
        return {
            **{f"w{i}": w for i, w in enumerate(config.widths)},
            **{f"k{i}": k for i, k in enumerate(config.kernels)},
        }

    def sample(self, rng: np.random.Generator) -> CNNConfig:
        return CNNConfig(
            tuple(int(rng.choice(WIDTHS)) for _ in range(DEPTH)),
            tuple(int(rng.choice(KERNELS)) for _ in range(DEPTH)),
        )

    def mutate(self, config: CNNConfig, rng: np.random.Generator, prob: float) -> CNNConfig:
        redraw = self.sample(rng)
        pick = rng.random(2 * DEPTH) < prob
        return CNNConfig(
            tuple(
                n if p else o
                for o, n, p in zip(config.widths, redraw.widths, pick[:DEPTH], strict=True)
            ),
            tuple(
                n if p else o
                for o, n, p in zip(config.kernels, redraw.kernels, pick[DEPTH:], strict=True)
            ),
        )

    @property
    def encoding_size(self) -> int:
        return DEPTH * (len(WIDTHS) + len(KERNELS))

    def encode(self, config: CNNConfig) -> np.ndarray:
        rows = [np.eye(len(WIDTHS))[WIDTHS.index(w)] for w in config.widths]
        rows += [np.eye(len(KERNELS))[KERNELS.index(k)] for k in config.kernels]
        return np.concatenate(rows).astype(np.float32)

    def parse(self, text: str) -> CNNConfig:
        match = re.fullmatch(r"w(\d+(?:-\d+)*)_k(\d+(?:-\d+)*)", text)
        if not match:
            raise ConfigError(f"{text!r} is not a tiny_cnn config (w8-16-16_k3-5-3)")
        widths, kernels = (tuple(map(int, g.split("-"))) for g in match.groups())
        return self.validate(CNNConfig(widths, kernels))

    def validate(self, config: CNNConfig) -> CNNConfig:
        for field, choices in (("widths", WIDTHS), ("kernels", KERNELS)):
            values = getattr(config, field)
            if len(values) != DEPTH or any(v not in choices for v in values):
                raise ConfigError(f"{field} = {values} must be {DEPTH} values in {choices}")
        return config

    def largest(self) -> CNNConfig:
        return CNNConfig((max(WIDTHS),) * DEPTH, (max(KERNELS),) * DEPTH)

    def smallest(self) -> CNNConfig:
        return CNNConfig((min(WIDTHS),) * DEPTH, (min(KERNELS),) * DEPTH)

    def _shapes(self, config: CNNConfig):
        size, cin = RESOLUTION, self.in_channels
        for w, k, s in zip(config.widths, config.kernels, STRIDES, strict=True):
            out = (size - 1) // s + 1
            yield (size, cin), (out, w), k, s
            size, cin = out, w

    def layers(self, config: CNNConfig) -> list[LayerSpec]:
        layers = [
            LayerSpec("conv", (h, h, c), (o, o, w), (("kernel", k), ("stride", s)))
            for (h, c), (o, w), k, s in self._shapes(config)
        ]
        last = layers[-1].output_shape
        return layers + [LayerSpec("head", last, (1, 1, self._n_classes))]

    def all_layers(self, resolution: int) -> list[LayerSpec]:
        seen = {}
        for widths in itertools.product(WIDTHS, repeat=DEPTH):
            for kernels in itertools.product(KERNELS, repeat=DEPTH):
                for layer in self.layers(CNNConfig(widths, kernels)):
                    seen[layer.key] = layer
        return list(seen.values())

    def macs(self, config: CNNConfig) -> int:
        convs = sum(o * o * w * c * k * k for (h, c), (o, w), k, s in self._shapes(config))
        return convs + config.widths[-1] * self._n_classes

    def params(self, config: CNNConfig) -> int:
        convs = sum(w * c * k * k + 2 * w for (h, c), (o, w), k, s in self._shapes(config))
        return convs + config.widths[-1] * self._n_classes + self._n_classes

    def build(self, config: CNNConfig, weights=None) -> nn.Module:
        modules: list[nn.Module] = []
        for (_, c), (_, w), k, s in self._shapes(config):
            modules += [nn.Conv2d(c, w, k, s, k // 2, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        model = nn.Sequential(
            *modules,
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(config.widths[-1], self._n_classes),
        )
        if weights is not None:
            self._copy(weights, config, model)
        return model.eval()

    def _copy(self, state: dict, config: CNNConfig, model: nn.Sequential) -> None:
        with torch.no_grad():
            for i, ((_, c), (_, w), k, _) in enumerate(self._shapes(config)):
                crop = (max(KERNELS) - k) // 2
                weight = state[f"blocks.{i}.conv.weight"]
                model[3 * i].weight.copy_(weight[:w, :c, crop : crop + k, crop : crop + k])
                bn = model[3 * i + 1]
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn, name).copy_(state[f"blocks.{i}.bn.{name}"][:w])
            model[-1].weight.copy_(state["head.weight"][:, : config.widths[-1]])
            model[-1].bias.copy_(state["head.bias"])

    # ---- weight sharing --------------------------------------------------------------------
    def supernet(self) -> nn.Module:
        return _Supernet(self.in_channels, self._n_classes)

    def load_supernet(self, supernet: nn.Module, state_dict: dict) -> None:
        supernet.load_state_dict(state_dict, strict=True)

    def activate(self, supernet: nn.Module, config: CNNConfig) -> None:
        for block, ((_, cin), (_, width), kernel, _) in zip(
            supernet.blocks, self._shapes(config), strict=True
        ):
            block.active = (width, kernel, cin)

    def extract(self, supernet: nn.Module, config: CNNConfig) -> nn.Module:
        return self.build(config, supernet.state_dict())


if TinyCNNSpace.name not in SPACES:  # registered once, whichever way this module is imported
    SPACES.register(TinyCNNSpace.name, TinyCNNSpace)


# ---- the test --------------------------------------------------------------------------------
def _arch_table(folder, space: TinyCNNSpace) -> str:
    """A whole-architecture table for every config of the space (a phone's numbers would come
    from `benchmark_model`; these are synthetic, proportional to the MACs, for the plumbing)."""
    entries = {}
    for widths in itertools.product(WIDTHS, repeat=DEPTH):
        for kernels in itertools.product(KERNELS, repeat=DEPTH):
            config = CNNConfig(widths, kernels)
            ms = 0.05 + space.macs(config) / 2e7
            entries[str(config)] = {"mean": ms, "std": ms / 20, "count": 50}
    (folder / space.name).mkdir(parents=True)
    (folder / space.name / "arch.yaml").write_text(yaml.safe_dump(entries))
    device = {
        "name": "toy-phone",
        "kind": "arch_table",
        "soc": "none (synthetic)",
        "runtime": "none",
        "runtime_version": "none",
        "threads": 1,
        "delegate": "none",
        "measured": "synthetic: 0.05 ms + MACs / 2e7, for tests/test_new_space.py",
        "provenance": "made by the test",
    }
    (folder / "device.yaml").write_text(yaml.safe_dump(device))
    return str(folder)


def _train_supernet(space: TinyCNNSpace, dataset, path) -> None:
    """A few sandwich steps (largest, smallest, one random subnet), then the engine's own
    checkpoint format, so that the engine's supernet evaluator loads it."""
    from nas.data import batches
    from nas.supernet import save_weights

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = space.supernet().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for x, y in itertools.islice(batches(dataset.train, 64, dataset.preprocessing), 40):
        opt.zero_grad()
        for config in (space.largest(), space.smallest(), space.sample(rng)):
            space.activate(model, config)
            F.cross_entropy(model(x), y).backward()
        opt.step()
    save_weights(
        path,
        model.state_dict(),
        space=space.name,
        space_options=space.options,
        meta={},
        fp16=False,
    )


@pytest.mark.slow
def test_a_space_defined_here_runs_search_export_registry_and_pick(
    small_fmnist, tmp_path, capsys, monkeypatch
):
    from nas.cli import main
    from nas.data import load_dataset
    from nas.spec import DatasetSpec
    from tests.conftest import REPO

    # Ray workers import this module by name (the spec's plugins): it must be on their path
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    dataset = load_dataset(DatasetSpec(root=str(small_fmnist), val_size=400))
    space = TinyCNNSpace()
    _train_supernet(space, dataset, tmp_path / "supernet.pt")
    spec = {
        "name": "tiny_cnn_e2e",
        "space": TinyCNNSpace.name,
        "plugins": [__name__],
        "dataset": {"name": "fashion_mnist", "root": str(small_fmnist), "val_size": 400},
        "supernet": {"checkpoint": str(tmp_path / "supernet.pt"), "bn_calibration_images": 200},
        "devices": [{"lut": _arch_table(tmp_path / "toy-phone", space)}],
        "search": {"sampler": "random", "trials": 6, "workers": 2},
        "export": {"formats": ["tflite-fp32"], "k": 2},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))

    assert main(["search", str(tmp_path / "spec.yaml"), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_complete"] >= 6 and result["pareto"]
    for row in result["pareto"]:  # configs of the new space, priced by its own table
        config = space.parse(row["config"])
        assert row["latency_ms"]["toy-phone"] == pytest.approx(0.05 + space.macs(config) / 2e7)
        assert 0.0 <= row["accuracy"] <= 1.0
    assert result["registered"]["toy-phone"]["versions"] >= 1

    out = tmp_path / "picked"
    argv = ["pick", "--experiment", "tiny_cnn_e2e", "--device", "toy-phone", "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    picked = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    path = out / pathlib.Path(picked["path"]).name
    assert path.suffix == ".tflite" and path.is_file() and picked["format"] == "tflite-fp32"
    assert picked["preprocessing"]["height"] == RESOLUTION
    # the picked file is the new space's subnet: LiteRT runs it on a 28x28x1 image to 10 logits
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    assert tuple(inp["shape"]) == (1, RESOLUTION, RESOLUTION, 1)
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    interpreter.invoke()
    assert interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).shape == (1, 10)
