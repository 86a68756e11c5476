"""What the wrappers add over their base: pruned widths (NetAdapt's space) and per-layer
precision; the contract itself is checked for them in test_contract.py."""

from __future__ import annotations

import numpy as np
import pytest

from nas.errors import ConfigError
from search_spaces import (
    MixedConfig,
    PrunedSpace,
    WeightSharing,
    get_space,
    mixed_precision,
    pruned,
)


@pytest.fixture(scope="module")
def base():
    return get_space("ofa_mbv3_small")


def test_pruned_keeps_the_base_name_string_and_tables(base):
    space = pruned(base)
    assert space.name == base.name  # priced by the base space's tables
    start = space.unpruned(base.largest())
    assert str(start) == f"{base.largest()}_p{'-'.join(map(str, start.widths))}"
    assert space.parse(str(base.largest())) == start  # no `_p`: unpruned
    assert space.layers(start) == base.layers(base.largest())
    half = space.uniform(base.largest(), 0.5)
    assert {layer.key for layer in space.layers(half)} - {
        layer.key for layer in base.layers(base.largest())
    }


def test_pruned_needs_a_prunable_base_and_a_positive_step(base):
    with pytest.raises(TypeError, match="base"):
        pruned(mixed_precision(base))
    with pytest.raises(ValueError, match="channel_step"):
        pruned(base, channel_step=0)


def test_wrappers_declare_weight_sharing_exactly_when_their_base_does(base):
    assert isinstance(pruned(base), WeightSharing)
    assert isinstance(mixed_precision(pruned(base)), WeightSharing)
    plain = PrunedSpace(base)  # the class itself: no supernet
    assert not isinstance(plain, WeightSharing)
    assert not isinstance(mixed_precision(plain), WeightSharing)


def test_pruned_suggest_maps_a_width_above_a_unit_to_unpruned_and_an_excluded_one_up(base):
    space = pruned(base)
    start = space.unpruned(base.smallest())
    params = space.trial_params(start)
    unit = space.units(base.smallest())[0]
    assert params[f"w_{unit.slot}"] > unit.width  # the slot's top, for the widest expansion
    assert space.config_from_params(params) == start
    params[f"w_{unit.slot}"] = unit.excluded[0]
    assert space.config_from_params(params).widths[0] == unit.excluded[0] + space.channel_step


def test_mixed_precision_layers_carry_their_precision_and_keep_the_base_key(base):
    space = mixed_precision(base)
    c = space.sample(np.random.default_rng(0))
    layers = space.layers(c)
    assert [layer.dtype for layer in layers] == list(c.dtypes)
    assert [layer.key for layer in layers] == [layer.key for layer in base.layers(c.base)]
    assert all(layer.dtype is None for layer in base.layers(c.base))
    assert space.macs(c) == base.macs(c.base) and space.params(c) == base.params(c.base)


def test_mixed_precision_string_form_is_runs_of_precision_letters(base):
    space = mixed_precision(base)
    n = len(base.layers(base.smallest()))
    c = MixedConfig(base.smallest(), ("fp32", "fp32") + ("int8",) * (n - 3) + ("fp16",))
    assert str(c) == f"{base.smallest()}_qf2i{n - 3}h1"
    assert space.parse(str(c)) == c
    assert space.parse(str(base.smallest())).dtypes == ("fp32",) * n
    with pytest.raises(ConfigError, match="dtypes"):
        space.parse(f"{base.smallest()}_qz{n}")
    with pytest.raises(ConfigError, match="dtypes"):
        space.parse(f"{base.smallest()}_qf{n + 1}")


def test_mixed_precision_rejects_unknown_or_repeated_dtypes(base):
    with pytest.raises(ValueError, match="dtypes"):
        mixed_precision(base, ("fp32", "fp8"))
    with pytest.raises(ValueError, match="dtypes"):
        mixed_precision(base, ("fp32", "fp32"))


def test_mixed_precision_calibration_catalog_has_every_layer_at_every_precision(base):
    space = mixed_precision(base, ("fp32", "int8"))
    catalog = space.all_layers(28)
    assert len(catalog) == 2 * len(base.all_layers(28))
    assert {layer.dtype for layer in catalog} == {"fp32", "int8"}


def test_composition_prices_pruned_layers_at_their_precision(base):
    inner = pruned(base)
    space = mixed_precision(inner, ("fp32", "int8"))
    c = space.sample(np.random.default_rng(3))
    assert "_p" in str(c) and "_q" in str(c)
    assert [layer.key for layer in space.layers(c)] == [layer.key for layer in inner.layers(c.base)]
    assert space.macs(c) == inner.macs(c.base) < base.macs(base.largest())


def test_apq_widths_are_shares_of_each_slots_largest_and_the_string_shows_all_three(base):
    from search_spaces import APQ_SHARES

    space = get_space("apq(ofa_mbv3_small)")
    assert space.dtypes == ("fp32", "fp16", "int8") and space.base.shares == APQ_SHARES
    rng = np.random.default_rng(0)
    for _ in range(20):
        config = space.sample(rng)
        pruned_config = config.base
        for unit, width in zip(
            space.base.units(pruned_config.base), pruned_config.widths, strict=True
        ):
            assert width == unit.width or width >= 0.5 * unit.max_width - space.base.channel_step
            assert width % space.base.channel_step == 0 or width == unit.width
        text = str(config)
        assert "_p" in text and "_q" in text and space.parse(text) == config
        assert space.config_from_params(space.trial_params(config)) == config
    with pytest.raises(ValueError, match="shares"):
        pruned(base, shares=(0.5, 0.75))  # without 1.0: no unpruned width
