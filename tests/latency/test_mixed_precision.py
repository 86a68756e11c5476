"""Pricing a config whose layers run at different precisions: each layer's entry at its own
precision, plus the QUANTIZE / DEQUANTIZE ops LiteRT runs where int8 and float layers meet."""

from __future__ import annotations

import dataclasses

import pytest

from nas.errors import MissingLatencyKeyError
from nas.latency import Entry, LayerTableLatency, boundary_layers, write_table
from nas.latency._table import dtype_key
from search_spaces import LayerSpec, get_space

DEVICE = """\
name: test-host
soc: test
runtime: LiteRT
runtime_version: test
delegate: XNNPACK
measured: by hand
provenance: this test
threads: 1
invoke_overhead_ms: {fp32: 0.1, int8: 0.2}
overhead_ms: {fp32: 0.5}
scale: {fp32: 2.0}
"""


def _layer(i: int, dtype: str | None) -> LayerSpec:
    return LayerSpec(f"op{i}", (4, 4, i + 1), (4, 4, i + 2), dtype=dtype)


def test_boundaries_are_where_int8_and_float_layers_meet():
    layers = [_layer(0, "fp32"), _layer(1, "int8"), _layer(2, "int8"), _layer(3, "fp16")]
    layers.append(_layer(4, "int8"))
    keys = [b.key for b in boundary_layers(layers)]
    assert keys == [
        "quantize-input:4x4x2-output:4x4x2",  # into layer 1 (int8) from fp32
        "dequantize-input:4x4x4-output:4x4x4",  # into layer 3 (fp16) from int8
        "quantize-input:4x4x5-output:4x4x5",  # into layer 4 (int8)
        "dequantize-input:4x4x6-output:4x4x6",  # the model's float output
    ]
    assert boundary_layers([_layer(0, "int8")])[0].op == "quantize"  # the float input
    assert boundary_layers([_layer(0, "fp32"), _layer(1, "fp16")]) == []


def test_a_mixed_config_sums_its_layers_at_their_precisions_and_its_boundaries(tmp_path):
    space = get_space("mixed_precision(ofa_mbv3_small)")
    base = space.parse("r28_k5577e4466_k557e646_k577e664_k57e66")
    n = len(base.dtypes)
    config = dataclasses.replace(
        base, dtypes=("fp32", "int8", "int8", "fp16") + ("fp32",) * (n - 4)
    )
    layers = space.layers(config)
    boundaries = boundary_layers(layers)
    assert [b.op for b in boundaries] == ["quantize", "dequantize"]
    keys = [dtype_key(x.key, x.dtype) for x in layers]  # a stage's later blocks may share one
    entries = {key: Entry(1.0 + i, 0.1, 10) for i, key in enumerate(dict.fromkeys(keys))}
    entries.update({b.key: Entry(0.05, 0.01, 10) for b in boundaries})
    (tmp_path / "ofa_mbv3_small").mkdir()
    write_table(tmp_path / "ofa_mbv3_small" / "28.yaml", entries)
    (tmp_path / "device.yaml").write_text(DEVICE)
    model = LayerTableLatency(tmp_path, space, dtype="fp32")
    assert model.layer_keys(config)[n:] == [b.key for b in boundaries]
    # every entry less its own precision's per-invoke cost, then one invoke for the model
    invoke = {"fp32": 0.1, "fp16": 0.0, "int8": 0.2}
    expected = sum(entries[k].mean - invoke[x.dtype] for k, x in zip(keys, layers, strict=True))
    expected += 2 * (0.05 - 0.1) + 0.1
    assert model.layer_sum(config)[0] == pytest.approx(expected)
    # the device's whole-model fit is fp32's (x2.0 + 0.5 ms here): a mixed config is its sum
    assert model.whole_model_fit(config) == (1.0, 0.0)
    assert model.predict(config).ms == pytest.approx(expected)
    # a boundary the table lacks is named, as a layer is
    del entries[boundaries[0].key]
    write_table(tmp_path / "ofa_mbv3_small" / "28.yaml", entries)
    model.reload(28)
    with pytest.raises(MissingLatencyKeyError, match="quantize-input"):
        model.predict(config)
    # a config without per-layer precisions is priced as before: no boundary
    plain = LayerTableLatency(tmp_path, get_space("ofa_mbv3_small"))
    assert len(plain.priced_layers(base.base)) == n
    assert plain.whole_model_fit(base.base) == (2.0, 0.5)
