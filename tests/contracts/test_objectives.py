"""Contract suite run over every objective registered in nas.registry.OBJECTIVES, and what each
built-in one computes (MnasNet's reward: Tan et al., CVPR 2019, eq. 2)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from nas.errors import SpecError
from nas.registry import OBJECTIVES
from nas.search import Objective, make_objective
from nas.spec import SearchSpec

GRID = [
    {"accuracy": a, "latency": lat, "params": 2e6, "macs": 3e8}
    for a in (0.0, 0.3, 0.75, 1.0)
    for lat in (0.05, 1.0, 19.9, 20.0, 20.1, 400.0)
]


def _search(name: str) -> SearchSpec:
    return SearchSpec(objective=name, target_latency_ms=20.0)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_objective_gives_one_finite_value_per_direction_deterministically(name):
    objective = make_objective(_search(name))
    assert isinstance(objective, Objective)
    directions = objective.directions
    assert directions and set(directions) <= {"maximize", "minimize"}
    for figures in GRID:
        values = objective.values(figures)
        assert len(values) == len(directions) and all(math.isfinite(v) for v in values)
        assert values == make_objective(_search(name)).values(dict(figures))


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_objective_prefers_the_more_accurate_and_the_faster(name):
    """Whatever the objective, more accuracy at the same latency never scores worse, and less
    latency at the same accuracy never scores worse (in the direction of each value)."""
    objective = make_objective(_search(name))
    sign = [1 if d == "maximize" else -1 for d in objective.directions]

    def score(acc: float, lat: float) -> list[float]:
        values = objective.values({"accuracy": acc, "latency": lat, "params": 1e6, "macs": 1e8})
        return [s * v for s, v in zip(sign, values, strict=True)]

    for lat in (1.0, 20.0, 50.0):
        assert all(b >= a for a, b in zip(score(0.5, lat), score(0.6, lat), strict=True))
    for acc in (0.2, 0.7):
        assert all(b >= a for a, b in zip(score(acc, 30.0), score(acc, 10.0), strict=True))


def test_mnasnet_soft_reward_is_the_papers_formula():
    soft = make_objective(_search("mnasnet-soft"))
    assert soft.directions == ["maximize"]
    assert soft.values({"accuracy": 0.75, "latency": 20.0})[0] == pytest.approx(0.75)
    # twice the target: 0.75 * 2 ** -0.07 (about 4.7% less); half the target: 4.97% more
    assert soft.values({"accuracy": 0.75, "latency": 40.0})[0] == pytest.approx(0.75 * 2**-0.07)
    assert soft.values({"accuracy": 0.75, "latency": 10.0})[0] == pytest.approx(0.75 * 2**0.07)


def test_mnasnet_hard_reward_is_accuracy_up_to_the_target_then_falls_as_latency_grows():
    hard = make_objective(_search("mnasnet-hard"))
    assert hard.values({"accuracy": 0.75, "latency": 5.0}) == [0.75]
    assert hard.values({"accuracy": 0.75, "latency": 20.0}) == [0.75]
    assert hard.values({"accuracy": 0.75, "latency": 40.0})[0] == pytest.approx(0.375)


def test_pareto_objective_follows_search_objectives():
    pareto = make_objective(SearchSpec(objectives=("accuracy", "latency", "macs")))
    assert pareto.directions == ["maximize", "minimize", "minimize"]
    assert pareto.values({"accuracy": 0.7, "latency": 12.0, "params": 5.0, "macs": 9.0}) == [
        0.7,
        12.0,
        9.0,
    ]


def test_spec_names_the_field_of_a_bad_objective():
    with pytest.raises(SpecError, match=r"search\.objective.*must be one of.*mnasnet-soft"):
        SearchSpec(objective="mnasnet")
    with pytest.raises(SpecError, match=r"search\.target_latency_ms.*mnasnet-hard"):
        SearchSpec(objective="mnasnet-hard")
    with pytest.raises(SpecError, match=r"search\.target_latency_ms"):
        SearchSpec(objective="mnasnet-soft", target_latency_ms=0)
    assert dataclasses.replace(SearchSpec(), objective="pareto").target_latency_ms is None
