"""The ``compound`` sampler's proposer: EfficientNet's grid at phi = 1 on the smallest config,
then the most accurate grid point's scaled family, each config proposed once."""

from __future__ import annotations

import pytest

from nas.errors import SpecError
from nas.search import make_proposer
from nas.search._compound import compound_grid
from search_spaces import Scalable, get_space


def test_the_grid_keeps_alpha_beta2_gamma2_near_two():
    grid = compound_grid()
    assert len(grid) > 10 and (1.2, 1.1, 1.2) in grid and (1.0, 1.0, 1.0) not in grid
    assert all(abs(a * b * b * g * g - 2) <= 0.2 and min(a, b, g) >= 1 for a, b, g in grid)


def test_grid_first_then_the_family_of_the_most_accurate_grid_point():
    space = get_space("ofa_mbv3")
    assert isinstance(space, Scalable)
    proposer = make_proposer("compound", space, space.macs, 1e9, seed=0)
    assert proposer.warmup == 0  # the baseline needs no random warm-up
    grid = []
    while batch := proposer.propose([], 7):
        grid += batch
    assert len({str(c) for c in grid}) == len(grid) >= 5
    assert all(space.validate(c) == c for c in grid)
    assert proposer.propose([(c, 0.5) for c in grid[:-1]], 5) == []  # one grid point running

    # accuracy that rewards resolution most: the chosen point scales resolution hardest
    def accuracy(c) -> float:
        return c.resolution + 0.01 * sum(c.depths)

    evaluated = [(c, accuracy(c)) for c in grid]
    family = proposer.propose(evaluated, 100)
    best = max(grid, key=accuracy)
    assert family and all(str(c) not in {str(g) for g in grid} for c in family)
    assert str(space.smallest()) in {str(c) for c in family}  # phi = 0: the base itself
    whole = proposer.family()  # phi = 0 .. 6, the grid's configs among them
    assert str(best) in {str(c) for c in whole}  # phi = 1: the chosen grid point
    macs = [space.macs(c) for c in whole]
    assert macs == sorted(macs) and len(whole) >= 3  # phi grows along the family
    done = evaluated + [(c, 0.0) for c in family]
    assert proposer.propose(done, 100) == []  # nothing is proposed twice


def test_a_space_that_cannot_be_scaled_is_a_clear_error():
    space = get_space("pruned(ofa_mbv3_small)")
    with pytest.raises(SpecError, match=r"search\.sampler = 'compound' needs a space"):
        make_proposer("compound", space, lambda c: 1.0, 10.0, seed=0)
