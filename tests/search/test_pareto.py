from __future__ import annotations

import pytest

from nas.search import hypervolume_2d, pareto_front


def test_pareto_front_keeps_only_non_dominated_points():
    points = [(10, 0.80), (12, 0.79), (15, 0.85), (15, 0.84), (20, 0.85), (25, 0.90)]
    assert sorted(pareto_front(points)) == [0, 2, 5]


def test_hypervolume_by_hand():
    # two steps: (10, .8) and (20, .9) against reference (30 ms, .7)
    assert hypervolume_2d([(10, 0.8), (20, 0.9)], 30, 0.7) == pytest.approx(20 * 0.1 + 10 * 0.1)


def test_points_outside_the_window_add_nothing():
    assert hypervolume_2d([(40, 0.99), (10, 0.6)], 30, 0.7) == 0.0
    # a point faster than the window's lower edge counts from the edge
    assert hypervolume_2d([(5, 0.8)], 30, 0.7, min_latency=15) == pytest.approx(15 * 0.1)


def test_dominated_points_do_not_change_the_hypervolume():
    base = [(10, 0.8), (20, 0.9)]
    assert hypervolume_2d(base + [(15, 0.79), (25, 0.85)], 30, 0.7) == hypervolume_2d(base, 30, 0.7)


def _front_by_brute_force(points):
    return sorted(
        i
        for i, p in enumerate(points)
        if not any(
            all(a <= b for a, b in zip(q, p, strict=True)) and (q != p or j < i)
            for j, q in enumerate(points)
            if j != i
        )
    )


def test_nondominated_in_three_objectives_matches_brute_force():
    import numpy as np

    from nas.search import nondominated

    rng = np.random.default_rng(0)
    points = [tuple(p) for p in rng.integers(0, 6, size=(200, 3)).tolist()]
    assert nondominated(points) == _front_by_brute_force(points)
    # of two equal points the first is kept
    assert nondominated([(1, 2, 3), (1, 2, 3), (0, 5, 5)]) == [0, 2]


def test_hypervolume_in_three_objectives_by_hand_and_by_sampling():
    import numpy as np

    from nas.search import hypervolume

    # against (4, 4, 4): boxes [1,4]x[3,4]x[0,4] and [2,4]x[1,4]x[2,4], less their overlap
    a, b = (1.0, 3.0, 0.0), (2.0, 1.0, 2.0)
    both = 3 * 1 * 4 + 2 * 3 * 2 - 2 * 1 * 2
    assert hypervolume([a, b], (4, 4, 4)) == pytest.approx(both)
    assert hypervolume([a, b, (3.0, 3.5, 3.0)], (4, 4, 4)) == pytest.approx(both)  # dominated
    assert hypervolume([(5.0, 0.0, 0.0)], (4, 4, 4)) == 0.0  # outside the reference
    # against a Monte Carlo estimate on random points
    rng = np.random.default_rng(1)
    points = rng.random((30, 3)).tolist()
    samples = rng.random((200_000, 3))
    covered = np.zeros(len(samples), bool)
    for p in points:
        covered |= (samples >= p).all(axis=1)
    assert hypervolume(points, (1, 1, 1)) == pytest.approx(covered.mean(), abs=0.005)
    # the 2-D case agrees with hypervolume_2d (latency, -accuracy)
    two = [(10, 0.8), (20, 0.9)]
    assert hypervolume([(lat, -acc) for lat, acc in two], (30, -0.7)) == pytest.approx(
        hypervolume_2d(two, 30, 0.7)
    )
