"""Pareto fronts and hypervolume: in the (latency, accuracy) plane, and over any number of
minimized objectives (a search with model size as a third one)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["hypervolume", "hypervolume_2d", "nondominated", "pareto_front"]


def nondominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates, every objective minimized (negate the
    maximized ones); of equal points, the first."""
    front: list[int] = []
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
    for i in order:  # a point can only be dominated by one sorted before it
        p = points[i]
        if not any(all(a <= b for a, b in zip(points[j], p, strict=True)) for j in front):
            front.append(i)
    return sorted(front)


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Volume dominated by ``points`` and bounded by ``reference``, every objective minimized
    (negate the maximized ones); points not better than the reference in every objective add
    nothing. Exact (slicing along the first objective), for fronts of hundreds of points."""
    inside = [tuple(p) for p in points if all(a < r for a, r in zip(p, reference, strict=True))]
    if not inside:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in inside)
    inside = [inside[i] for i in nondominated(inside)]
    inside.sort()
    volume = 0.0
    for i, p in enumerate(inside):
        upper = inside[i + 1][0] if i + 1 < len(inside) else reference[0]
        if upper > p[0]:
            volume += (upper - p[0]) * hypervolume([q[1:] for q in inside[: i + 1]], reference[1:])
    return volume


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
