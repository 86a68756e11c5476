"""ofa_mbv3 is OFA's published w1.2 space: ofa's own network, the Note10 tables' keys."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from nas.errors import CheckpointError, ConfigError
from nas.paths import assets_root
from search_spaces import get_space

NOTE10 = assets_root() / "latency_luts" / "note10" / "ofa_mbv3"


def test_supernet_is_ofa_mobilenetv3_w12_tensor_for_tensor():
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    ours = get_space("ofa_mbv3").supernet().state_dict()
    ref = OFAMobileNetV3(
        n_classes=1000,
        width_mult=1.2,
        ks_list=[3, 5, 7],
        expand_ratio_list=[3, 4, 6],
        depth_list=[2, 3, 4],
    ).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in ref.items()
    }


@pytest.mark.parametrize("resolution", [160, 176, 192, 208, 224])
def test_every_layer_key_of_1000_random_subnets_is_in_the_note10_table(resolution):
    space = get_space("ofa_mbv3")
    table = yaml.safe_load((NOTE10 / f"{resolution}.yaml").read_text())
    rng = np.random.default_rng(resolution)
    used = set()
    for _ in range(1000):
        config = dataclasses.replace(space.sample(rng), resolution=resolution)
        keys = [layer.key for layer in space.layers(config)]
        missing = [k for k in keys if k not in table]
        assert not missing, f"{config}: {missing[:3]} not in {resolution}_lookup_table.yaml"
        used.update(keys)
    # the random subnets reach (nearly) every entry the table has
    assert len(used) >= 0.95 * len(table)


def test_encoding_matches_ofas_accuracy_predictor_input():
    space = get_space("ofa_mbv3")
    assert space.encoding_size == 128  # 20 blocks x 3 kernels + 20 x 3 expands + 8 resolutions
    x = space.encode(space.largest())
    assert x[120 + (224 - 112) // 16] == 1.0


def test_small_space_is_stride_one_grayscale():
    space = get_space("ofa_mbv3_small")
    first = space.layers(space.largest())[0]
    assert first.input_shape == (28, 28, 1) and first.output_shape[:2] == (28, 28)
    assert len(space.definition.stages) < len(get_space("ofa_mbv3").definition.stages)


def test_parse_errors_name_the_stage_and_block():
    space = get_space("ofa_mbv3_small")
    bad = str(space.largest()).replace("k7", "k9", 1)
    with pytest.raises(ConfigError, match="stage 1 block 1: kernel 9"):
        space.parse(bad)


def test_params_outside_the_space_name_the_field():
    # config_from_params builds the config without optuna's FixedTrial (the proposers rebuild
    # tens of thousands per round); a bad value is still a ConfigError naming the field
    space = get_space("ofa_mbv3_small")
    params = space.trial_params(space.largest())
    with pytest.raises(ConfigError, match="stage 2 block 1: expand ratio 5"):
        space.config_from_params({**params, "e2_1": 5})
    with pytest.raises(ConfigError, match="'d3' missing"):
        space.config_from_params({k: v for k, v in params.items() if k != "d3"})


def test_encoding_is_one_hot_kernel_and_expand_per_active_block_and_one_resolution():
    space = get_space("ofa_mbv3_small")
    rng = np.random.default_rng(2)
    for c in [space.largest(), space.smallest(), space.sample(rng)]:
        x = space.encode(c)
        assert set(np.unique(x)) <= {0.0, 1.0}
        assert x.sum() == 2 * sum(c.depths) + 1


def test_layers_price_the_stem_every_block_and_the_head():
    space = get_space("ofa_mbv3_small")
    c = space.smallest()
    layers = space.layers(c)
    assert [layer.op for layer in layers[:2]] == ["Conv", "expanded_conv"]
    assert [layer.op for layer in layers[-4:]] == ["Conv_1", "AvgPool2D", "Conv_2", "Logits"]
    assert len(layers) == 2 + sum(c.depths) + 4


def test_build_is_ofas_static_mobilenetv3():
    space = get_space("ofa_mbv3_small")
    assert type(space.build(space.smallest())).__name__ == "MobileNetV3"


def test_all_layers_covers_every_resolution_of_random_configs():
    space = get_space("ofa_mbv3_small")
    rng = np.random.default_rng(5)
    for resolution in space.resolutions:
        catalog = {layer.key for layer in space.all_layers(resolution)}
        for _ in range(100):
            config = dataclasses.replace(space.sample(rng), resolution=resolution)
            assert {layer.key for layer in space.layers(config)} <= catalog


def test_units_are_the_expanding_blocks_and_the_two_head_convolutions():
    space = get_space("ofa_mbv3_small")
    units = space.units(space.largest())
    assert units[0].name == "blocks.1.mid" and units[0].excluded == (units[0].in_channels,)
    assert [u.name for u in units[-2:]] == ["final_expand", "feature_mix"]
    assert len(units) == 16 + 2  # the first block has no expansion
    assert len(space.unit_slots()) == 16 + 2


def test_supernet_checkpoint_that_does_not_fit_names_the_tensors():
    space = get_space("ofa_mbv3_small")
    state = space.supernet().state_dict()
    state.pop("classifier.linear.weight")
    with pytest.raises(CheckpointError, match="missing: classifier.linear.weight"):
        space.load_supernet(space.supernet(), state)


def test_restrict_narrows_the_elastic_dimensions_for_progressive_shrinking():
    space = get_space("ofa_mbv3_small")
    assert space.dimensions() == {
        "kernel": (3, 5, 7),
        "expand": (3, 4, 6),
        "depth": (1, 2, 3, 4),
        "resolution": (12, 16, 20, 24, 28),
    }
    phase = space.restrict(kernel=(7, 5), depth=(4,), resolution=(24, 28))
    rng = np.random.default_rng(0)
    for _ in range(20):
        c = space.validate(phase.sample(rng))  # every restricted config is in the space
        assert set(c.kernels) <= {5, 7} and set(c.depths) == {4} and c.resolution in (24, 28)
    assert phase.smallest().kernels[0] == 5 and phase.name == space.name
    assert phase.smallest().resolution == 24 and phase.largest().resolution == 28
    with pytest.raises(ConfigError, match="kernel"):
        space.restrict(kernel=(9,))
    with pytest.raises(ConfigError, match="width"):
        space.restrict(width=(1,))
