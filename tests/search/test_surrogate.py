"""The ``surrogate`` sampler's proposer: its proposals are new configs spread over the latency
range up to the reference."""

from __future__ import annotations

import numpy as np
import torch

from nas.paths import assets_root
from nas.search import load_ofa_predictor, make_proposer
from search_spaces import get_space

PREDICTOR = assets_root() / "predictors" / "ofa_mbv3_w12_imagenet_acc.pth"


def _labelled(space, predictor, n: int, seed: int) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    with torch.no_grad():
        x = torch.from_numpy(np.stack([space.encode(c) for c in configs]))
        return configs, predictor(x).squeeze(1).double().numpy()


def test_proposals_are_new_configs_spread_over_the_latency_bins():
    space = get_space("ofa_mbv3")
    predictor = load_ofa_predictor(PREDICTOR)
    evaluated_configs, accuracy = _labelled(space, predictor, 120, seed=2)
    evaluated = list(zip(evaluated_configs, accuracy.tolist(), strict=True))
    reference = float(np.median([space.macs(c) for c in evaluated_configs]))
    proposer = make_proposer("surrogate", space, space.macs, reference, seed=0)
    proposals = proposer.propose(evaluated, 8)
    seen = {str(c) for c in evaluated_configs}
    assert 5 <= len(proposals) <= 8
    assert len({str(c) for c in proposals}) == len(proposals)
    assert not seen & {str(c) for c in proposals}
    assert all(space.validate(c) == c for c in proposals)
    costs = sorted(space.macs(c) for c in proposals)
    assert costs[-1] <= reference  # nothing beyond the reference latency
    # spread: the proposals' costs cover at least half the range from the smallest to the reference
    low = space.macs(space.smallest())
    assert costs[-1] - costs[0] >= 0.5 * (reference - low), (costs, low, reference)


def _best_under(configs, accuracy, cost, budget: float) -> float:
    return max(a for c, a in zip(configs, accuracy, strict=True) if cost(c) <= budget)


def test_searching_under_a_budget_beats_random_draws_under_it():
    """Told a budget, the proposer's rounds find a better subnet under it than as many random
    draws do (OFA's predictor as the oracle, cost in MACs)."""
    space = get_space("ofa_mbv3")
    predictor = load_ofa_predictor(PREDICTOR)
    cost = space.macs
    rng = np.random.default_rng(5)
    budget = float(np.quantile([cost(space.sample(rng)) for _ in range(200)], 0.2))
    configs, accuracy = _labelled(space, predictor, 100, seed=4)  # the warm-up
    proposer = make_proposer(
        "surrogate", space, cost, cost(space.largest()), seed=0, budgets_ms=[budget]
    )
    for _ in range(2):  # two rounds of 20: 8 of each under the budget
        proposals = proposer.propose(list(zip(configs, accuracy.tolist(), strict=True)), 20)
        assert len(proposals) <= 20 and not {str(c) for c in configs} & {str(c) for c in proposals}
        assert sum(cost(c) <= budget for c in proposals) >= 8
        with torch.no_grad():
            x = torch.from_numpy(np.stack([space.encode(c) for c in proposals]))
            scores = predictor(x).squeeze(1).double().numpy()
        configs, accuracy = configs + proposals, np.concatenate([accuracy, scores])
    random_configs, random_accuracy = _labelled(space, predictor, 140, seed=4)
    found = _best_under(configs, accuracy, cost, budget)
    assert found > _best_under(random_configs, random_accuracy, cost, budget) + 0.005


def test_a_large_jump_is_brought_back_under_the_budget_toward_the_smallest_subnet():
    space = get_space("ofa_mbv3")
    proposer = make_proposer("surrogate", space, space.macs, space.macs(space.largest()), seed=0)
    budget = 1.2 * space.macs(space.smallest())
    rng = np.random.default_rng(0)
    small = space.trial_params(space.smallest())
    for _ in range(5):
        config = space.mutate(space.largest(), rng, 0.15)
        shrunk = proposer._shrink(config, budget)
        assert space.macs(shrunk) <= budget < space.macs(config)
        assert space.validate(shrunk) == shrunk
        before, after = space.trial_params(config), space.trial_params(shrunk)
        # it moved toward the smallest subnet: more of its choices are the smallest's
        assert sum(after[k] == small[k] for k in small) > sum(before[k] == small[k] for k in small)


def test_the_rating_adds_the_posterior_std_where_the_trials_say_little():
    space = get_space("ofa_mbv3")
    predictor = load_ofa_predictor(PREDICTOR)
    configs, accuracy = _labelled(space, predictor, 150, seed=1)
    proposer = make_proposer("surrogate", space, space.macs, 1.0, seed=0)
    x = proposer._encode(configs)
    mean, rate = proposer._fit(x, accuracy), proposer._fit(x, accuracy, explore=1.0)
    unseen, _ = _labelled(space, predictor, 50, seed=9)
    z = proposer._encode(unseen)
    bonus = rate(z) - mean(z)
    assert np.all(bonus > 0)
    # a trial it was fitted on is known better than a config it never saw
    assert np.median(rate(x) - mean(x)) < np.median(bonus)
