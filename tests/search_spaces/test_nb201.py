"""``nb201``: NAS-Bench-201's cell space, priced by HELP's six real devices (the shipped arch
tables), searched with one study and a front per phone."""

from __future__ import annotations

import itertools
import json
import pathlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from nas.errors import ConfigError
from nas.latency import build_latency, load_table
from nas.paths import assets_root
from search_spaces import NB201Space, get_space

PHONES = ("pixel3", "pixel2", "samsung_a50", "samsung_s7", "essential_ph_1", "raspi4")
LUTS = assets_root() / "latency_luts"


@pytest.fixture(scope="module")
def pixel3_table():
    return load_table(LUTS / "pixel3" / "nb201" / "arch.yaml.gz")


def test_the_string_form_is_the_benchmarks_and_every_architecture_is_in_the_phone_tables(
    pixel3_table,
):
    space = get_space("nb201")
    keys = sorted(pixel3_table.entries)
    assert len(keys) == 15625 == 5**6
    for key in keys[::97]:  # the tables' keys parse and print back unchanged
        assert str(space.parse(key)) == key
    rng = np.random.default_rng(0)
    for config in [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(50)]:
        assert str(config) in pixel3_table.entries
    model = build_latency(LUTS / "raspi4", space)
    largest, smallest = model.predict(space.largest()).ms, model.predict(space.smallest()).ms
    assert largest > 3 * smallest > 0


def test_parse_names_what_is_wrong():
    space = get_space("nb201")
    with pytest.raises(ConfigError, match="NAS-Bench-201"):
        space.parse("|nor_conv_3x3~0|+|none~0|")
    with pytest.raises(ConfigError, match="ops"):
        space.parse("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_the_network_at_its_defaults_is_the_benchmarks_size():
    """NAS-Bench-201's CIFAR network (16 channels, 5 cells per stage): 1.53 M parameters for
    the all-3x3 cell with a 10-class head and 3 input channels (Dong & Yang report 1.53 MB)."""
    space = NB201Space(in_channels=3)
    assert space.params(space.largest()) == pytest.approx(1.53e6, rel=0.01)
    assert space.params(space.largest()) == sum(
        p.numel() for p in space.build(space.largest()).parameters()
    )


def _train_tiny_supernet(space: NB201Space, dataset, path) -> None:
    """A few single-path steps, saved in the engine's checkpoint format with the space's
    options (a tiny network: the search rebuilds the space from them)."""
    from nas.data import batches
    from nas.supernet import save_weights

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = space.supernet().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for x, y in itertools.islice(batches(dataset.train, 64, dataset.preprocessing), 30):
        opt.zero_grad()
        space.activate(model, space.sample(rng))
        F.cross_entropy(model(F.interpolate(x, size=32, mode="bilinear")), y).backward()
        opt.step()
    save_weights(path, model.state_dict(), space=space.name, space_options=space.options,
                 meta={}, fp16=False)  # fmt: skip


@pytest.mark.slow
def test_six_phones_one_study_a_front_exported_and_registered_per_phone(
    small_fmnist, tmp_path, capsys
):
    from nas.cli import main
    from nas.data import load_dataset
    from nas.spec import DatasetSpec

    dataset = load_dataset(DatasetSpec(root=str(small_fmnist), val_size=400))
    space = NB201Space(width=4, cells=1)
    _train_tiny_supernet(space, dataset, tmp_path / "supernet.pt")
    spec = yaml.safe_load((pathlib.Path(__file__).parents[2] / "runs" /
                           "fashion_mnist_nb201_phones.yaml").read_text())  # fmt: skip
    spec["dataset"] = {"name": "fashion_mnist", "root": str(small_fmnist), "val_size": 400}
    spec["supernet"] = {"checkpoint": str(tmp_path / "supernet.pt"), "bn_calibration_images": 200}
    spec["evaluator"]["val_images"] = 400
    spec["search"].update(sampler="random", trials=8)
    spec["export"].update(k=1, formats=["tflite-fp32"])
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))

    assert main(["search", str(tmp_path / "spec.yaml"), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_complete"] >= 8
    for row in result["pareto"]:  # every trial priced on all six phones, by their own tables
        config = space.parse(row["config"])
        assert set(row["latency_ms"]) == set(PHONES)
        for phone in ("pixel3", "raspi4"):
            table = load_table(LUTS / phone / "nb201" / "arch.yaml.gz")
            assert row["latency_ms"][phone] == pytest.approx(table.mean(str(config)))
    for phone in PHONES:
        assert result["registered"][phone]["versions"] >= 1, phone

    out = tmp_path / "picked"
    argv = ["pick", "--experiment", spec["name"], "--device", "samsung_a50", "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    picked = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    path = out / pathlib.Path(picked["path"]).name
    assert path.suffix == ".tflite" and path.is_file() and "|" not in path.name
    assert picked["preprocessing"]["height"] == 32
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    assert tuple(inp["shape"]) == (1, 32, 32, 1)
