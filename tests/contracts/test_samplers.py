"""Contract suite run over every sampler registered in nas.registry.SAMPLERS: a real Optuna study
driven through the space's ``suggest`` gives valid configs, reproducibly for the same seed."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from nas.registry import SAMPLERS
from nas.search import Sampler, make_proposer, make_sampler
from search_spaces import get_space

# one past the longest random start-up (GP: 10 trials), so every sampler's own model proposes too
# (a GP trial over this space's 37 categorical parameters takes about half a minute)
TRIALS = 11


@pytest.fixture(scope="module")
def space():
    return get_space("ofa_mbv3_small")


def _study(name: str, seed: int, space) -> list[str]:
    """A two-objective study like the search's (maximize, minimize); the config strings asked."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(name, seed)
    )
    asked = []
    for _ in range(TRIALS):
        trial = study.ask()
        config = space.suggest(trial)
        asked.append(str(config))
        # cheap, deterministic stand-ins for accuracy and latency that reward the larger nets
        study.tell(trial, [float(np.log(space.params(config))), space.macs(config) / 1e6])
    return asked


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLERS.names())
def test_sampler_drives_a_study_to_valid_configs_reproducibly(name, space):
    assert isinstance(SAMPLERS.create(name), Sampler)
    first = _study(name, 0, space)
    for text in first:
        config = space.parse(text)
        assert space.validate(config) == config and str(config) == text
    assert first == _study(name, 0, space), "the same seed must give the same trials"
    assert len(set(first)) > 1, "a sampler that asks one config only explores nothing"


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_sampler_builds_a_new_optuna_sampler_per_call(name):
    a, b = make_sampler(name, 0), make_sampler(name, 0)
    assert isinstance(a, optuna.samplers.BaseSampler) and a is not b


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_a_proposer_proposes_new_valid_configs_reproducibly(name, space):
    def latency(config) -> float:
        return space.macs(config) / 1e6

    def propose() -> list:
        proposer = make_proposer(name, space, latency, latency(space.largest()), seed=3)
        if proposer is None:  # the Optuna sampler alone picks this strategy's trials
            return []
        rng = np.random.default_rng(0)
        evaluated = [
            (c, float(np.log(space.params(c)))) for c in (space.sample(rng) for _ in range(20))
        ]
        proposals = proposer.propose(evaluated, 5)
        seen = {str(c) for c, _ in evaluated}
        assert 1 <= len(proposals) <= 5
        assert all(space.validate(c) == c and str(c) not in seen for c in proposals)
        return [str(c) for c in proposals]

    assert propose() == propose()
