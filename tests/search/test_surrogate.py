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
