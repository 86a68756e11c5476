"""The search-space contract (ARCHITECTURE.md), run against every registered space."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch

from nas.errors import ConfigError
from search_spaces import SearchSpace, get_space, list_spaces


@pytest.fixture(params=list_spaces(), scope="module")
def space(request) -> SearchSpace:
    return get_space(request.param)


def test_registry_lists_the_design_spaces():
    assert {"ofa_mbv3", "ofa_mbv3_small"} <= set(list_spaces())


def test_unknown_space_error_lists_the_known_ones():
    with pytest.raises(ValueError, match="ofa_mbv3_small"):
        get_space("nope")


def test_sample_is_valid_and_deterministic_per_seed(space):
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(50)]
    assert len({str(c) for c in configs}) > 40
    for c in configs:
        assert space.validate(c) is c


def test_string_form_round_trips(space):
    rng = np.random.default_rng(1)
    for c in [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(20)]:
        assert space.parse(str(c)) == c
        assert space.resolve(str(c)) == c
    assert space.resolve("largest") == space.largest()


def test_parse_errors_name_the_problem(space):
    with pytest.raises(ConfigError, match="cannot parse"):
        space.parse("hello")
    bad = str(space.largest()).replace("k7", "k9", 1)
    with pytest.raises(ConfigError, match="stage 1 block 1: kernel 9"):
        space.parse(bad)


def test_suggest_works_in_a_real_study_and_params_rebuild_the_config(space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []

    def objective(trial):
        config = space.suggest(trial)
        space.validate(config)
        seen.append((trial.number, config))
        return float(space.encode(config).sum())

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=10)
    for number, config in seen:
        assert space.config_from_params(study.trials[number].params) == config


def test_trial_params_enqueue_exactly_the_config(space):
    rng = np.random.default_rng(3)
    configs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(10)]
    for c in configs:
        assert space.config_from_params(space.trial_params(c)) == c
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for c in configs[:3]:
        study.enqueue_trial(space.trial_params(c))
    asked = [space.suggest(study.ask()) for _ in range(3)]
    assert asked == configs[:3]


def test_mutate_stays_in_the_space_and_changes_with_the_rate(space):
    rng = np.random.default_rng(4)
    base = space.sample(rng)
    assert space.mutate(base, rng, 0.0) == base
    children = [space.mutate(base, rng, 0.2) for _ in range(30)]
    for child in children:
        assert space.validate(child) is child
    assert sum(child != base for child in children) > 20


def test_encode_is_fixed_length_one_hot(space):
    rng = np.random.default_rng(2)
    for c in [space.largest(), space.smallest(), space.sample(rng)]:
        x = space.encode(c)
        assert x.shape == (space.encoding_size,)
        assert set(np.unique(x)) <= {0.0, 1.0}
        n_blocks = sum(c.depths)
        assert x.sum() == 2 * n_blocks + 1  # kernel + expand per active block, one resolution


def test_layers_price_every_block_and_the_head(space):
    c = space.smallest()
    layers = space.layers(c)
    assert [layer.op for layer in layers[:2]] == ["Conv", "expanded_conv"]
    assert [layer.op for layer in layers[-4:]] == ["Conv_1", "AvgPool2D", "Conv_2", "Logits"]
    assert len(layers) == 2 + sum(c.depths) + 4
    assert (
        len({layer.key for layer in space.layers(space.largest())})
        > len({layer.key for layer in layers}) - 3
    )


def test_larger_configs_cost_more_macs(space):
    assert space.macs(space.largest()) > space.macs(space.smallest()) > 0


def test_build_gives_a_standalone_subnet_with_the_right_output(space):
    c = space.smallest()
    model = space.build(c).eval()
    channels = space.definition.in_channels
    with torch.no_grad():
        out = model(torch.randn(2, channels, c.resolution, c.resolution))
    assert out.shape == (2, space.definition.n_classes)
    assert type(model).__name__ == "MobileNetV3"  # a static network, not the dynamic supernet


def test_build_with_weights_copies_the_supernet_weights(space):
    supernet = space.supernet()
    for p in supernet.parameters():
        torch.nn.init.normal_(p)
    c = space.smallest()
    a = space.build(c, weights=supernet.state_dict())
    b = space.extract(supernet, c)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_all_layers_covers_every_layer_of_random_configs(space):
    import dataclasses

    rng = np.random.default_rng(5)
    for resolution in space.definition.resolutions[:2]:
        catalog = {layer.key for layer in space.all_layers(resolution)}
        assert len(catalog) == len(space.all_layers(resolution))  # no duplicates
        for _ in range(200):
            config = dataclasses.replace(space.sample(rng), resolution=resolution)
            assert {layer.key for layer in space.layers(config)} <= catalog


def test_params_count_matches_the_built_subnet(space):
    rng = np.random.default_rng(9)
    for config in [space.smallest(), space.sample(rng)]:
        built = sum(p.numel() for p in space.build(config).parameters())
        assert space.params(config) == built
