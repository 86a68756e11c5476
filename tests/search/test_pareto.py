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
