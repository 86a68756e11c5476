"""The ``apq`` sampler's proposer: each proposal's per-layer precisions follow what the latency
table and the size model say each precision costs (``nas/search/_apq.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nas.search import make_proposer
from nas.search._apq import PrecisionProposer
from search_spaces import get_space


@pytest.fixture(scope="module")
def space():
    return get_space("apq(ofa_mbv3_small)")


def _slow_int8_at_even_layers(space):
    """A table where int8 costs 1 ms more than the float precisions at every even layer and
    nothing more at the odd ones (no boundary ops): the latency-first choice is known."""

    def latency(config) -> float:
        return sum(
            0.01 + (1.0 if d == "int8" and i % 2 == 0 else 0.0) for i, d in enumerate(config.dtypes)
        )

    return latency


def test_precisions_follow_the_table(space):
    latency = _slow_int8_at_even_layers(space)
    proposer = PrecisionProposer(space, latency, latency(space.largest()))
    base = space.base.largest()
    fastest = proposer.precisions(base, math.inf)
    # latency first: no int8 where it is slow; elsewhere, and between the float precisions
    # (same time), the fewest bytes: at each layer no other precision prices lower
    n = len(fastest.dtypes)
    assert all(fastest.dtypes[i] != "int8" for i in range(0, n, 2))
    for i in range(n):
        at = {
            d: type(fastest)(base, fastest.dtypes[:i] + (d,) + fastest.dtypes[i + 1 :])
            for d in space.dtypes
        }
        priced = {d: (latency(c), proposer.size_kb(c)) for d, c in at.items()}
        assert priced[fastest.dtypes[i]] == min(priced.values()), (i, priced)
    # the fp32 weights of the float layers are stored at fp16, and most odd layers go int8
    assert fastest.dtypes.count("int8") >= n // 2 - 2
    assert proposer.size_kb(fastest) < 0.6 * proposer.size_kb(space.largest())
    # size only: int8 wherever it saves bytes, however slow (a smaller file than all-int8)
    smallest = proposer.precisions(base, 0.0)
    all_int8 = type(smallest)(base, ("int8",) * n)
    assert smallest.dtypes.count("int8") >= n - 4
    assert proposer.size_kb(smallest) <= proposer.size_kb(all_int8)
    # any trade-off between: no uniform precision is cheaper at it
    for lam in (1.0, 100.0, 10_000.0):
        mixed = proposer.precisions(base, lam)
        cost = proposer.size_kb(mixed) + lam * latency(mixed)
        for d in space.dtypes:
            uniform = type(mixed)(base, (d,) * len(mixed.dtypes))
            assert cost <= proposer.size_kb(uniform) + lam * latency(uniform) + 1e-9


def test_proposals_evolve_from_the_front(space):
    latency = _slow_int8_at_even_layers(space)
    proposer = make_proposer("apq", space, latency, latency(space.largest()), seed=0)
    first = proposer.propose([], 25)
    # nothing evaluated: the smallest network (unpruned) and the largest, each at its fastest
    # and its smallest precisions
    assert len(first) == 4 and len({str(c) for c in first}) == 4
    assert {str(c.base) for c in first} == {
        str(space.base.parse(str(space.base.base.smallest()))),
        str(space.base.largest()),
    }
    assert sum(c.dtypes.count("int8") >= len(c.dtypes) - 4 for c in first) == 2  # smallest
    assert sum("int8" not in c.dtypes[::2] for c in first) == 2  # fastest
    rng = np.random.default_rng(0)
    evaluated = [(c, 0.9 + 0.001 * i) for i, c in enumerate(first)]
    evaluated += [(space.sample(rng), 0.5) for _ in range(6)]
    proposals = proposer.propose(evaluated, 25)
    seen = {str(c) for c, _ in evaluated}
    assert len(proposals) == 4  # a round is at most round_size, for more generations
    for c in proposals:
        assert space.validate(c) == c and str(c) not in seen
        # fp16 costs fp32's time in fewer bytes here: no proposal is as big as its fp32 self
        fp32 = type(c)(c.base, ("fp32",) * len(c.dtypes))
        assert proposer.size_kb(c) < 0.6 * proposer.size_kb(fp32)


def test_the_driver_prices_proposals_as_it_prices_trials(monkeypatch):
    """The ``apq`` proposer's latency is the search's own pricing (``SearchJob._predict``),
    which has a host table of this machine measure the fp16, int8 and boundary entries it lacks,
    rather than the table's plain ``predict``, which fails on them."""
    import dataclasses
    from pathlib import Path

    from nas.search import SearchJob
    from nas.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "runs" / "fashion_mnist_apq.yaml")
    spec = dataclasses.replace(spec, search=dataclasses.replace(spec.search, sampler="apq"))
    job = SearchJob(spec, track=False)
    asked = []

    def predict(model, config):  # the fp32 entries the shipped table has, nothing measured
        asked.append((model, str(config)))
        return model.predict(job.space.parse(str(config.base))).ms

    monkeypatch.setattr(SearchJob, "_predict", staticmethod(predict))
    proposer = job._proposer()
    small = proposer._unwrapped_smallest()
    config = proposer.precisions(small, math.inf)
    assert asked and all(model is job.devices[0] for model, _ in asked)
    assert str(config) in {c for _, c in asked}
    # a proposer that rates thousands of candidates gets the table as it is
    monkeypatch.undo()
    spec = dataclasses.replace(
        spec,
        space="ofa_mbv3_small",
        search=dataclasses.replace(spec.search, sampler="surrogate"),
    )
    surrogate_job = SearchJob(spec, track=False)
    asked.clear()
    monkeypatch.setattr(SearchJob, "_predict", staticmethod(predict))
    surrogate = surrogate_job._proposer()
    assert surrogate.latency(surrogate.space.largest()) > 0 and not asked
