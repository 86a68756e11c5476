"""The contract of nas.registry, over every registry: one entry per name, unknown names listed,
and a spec that names something unregistered fails on that field."""

from __future__ import annotations

import pytest

from nas import registry
from nas.errors import SpecError
from nas.registry import Registry, RegistryError
from nas.search import Sampler
from nas.spec import spec_from_dict

ALL = {
    "space": registry.SPACES,
    "sampler": registry.SAMPLERS,
    "objective": registry.OBJECTIVES,
    "evaluator": registry.EVALUATORS,
    "dataset": registry.DATASETS,
    "export format": registry.EXPORT_FORMATS,
    "criterion": registry.CRITERIA,
}


@pytest.mark.parametrize("kind", sorted(ALL))
def test_unknown_name_is_a_registry_error_listing_the_known_names(kind):
    names = ALL[kind].names()
    assert names, f"no {kind} is registered"
    with pytest.raises(RegistryError, match=f"unknown {kind} 'nope'; known: {', '.join(names)}"):
        ALL[kind].get("nope")
    with pytest.raises(KeyError):  # a RegistryError is also a KeyError and a SpecError
        ALL[kind].get("nope")


@pytest.mark.parametrize("kind", sorted(ALL))
def test_registering_a_taken_name_again_raises(kind):
    taken = ALL[kind].names()[0]
    with pytest.raises(ValueError, match=f"{kind} '{taken}' is registered already"):
        ALL[kind].register(taken, object())
    assert ALL[kind].get(taken) is not None and taken in ALL[kind]


def test_a_decorated_class_is_registered_once_and_temporarily_gone_after():
    reg: Registry = Registry("widget")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and reg.names() == ["a"]
    with pytest.raises(ValueError, match="widget 'a' is registered already"):
        reg.register("a")(type("B", (), {}))
    with reg.temporarily("b", int):
        assert reg.create("b", "7") == 7
    assert "b" not in reg and reg.names() == ["a"]


class _Halton(Sampler):
    def optuna_sampler(self, seed):
        import optuna

        return optuna.samplers.QMCSampler(seed=seed)


def test_a_sampler_registered_by_a_plugin_is_accepted_by_the_spec():
    with pytest.raises(SpecError, match="search.sampler = 'halton' must be one of"):
        spec_from_dict({"name": "x", "search": {"sampler": "halton"}})
    with registry.SAMPLERS.temporarily("halton", _Halton):
        assert spec_from_dict({"name": "x", "search": {"sampler": "halton"}}).search.sampler
    assert "halton" not in registry.SAMPLERS


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"search": {"sampler": "nope"}}, "search.sampler"),
        ({"search": {"objective": "nope"}}, "search.objective"),
        ({"evaluator": {"kind": "nope"}}, "evaluator.kind"),
        ({"dataset": {"name": "nope"}}, "dataset.name"),
        ({"export": {"formats": ["nope"]}}, r"export.formats\[0\]"),
        ({"space": "nope"}, "space"),
        ({"netadapt": {"budget_ratio": 0.5, "criterion": "nope"}}, "netadapt.criterion"),
    ],
)
def test_spec_naming_an_unregistered_entry_fails_on_that_field(data, field):
    with pytest.raises(SpecError, match=rf"^{field} = 'nope' must be one of \['"):
        spec_from_dict({"name": "x", **data})
