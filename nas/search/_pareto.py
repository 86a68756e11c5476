"""Pareto fronts and hypervolume in the (latency, accuracy) plane."""

from __future__ import annotations

__all__ = ["pareto_front", "hypervolume_2d"]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, minimizing latency (first) and maximizing accuracy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def hypervolume_2d(
    points: list[tuple[float, float]],
    ref_latency: float,
    ref_accuracy: float,
    min_latency: float = 0.0,
) -> float:
    """Area dominated by ``points`` within latency ``[min_latency, ref_latency]`` and accuracy
    above ``ref_accuracy``; points outside that window add nothing."""
    inside = [
        (max(lat, min_latency), acc)
        for lat, acc in points
        if lat <= ref_latency and acc > ref_accuracy
    ]
    area, best = 0.0, ref_accuracy
    for lat, acc in sorted(inside, key=lambda p: (p[0], -p[1])):
        if acc > best:
            area += (ref_latency - lat) * (acc - best)
            best = acc
    return area
