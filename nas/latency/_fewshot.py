"""Few-shot latency for a new device: which architectures to time on it, and every architecture's
latency fitted from those few timings and the whole-architecture tables of devices timed in full.

The fit (``fit_fewshot``) is a mix of the source devices by non-negative least squares with an
intercept, optionally corrected by a ridge fit of the remaining error on op features. It works
best on *smoothed* sources (``smooth``): each source replaced by its own least-squares model on
op-interaction features (``op_features``), which removes most of its measurement noise. Pure
numpy/scipy; arrays are indexed by architecture, the same order in every argument.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from nas.errors import FewShotError

__all__ = [
    "DESIGNS",
    "FewShotError",
    "FewShotFit",
    "NB201_OPS",
    "choose_archs",
    "fit_fewshot",
    "nb201_ops",
    "op_counts",
    "op_features",
    "smooth",
]

#: NAS-Bench-201's candidate operations, in the order ``nb201_ops`` numbers them
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: how ``choose_archs`` may pick the architectures to time
DESIGNS = ("dopt", "spread", "random")
_RIDGES = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e6)


@dataclasses.dataclass(frozen=True)
class FewShotFit:
    """A fitted new device: ``predictions[i]`` is architecture ``i``'s latency (ms), the timed
    ones included (fitted, not copied). ``predictions = intercept + sources_std.T @ weights +
    centred residual features @ residual_coef``, with ``sources_std`` each source divided by its
    standard deviation (so the weights compare); ``ridge`` is the residual's penalty chosen by
    leave-one-out (``nan`` without residual features)."""

    predictions: np.ndarray
    intercept: float
    weights: np.ndarray
    residual_coef: np.ndarray
    ridge: float


def nb201_ops(archs: Sequence[str]) -> np.ndarray:
    """The op of each of the six edges of NAS-Bench-201 architecture strings
    (``|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|...~0|...~1|...~2|``), numbered as in
    ``NB201_OPS``: an int array of shape ``(len(archs), 6)``.

    Raises:
        FewShotError: a string is not a NAS-Bench-201 architecture (the message quotes it).
    """
    out = np.empty((len(archs), 6), dtype=np.int64)
    for row, arch in enumerate(archs):
        edges = [e for node in arch.split("+") for e in node.strip("|").split("|")]
        try:
            ops = [NB201_OPS.index(e.split("~")[0]) for e in edges]
        except ValueError:
            ops = []
        if len(ops) != 6:
            raise FewShotError(f"archs[{row}] is not a NAS-Bench-201 architecture: {arch!r}")
        out[row] = ops
    return out


def _check_ops(ops: np.ndarray, n_choices: int) -> np.ndarray:
    ops = np.asarray(ops)
    if ops.ndim != 2 or not np.issubdtype(ops.dtype, np.integer):
        raise FewShotError(f"ops must be a 2-D int array (architecture x slot), got {ops.shape}")
    if ops.size and (ops.min() < 0 or ops.max() >= n_choices):
        raise FewShotError(f"ops must lie in 0..{n_choices - 1} (n_choices={n_choices})")
    return ops


def op_features(ops: np.ndarray, n_choices: int = len(NB201_OPS), *, order: int = 1) -> np.ndarray:
    """A constant column, then the one-hot of every combination of ``order`` slots' choices
    (``order=1``: one column per (slot, op); 2 adds every pair of slots, 3 every triple): the
    design matrix, shape ``(architectures, features)``, of a latency model with interactions.

    Raises:
        FewShotError: ``ops`` is not an int matrix in ``0..n_choices-1``, or ``order`` is not in
            ``1..slots``.
    """
    ops = _check_ops(ops, n_choices)
    slots = ops.shape[1]
    if not 1 <= order <= slots:
        raise FewShotError(f"order must be in 1..{slots}, got {order}")
    blocks = [np.ones((len(ops), 1))]
    for combo in itertools.combinations(range(slots), order):
        code = np.zeros(len(ops), dtype=np.int64)
        for slot in combo:
            code = code * n_choices + ops[:, slot]
        block = np.zeros((len(ops), n_choices ** len(combo)))
        block[np.arange(len(ops)), code] = 1.0
        blocks.append(block)
    return np.hstack(blocks)


def op_counts(ops: np.ndarray, n_choices: int = len(NB201_OPS)) -> np.ndarray:
    """How many slots hold each choice but the first (``none`` for NAS-Bench-201): shape
    ``(architectures, n_choices - 1)``; the residual features of a per-op-type model."""
    ops = _check_ops(ops, n_choices)
    return np.stack([(ops == c).sum(axis=1) for c in range(1, n_choices)], axis=1).astype(float)


def smooth(latencies: np.ndarray, features: np.ndarray, *, ridge: float = 1e-3) -> np.ndarray:
    """Each row of ``latencies`` (devices x architectures) replaced by its own ridge
    least-squares model on ``features`` (architectures x features, e.g. ``op_features``): the
    part of a device's timings the architecture explains, without its measurement noise.

    Raises:
        FewShotError: the shapes do not match, or a value is not finite.
    """
    lat = _as_sources(latencies, "latencies")
    features = np.asarray(features, dtype=float)
    if features.ndim != 2 or len(features) != lat.shape[1]:
        raise FewShotError(
            f"features must have one row per architecture ({lat.shape[1]}), got {features.shape}"
        )
    gram = features.T @ features
    gram[np.diag_indices_from(gram)] += ridge
    coef = np.linalg.solve(gram, features.T @ lat.T)
    return (features @ coef).T


def _as_sources(sources: np.ndarray, name: str = "sources") -> np.ndarray:
    sources = np.asarray(sources, dtype=float)
    if sources.ndim != 2 or 0 in sources.shape:
        raise FewShotError(f"{name} must be a non-empty (devices x architectures) array")
    if not np.isfinite(sources).all():
        raise FewShotError(f"{name} must be finite")
    return sources


def _standardized(sources: np.ndarray) -> np.ndarray:
    std = sources.std(axis=1, keepdims=True)
    if (std == 0).any():
        raise FewShotError("sources: a device has the same latency for every architecture")
    return (sources - sources.mean(axis=1, keepdims=True)) / std


def choose_archs(
    sources: np.ndarray, n: int, *, seed: int = 0, design: str = "dopt", pool: int = 2000
) -> np.ndarray:
    """Which ``n`` architectures to time on the new device: distinct indices into the sources'
    columns, the same for the same arguments (all randomness from ``seed``).

    design: ``dopt`` (default) greedily picks, from ``pool`` architectures drawn at random, the
    one whose standardized source latencies the picks so far explain least (D-optimal for the
    mix ``fit_fewshot`` fits; with ``pool`` >= the architectures the picks do not depend on the
    seed); ``spread`` takes one at random from each of ``n`` equal-count
    bins of the sources' consensus (mean standardized latency); ``random`` draws uniformly.

    Raises:
        FewShotError: ``n`` is not in ``1..architectures``, ``design`` is unknown, or the sources
            are malformed.
    """
    sources = _as_sources(sources)
    m = sources.shape[1]
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= m:
        raise FewShotError(f"n must be an int in 1..{m} (the architectures), got {n!r}")
    if design not in DESIGNS:
        raise FewShotError(f"design must be one of {DESIGNS}, got {design!r}")
    rng = np.random.default_rng(seed)
    if design == "random":
        return rng.choice(m, size=n, replace=False)
    z = _standardized(sources)
    if design == "spread":
        order = np.argsort(z.mean(axis=0), kind="stable")
        edges = np.linspace(0, m, n + 1).astype(int)
        return order[[rng.integers(lo, hi) for lo, hi in itertools.pairwise(edges)]]
    candidates = rng.choice(m, size=max(n, min(pool, m)), replace=False)
    x = np.vstack([np.ones(m), z]).T[candidates]
    information = 1e-3 * np.eye(x.shape[1])
    picked: list[int] = []
    for _ in range(n):
        gain = np.einsum("ij,jk,ik->i", x, np.linalg.inv(information), x)
        gain[picked] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        information += np.outer(x[best], x[best])
    return candidates[picked]


def fit_fewshot(
    sources: np.ndarray,
    chosen: Sequence[int] | np.ndarray,
    timings: Sequence[float] | np.ndarray,
    *,
    residual_features: np.ndarray | None = None,
    alpha: float = 0.1,
    log: bool = False,
) -> FewShotFit:
    """Fit a new device from ``sources`` (devices x architectures, ms; ideally ``smooth``-ed)
    and ``timings[j]``, its measured latency of architecture ``chosen[j]``.

    The new device is ``intercept + sum_k w_k * source_k / std_k`` with ``w >= 0`` (a device
    is not faster where its peers are slower), by least squares with the penalty
    ``alpha * |w|^2`` (which spreads weight over similar sources and makes the fit well posed
    with fewer timings than sources). With ``residual_features`` (architectures x features, e.g.
    ``op_counts``), the remaining error is then fitted by ridge regression on the centred
    features, its penalty chosen by leave-one-out over the timings. ``log``: fit log-latencies
    (the timings and sources must then be > 0).

    Raises:
        FewShotError: naming the bad argument: shapes that disagree, indices out of range or
            repeated, non-finite values, or fewer timings than the fit has parameters (2 with
            ``alpha > 0``, devices + 1 without).
    """
    from scipy.optimize import lsq_linear  # scipy only where a fit is made

    sources = _as_sources(sources)
    k, m = sources.shape
    chosen, timings = _check_fit_args(sources, chosen, timings, alpha)
    if log:
        if (sources <= 0).any() or (timings <= 0).any():
            raise FewShotError("log=True needs sources and timings > 0")
        sources, target = np.log(sources), np.log(timings)
    else:
        target = timings
    scale = sources.std(axis=1)
    if (scale == 0).any():
        raise FewShotError("sources: a device has the same latency for every architecture")
    design = np.hstack([np.ones((m, 1)), (sources / scale[:, None]).T])
    rows, goal = design[chosen], target
    if alpha > 0:
        penalty = np.hstack([np.zeros((k, 1)), np.sqrt(alpha) * np.eye(k)])
        rows, goal = np.vstack([rows, penalty]), np.concatenate([goal, np.zeros(k)])
    lower = np.concatenate([[-np.inf], np.zeros(k)])
    solution = lsq_linear(rows, goal, bounds=(lower, np.full(k + 1, np.inf))).x
    prediction = design @ solution

    residual_coef, ridge = np.zeros(0), float("nan")
    if residual_features is not None:
        features = np.asarray(residual_features, dtype=float)
        if features.ndim != 2 or len(features) != m:
            raise FewShotError(
                f"residual_features must have one row per architecture ({m}), got {features.shape}"
            )
        centred = features - features.mean(axis=0)
        residual_coef, ridge = _loo_ridge(centred[chosen], target - prediction[chosen])
        prediction = prediction + centred @ residual_coef
    return FewShotFit(
        predictions=np.exp(prediction) if log else prediction,
        intercept=float(solution[0]),
        weights=solution[1:],
        residual_coef=residual_coef,
        ridge=ridge,
    )


def _check_fit_args(
    sources: np.ndarray, chosen, timings, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """``fit_fewshot``'s argument checks; returns ``chosen`` and ``timings`` as arrays."""
    k, m = sources.shape
    chosen = np.asarray(chosen)
    timings = np.asarray(timings, dtype=float)
    if chosen.ndim != 1 or not np.issubdtype(chosen.dtype, np.integer):
        raise FewShotError(f"chosen must be a 1-D array of architecture indices, got {chosen!r}")
    if timings.shape != chosen.shape:
        raise FewShotError(
            f"timings must have one value per chosen architecture ({len(chosen)}), "
            f"got shape {timings.shape}"
        )
    if chosen.size and (chosen.min() < 0 or chosen.max() >= m):
        raise FewShotError(f"chosen must index the sources' {m} architectures (0..{m - 1})")
    if len(np.unique(chosen)) != len(chosen):
        raise FewShotError("chosen must not repeat an architecture")
    if not np.isfinite(timings).all() or (timings < 0).any():
        raise FewShotError("timings must be finite and >= 0 (ms)")
    if not (isinstance(alpha, int | float) and alpha >= 0):
        raise FewShotError(f"alpha must be a number >= 0, got {alpha!r}")
    needed = 2 if alpha > 0 else k + 1
    if len(chosen) < needed:
        raise FewShotError(
            f"chosen: {len(chosen)} timing(s) cannot fit {needed} parameters "
            f"({'intercept and scale' if alpha > 0 else f'intercept and {k} source weights'})"
        )
    return chosen, timings


def _loo_ridge(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge coefficients of ``y`` on ``x`` (no intercept: the mix has one), the penalty the one
    of ``_RIDGES`` with the least leave-one-out error (closed form through the hat matrix)."""
    best = (np.inf, _RIDGES[-1])
    eye = np.eye(x.shape[1])
    for ridge in _RIDGES:
        hat = x @ np.linalg.solve(x.T @ x + ridge * eye, x.T)
        loo = (y - hat @ y) / np.maximum(1.0 - np.diag(hat), 1e-9)
        best = min(best, (float(np.mean(loo**2)), ridge))
    ridge = best[1]
    return np.linalg.solve(x.T @ x + ridge * eye, x.T @ y), ridge
