"""The search-space contract (``SearchSpace`` and its capabilities), run against every registered
space and the wrappers over them. Nothing here may know what a particular space looks like."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import optuna
import pytest
import torch

from nas.errors import ConfigError, SpecError
from nas.registry import SPACES, RegistryError
from search_spaces import (
    LayerSpec,
    MixedPrecisionSpace,
    Prunable,
    PrunedSpace,
    Scalable,
    SearchSpace,
    WeightSharing,
    get_space,
    list_spaces,
    mixed_precision,
    pruned,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

# wrapped spaces, by the names a spec gives them (nas.registry.SPACE_WRAPPERS)
WRAPPED = [
    "pruned(ofa_mbv3_small)",
    "mixed_precision(ofa_mbv3_small)",
    "mixed_precision(pruned(ofa_mbv3_small))",
    "apq(ofa_mbv3_small)",
    "int8(ofa_mbv3_small)",
]
ALL = [*list_spaces(), *WRAPPED]


def _make(name: str) -> SearchSpace:
    return get_space(name)


@pytest.fixture(params=ALL, scope="module")
def space(request) -> SearchSpace:
    return _make(request.param)


def _some(space: SearchSpace, seed: int, n: int = 5) -> list:
    rng = np.random.default_rng(seed)
    return [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(n)]


# ---- registry ----------------------------------------------------------------------------------
def test_get_space_and_list_spaces_are_the_spaces_registry():
    assert list_spaces() == SPACES.names() and list_spaces()
    for name in list_spaces():
        space = get_space(name)
        assert isinstance(space, SearchSpace) and space.name == name


def test_unknown_space_error_lists_the_known_ones():
    with pytest.raises(RegistryError, match=list_spaces()[0]):
        get_space("nope")


def test_a_space_registered_temporarily_is_found_by_name():
    with SPACES.temporarily("contract_test_space", lambda **_: pruned(get_space("ofa_mbv3_small"))):
        assert "contract_test_space" in list_spaces()
        assert isinstance(get_space("contract_test_space"), SearchSpace)
    assert "contract_test_space" not in list_spaces()


def test_a_wrapped_name_composes_the_registered_wrappers():
    space = get_space("mixed_precision(pruned(ofa_mbv3_small))", n_classes=7)
    assert isinstance(space, MixedPrecisionSpace) and isinstance(space.base, PrunedSpace)
    assert space.n_classes == 7 and space.name == "ofa_mbv3_small"
    direct = mixed_precision(pruned(get_space("ofa_mbv3_small", n_classes=7)))
    assert str(space.largest()) == str(direct.largest())
    with pytest.raises(RegistryError, match="mixed_precision"):
        get_space("quantized(ofa_mbv3_small)")
    for bad in ("pruned(ofa_mbv3_small", "pruned()", "(ofa_mbv3_small)"):
        with pytest.raises(SpecError, match="space"):
            get_space(bad)


def test_options_rebuild_the_same_space():
    for name in list_spaces():
        space = get_space(name)
        again = get_space(name, **space.options)
        assert str(again.largest()) == str(space.largest())
        assert again.n_classes == space.n_classes


# ---- configs -----------------------------------------------------------------------------------
def test_sample_is_valid_and_reproducible_with_a_seeded_generator(space):
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(30)]
    assert len({str(c) for c in configs}) > 20
    for c in configs:
        assert space.validate(c) is c


def test_string_form_round_trips_and_configs_are_immutable_values(space):
    for c in _some(space, 1, 15):
        assert space.parse(str(c)) == c
        assert space.resolve(str(c)) == c
        assert hash(space.parse(str(c))) == hash(c)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(c, dataclasses.fields(c)[0].name, None)
    assert space.resolve("largest") == space.largest()
    assert space.resolve("smallest") == space.smallest()


def test_parse_rejects_garbage_with_a_config_error(space):
    with pytest.raises(ConfigError):
        space.parse("hello")


def _wrong(value):
    """A value of the same kind that no space accepts for a field."""
    if isinstance(value, bool) or value is None:
        return "?"
    if isinstance(value, int):
        return -1
    if isinstance(value, tuple):
        return ()
    return None


def test_validate_rejects_a_wrong_field_and_the_message_names_it(space):
    config = space.largest()
    for field in dataclasses.fields(config):
        bad = dataclasses.replace(config, **{field.name: _wrong(getattr(config, field.name))})
        with pytest.raises(ConfigError, match=field.name):
            space.validate(bad)


def test_validate_rejects_another_kind_of_config(space):
    with pytest.raises(ConfigError):
        space.validate("not a config")


def test_suggest_in_a_real_study_and_params_rebuild_the_config(space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen, names = [], set()

    def objective(trial):
        config = space.suggest(trial)
        space.validate(config)
        seen.append((trial.number, config))
        names.add(frozenset(trial.params))
        return float(space.encode(config).sum())

    study.optimize(objective, n_trials=8)
    for number, config in seen:
        assert space.config_from_params(study.trials[number].params) == config
    assert len(names) == 1  # the same parameter set on every trial


def test_trial_params_enqueue_exactly_the_config(space):
    configs = _some(space, 3, 8)
    for c in configs:
        assert space.config_from_params(space.trial_params(c)) == c
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for c in configs[:3]:
        study.enqueue_trial(space.trial_params(c))
    assert [space.suggest(study.ask()) for _ in range(3)] == configs[:3]


def test_mutate_stays_in_the_space_and_changes_with_the_rate(space):
    rng = np.random.default_rng(4)
    base = space.sample(rng)
    assert space.mutate(base, rng, 0.0) == base
    children = [space.mutate(base, rng, 0.2) for _ in range(20)]
    for child in children:
        assert space.validate(child) is child
    assert sum(child != base for child in children) > 15


def test_fields_are_json_values(space):
    for c in _some(space, 6, 2):
        assert json.loads(json.dumps(space.fields(c))) == space.fields(c)


def test_a_space_pickles_for_ray_workers(space):
    again = pickle.loads(pickle.dumps(space))
    assert again.largest() == space.largest()
    assert again.parse(str(space.smallest())) == space.smallest()


# ---- encoding and costs ------------------------------------------------------------------------
def test_encode_is_a_fixed_length_finite_vector(space):
    for c in _some(space, 2, 3):
        x = space.encode(c)
        assert x.shape == (space.encoding_size,) and np.isfinite(x).all()
    assert not np.array_equal(space.encode(space.smallest()), space.encode(space.largest()))


def test_smallest_costs_less_than_largest(space):
    small, large = space.smallest(), space.largest()
    assert 0 < space.macs(small) < space.macs(large)
    assert 0 < space.params(small) < space.params(large)


def test_input_shape_is_channels_and_a_resolution_of_the_space(space):
    for c in _some(space, 8, 3):
        channels, height, width = space.input_shape(c)
        assert channels >= 1 and height == width and height in space.resolutions


def test_layers_are_layer_specs_and_all_layers_covers_them(space):
    rng = np.random.default_rng(5)
    by_resolution: dict[int, list] = {}
    for _ in range(60):
        c = space.sample(rng)
        by_resolution.setdefault(space.input_shape(c)[1], []).append(c)
    for resolution, configs in list(by_resolution.items())[:2]:
        catalog = space.all_layers(resolution)
        keys = [(layer.key, layer.dtype) for layer in catalog]
        assert len(set(keys)) == len(keys) > 0  # no duplicates
        for c in configs:
            layers = space.layers(c)
            assert layers and all(isinstance(layer, LayerSpec) for layer in layers)
            if space.enumerable_layers:
                assert {(layer.key, layer.dtype) for layer in layers} <= set(keys)


def test_layer_module_runs_one_layer_alone_or_says_the_space_cannot(space):
    layers = space.layers(space.sample(np.random.default_rng(13)))
    try:
        space.layer_module(layers[0])
    except ConfigError:  # a space priced otherwise (whole-architecture tables) says so, always
        for layer in layers:
            with pytest.raises(ConfigError, match=space.name):
                space.layer_module(layer)
        return
    for layer in layers:
        module = space.layer_module(layer)
        h, w, c = layer.input_shape
        assert not module.training
        with torch.no_grad():
            out = module(torch.randn(1, c, h, w))
        expected = layer.output_shape
        assert tuple(out.shape[1:]) == (
            expected if len(expected) == 1 else (expected[2], expected[0], expected[1])
        ), layer.key


def test_layer_paths_name_the_submodule_of_every_layer_or_the_space_says_it_cannot(space):
    config = space.sample(np.random.default_rng(17))
    try:
        paths = space.layer_paths(config)
    except ConfigError as e:
        assert space.name in str(e)
        return
    model = space.build(config)
    assert len(paths) == len(space.layers(config)) == len(set(paths))
    modules = [model.get_submodule(p) for p in paths]  # raises when a path names nothing
    assert all(isinstance(m, torch.nn.Module) and m is not model for m in modules)


# ---- models ------------------------------------------------------------------------------------
def _counted_macs(model: torch.nn.Module, shape) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


def test_build_maps_an_input_of_input_shape_to_n_classes_logits(space):
    for c in [space.smallest(), space.sample(np.random.default_rng(11))]:
        model = space.build(c)
        assert not model.training
        with torch.no_grad():
            out = model(torch.randn(1, *space.input_shape(c)))
        assert out.shape == (1, space.n_classes)


@pytest.mark.parametrize("name", [n for n in ALL if _make(n).exact_counts])
def test_macs_and_params_match_the_built_model_where_the_space_says_so(name):
    space = _make(name)
    for c in [space.smallest(), space.sample(np.random.default_rng(9))]:
        model = space.build(c)
        assert space.params(c) == sum(p.numel() for p in model.parameters())
        assert space.macs(c) == _counted_macs(model, space.input_shape(c))


@pytest.mark.parametrize("name", [n for n in ALL if isinstance(_make(n), WeightSharing)])
def test_weight_sharing_extract_equals_build_with_the_supernet_weights(name):
    space = _make(name)
    torch.manual_seed(0)
    supernet = space.supernet()
    with torch.no_grad():
        for p in supernet.parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if p.ndim == 1 else 0.0))
    state = supernet.state_dict()
    c = space.sample(np.random.default_rng(12))
    x = torch.randn(2, *space.input_shape(c))
    extracted, built = space.extract(supernet, c), space.build(c, weights=state)
    with torch.no_grad():
        a, b = extracted(x), built(x)
    assert torch.equal(a, b)  # a build that ignored the weights would differ
    space.load_supernet(supernet, state)
    with torch.no_grad():
        space.activate(supernet, c)
        assert supernet(x).shape == (2, space.n_classes)


# ---- the Prunable capability -------------------------------------------------------------------
PRUNABLE = [name for name in list_spaces() if isinstance(get_space(name), Prunable)]


@pytest.mark.parametrize("name", PRUNABLE)
def test_prunable_surgery_gives_the_model_its_pruned_layers_describe(name):
    space = get_space(name)
    c = space.smallest()
    units = space.units(c)
    slots = space.unit_slots()
    assert units and all(u.slot in slots and u.width <= slots[u.slot] for u in units)
    widths = tuple(
        next(w for w in range(u.width // 2, 0, -1) if w not in u.excluded) for u in units
    )
    model = space.build(c)
    torch.manual_seed(0)
    for unit, width in zip(units, widths, strict=True):
        norms = space.filter_norms(model, unit.name)
        assert norms.shape == (unit.width,)
        space.prune_unit(model, unit.name, width)
    assert space.widths_of(model, c) == widths
    assert sum(p.numel() for p in model.parameters()) == space.pruned_params(c, widths)
    assert space.pruned_macs(c, widths) < space.macs(c)
    with torch.no_grad():
        assert model(torch.randn(1, *space.input_shape(c))).shape == (1, space.n_classes)
    priced = space.pruned_layers(c, widths)
    assert len(priced) == len(space.layers(c)) and priced != space.layers(c)


@pytest.mark.parametrize("name", PRUNABLE)
def test_prunable_unit_output_holds_the_units_filters_and_scores_choose_the_kept_ones(name):
    """``unit_output`` yields one channel per filter of the unit; ``prune_unit`` with explicit
    scores keeps the highest-scored filters (in their order), whatever their norms."""
    space = get_space(name)
    c = space.smallest()
    torch.manual_seed(0)
    model = space.build(c).eval()
    shapes = {}
    units = space.units(c)
    handles = [
        space.unit_output(model, u.name).register_forward_hook(
            lambda _m, _i, out, n=u.name: shapes.__setitem__(n, out.shape)
        )
        for u in units
    ]
    with torch.no_grad():
        model(torch.randn(1, *space.input_shape(c)))
    for h in handles:
        h.remove()
    assert {u.name: shapes[u.name][1] for u in units} == {u.name: u.width for u in units}
    unit = units[0]
    norms = space.filter_norms(model, unit.name)
    kept = torch.sort(torch.topk(-norms, unit.width // 2).indices).values  # the smallest win
    space.prune_unit(model, unit.name, unit.width // 2, -norms)
    assert torch.allclose(space.filter_norms(model, unit.name), norms[kept])
    with pytest.raises(ValueError, match="scores given"):
        space.prune_unit(model, units[1].name, 8, torch.ones(3))


# ---- the Scalable capability -------------------------------------------------------------------
SCALABLE = [name for name in ALL if isinstance(_make(name), Scalable)]


@pytest.mark.parametrize("name", SCALABLE)
def test_scaling_is_valid_identity_at_one_and_never_shrinks_as_a_multiplier_grows(name):
    space = _make(name)
    for c in _some(space, 21):
        assert space.scale(c, 1.0, 1.0, 1.0) == c
        previous = c
        for m in (1.1, 1.3, 1.6, 2.0, 3.0):
            for axis in range(3):
                mult = [1.0, 1.0, 1.0]
                mult[axis] = m
                scaled = space.scale(c, *mult)
                assert space.validate(scaled) == scaled
                assert space.macs(scaled) >= space.macs(c)
            grown = space.scale(c, m, m, m)
            assert space.macs(grown) >= space.macs(previous)
            previous = grown
    big = space.scale(space.smallest(), 10.0, 10.0, 10.0)
    assert space.macs(big) > space.macs(space.smallest())
