"""ofa_mbv3 is OFA's published w1.2 space: ofa's own network, the Note10 tables' keys."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

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
