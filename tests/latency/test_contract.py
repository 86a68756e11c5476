"""One contract suite run over every registered latency kind (``nas.registry.LATENCY_KINDS``):
each kind gets a device entry built here from the shipped Note10 tables, and must honour the
``LatencyPredictor`` contract."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from nas.errors import LatencyTableError, MissingLatencyKeyError
from nas.latency import Estimate, LatencyPredictor, LayerTableLatency, build_latency
from nas.paths import assets_root
from nas.registry import LATENCY_KINDS, RegistryError
from search_spaces import get_space

NOTE10 = assets_root() / "latency_luts" / "note10"


def _layer_table(tmp_path, space):
    return NOTE10, [space.sample(np.random.default_rng(i)) for i in range(8)]


def _arch_table(tmp_path, space):
    """A whole-architecture table of 8 configs, priced (as if measured) by the layer table."""
    layers = build_latency(NOTE10, space)
    configs = [space.sample(np.random.default_rng(i)) for i in range(8)]
    entries = {str(c): {"mean": layers.predict(c).ms, "std": 0.5, "count": 10} for c in configs}
    (tmp_path / space.name).mkdir(parents=True)
    (tmp_path / space.name / "arch.yaml").write_text(yaml.safe_dump(entries))
    device = yaml.safe_load((NOTE10 / "device.yaml").read_text())
    (tmp_path / "device.yaml").write_text(yaml.safe_dump({**device, "kind": "arch_table"}))
    return tmp_path, configs


ENTRIES = {"layer_table": _layer_table, "arch_table": _arch_table}


def test_every_registered_kind_has_a_contract_fixture():
    assert set(LATENCY_KINDS.names()) == set(ENTRIES)


@pytest.fixture(params=sorted(ENTRIES))
def entry(request, tmp_path):
    space = get_space("ofa_mbv3")
    lut, configs = ENTRIES[request.param](tmp_path, space)
    return request.param, space, lut, configs


def test_the_device_entry_picks_its_kind_and_prices_every_config(entry):
    kind, space, lut, configs = entry
    predictor = build_latency(lut, space)
    assert isinstance(predictor, LatencyPredictor) and predictor.kind == kind
    assert predictor.name == "note10" and predictor.at("int8").name == "note10-int8"
    for config in configs:
        estimate = predictor.predict(config)
        assert isinstance(estimate, Estimate)
        assert estimate.ms > 0 and estimate.std >= 0 and kind in estimate.source
        assert predictor.predict(config) == estimate  # pure


def test_an_unknown_config_raises_naming_the_key_never_zero(entry):
    kind, space, lut, configs = entry
    predictor = build_latency(lut, space)
    with pytest.raises(MissingLatencyKeyError, match="dtype:int8"):
        predictor.at("int8").predict(configs[0])  # Note10 has no int8 entries


def test_an_unknown_kind_in_device_yaml_names_the_known_ones(tmp_path):
    shutil.copytree(NOTE10, tmp_path / "lut")
    device = yaml.safe_load((tmp_path / "lut" / "device.yaml").read_text())
    (tmp_path / "lut" / "device.yaml").write_text(yaml.safe_dump({**device, "kind": "magic"}))
    with pytest.raises(RegistryError, match="arch_table.*layer_table"):
        build_latency(tmp_path / "lut", get_space("ofa_mbv3"))


def test_a_missing_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(LatencyTableError, match="device.yaml"):
        build_latency(tmp_path / "nowhere", get_space("ofa_mbv3"))


def test_per_layer_precision_comes_from_the_config():
    """A layer that carries its own precision (a mixed-precision config) is priced at it, with
    the QUANTIZE / DEQUANTIZE ops where precisions meet; a config at one precision throughout
    is priced as that precision's model."""
    from nas.errors import MissingLatencyKeyError
    from search_spaces import MixedConfig, mixed_precision

    space = get_space("ofa_mbv3_small")
    mixed = mixed_precision(space)
    lut = assets_root() / "latency_luts" / "host-x86-litert"
    fp32 = LayerTableLatency(lut, space)
    on_mixed = LayerTableLatency(lut, mixed)
    config = space.smallest()
    layers = space.layers(config)
    one_int8 = MixedConfig(config, ("int8",) + ("fp32",) * (len(layers) - 1))
    keys = on_mixed.layer_keys(one_int8)
    assert keys[0] == layers[0].key + "-dtype:int8" and keys[1 : len(layers)] == [
        x.key for x in layers[1:]
    ]
    assert [k.split("-")[0] for k in keys[len(layers) :]] == ["quantize", "dequantize"]
    with pytest.raises(MissingLatencyKeyError, match="quantize-input"):  # not in this table
        on_mixed.predict(one_int8)
    for dtype in ("fp32", "int8"):
        uniform = MixedConfig(config, (dtype,) * len(layers))
        assert on_mixed.predict(uniform).ms == fp32.at(dtype).predict(config).ms
