"""Few-shot latency on a new device, on HELP's NAS-Bench-201 measurements of six real devices.

    .venv/bin/python benchmarks/latency_fewshot.py [--methods NAME ...] [--seeds 10] \
        [--n 5 10 20 50] [--no-ceiling]

Each of the six shipped ``arch_table`` devices (``nas/assets/latency_luts/<device>/nb201``,
read with ``nas.latency.load_table``) is in turn the new one and the other five the sources. For
each N and seed, ``N`` architectures are chosen by the method's design and "timed" (their
published latency is read), every architecture is fitted (``nas.latency._fewshot``), and the
fit is scored on every other architecture: Spearman rho (ties averaged: four devices publish
whole ms) and the share within +-10% of the published latency. Prints, per method, each device's
mean +- std over the seeds, the mean over the six, and HELP's figures (Lee et al., NeurIPS 2021,
Table 3: 10 timings, Pixel2 0.802, Raspi4 0.890, mean 0.932 over its own six test devices, of
which only these two are here; BRP-NAS with 900 timings: Pixel2 0.666, Raspi4 0.847).

Then the ceilings: the same scores for models fitted on *every* architecture of the device (its
own model with op triples; the default method's family with all timings). The published timings
are noisy (the residuals of different devices are uncorrelated), so these bound what any fit
from a few timings can reach against them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.latency import load_table  # noqa: E402
from nas.latency._fewshot import (  # noqa: E402
    choose_archs,
    fit_fewshot,
    nb201_ops,
    op_counts,
    op_features,
    smooth,
)
from nas.paths import assets_root  # noqa: E402

DEVICES = ("pixel2", "pixel3", "samsung_a50", "samsung_s7", "essential_ph_1", "raspi4")
# HELP's Table 3 (10 timings) per device kind; the four other phones are held to Pixel2's figure
HELP_RHO = {"pixel2": 0.802, "raspi4": 0.890}
PHONE_ANCHOR = 0.802


@dataclasses.dataclass(frozen=True)
class Method:
    """How a new device is fitted: the sources as measured (``order`` 0) or smoothed by their
    own model with op interactions up to ``order``; the design that picks the timed
    architectures; the residual features (``none``, ``counts``: ops per type, ``onehot``: op
    per edge); log-space; ``alpha``: the penalty on the source weights."""

    order: int
    design: str
    residual: str = "none"
    log: bool = False
    alpha: float = 0.1
    doc: str = ""


METHODS = {
    "floor": Method(1, "spread", alpha=1e-6, doc="LS mix of per-op linear source models (issue)"),
    "mix-raw": Method(0, "spread", doc="NNLS mix of the measured sources"),
    "mix-raw-log": Method(0, "spread", log=True, doc="the same in log space"),
    "mix-raw-dopt": Method(0, "dopt", doc="measured sources, D-optimal picks"),
    "mix2-dopt": Method(2, "dopt", doc="sources smoothed with op pairs, D-optimal picks"),
    "mix3-random": Method(3, "random", doc="sources smoothed with op triples, random picks"),
    "mix3-spread": Method(3, "spread", doc="... range-spread picks"),
    "mix3-dopt": Method(3, "dopt", doc="... D-optimal picks"),
    "mix3-dopt+onehot": Method(3, "dopt", "onehot", doc="+ LOO ridge residual, op per edge"),
    "mix3-dopt+counts": Method(3, "dopt", "counts", doc="+ LOO ridge residual, ops per type"),
}
DEFAULT = "mix3-dopt+counts"


def load_devices() -> tuple[list[str], np.ndarray]:
    """The architecture strings and the (devices x architectures) latencies, via load_table."""
    tables = [
        load_table(assets_root() / "latency_luts" / d / "nb201" / "arch.yaml.gz") for d in DEVICES
    ]
    archs = sorted(tables[0].entries)
    return archs, np.array([[t.mean(a) for a in archs] for t in tables])


def evaluate(
    method: Method,
    latency: np.ndarray,
    smoothed: np.ndarray,
    residual: np.ndarray | None,
    ns: list[int],
    seeds: int,
) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """(device, N) -> (rho per seed, share within 10% per seed)."""
    out = {}
    for target, name in enumerate(DEVICES):
        sources = np.delete(smoothed, target, axis=0)
        truth = latency[target]
        for n in ns:
            rhos, shares = [], []
            for seed in range(seeds):
                chosen = choose_archs(sources, n, seed=seed, design=method.design)
                fit = fit_fewshot(
                    sources,
                    chosen,
                    truth[chosen],
                    residual_features=residual,
                    alpha=method.alpha,
                    log=method.log,
                )
                test = np.ones(len(truth), dtype=bool)
                test[chosen] = False
                rho, share = _scores(fit.predictions[test], truth[test])
                rhos.append(rho)
                shares.append(share)
            out[name, n] = (np.array(rhos), np.array(shares))
    return out


def report(name: str, method: Method, scores: dict, ns: list[int]) -> None:
    print(f"\n== {name}: {method.doc}  ({method})")
    head = "".join(f"  N={n:<3d} rho        w10%      " for n in ns)
    print(f"{'device':15s}{head}  HELP rho (10)")
    for device in DEVICES:
        cells = "".join(
            f"  {scores[device, n][0].mean():.3f}±{scores[device, n][0].std():.3f}"
            f"  {scores[device, n][1].mean():.2f}±{scores[device, n][1].std():.2f}  "
            for n in ns
        )
        anchor = HELP_RHO.get(device)
        print(f"{device:15s}{cells}  {anchor if anchor else f'(phone: {PHONE_ANCHOR})'}")
    means = "".join(
        f"  {np.mean([scores[d, n][0].mean() for d in DEVICES]):.3f}      "
        f"  {np.mean([scores[d, n][1].mean() for d in DEVICES]):.2f}       "
        for n in ns
    )
    print(f"{'mean of six':15s}{means}  (HELP 0.932 over other devices)")


def ceiling(latency: np.ndarray, ops: np.ndarray, counts: np.ndarray) -> None:
    """What no fit from a few timings can beat, because the published timings are noisy: each
    device scored against its own timings by models fitted on *all* of them (none held out).
    ``own o3``: the device's own least-squares model with op triples (the most a smooth model
    of the architecture explains); ``mix+counts``: the default method's family (mix of the other
    five smoothed sources + op-count residual) with every architecture timed."""
    print("\n== ceilings: models fitted on every architecture of the device (rho / w10%)")
    print(f"{'device':15s}  own o3         mix+counts (all timed)")
    triples = op_features(ops, order=3)
    smoothed = smooth(latency, triples)
    rows = []
    for target, device in enumerate(DEVICES):
        truth, every = latency[target], np.arange(latency.shape[1])
        mix = fit_fewshot(
            np.delete(smoothed, target, axis=0), every, truth, residual_features=counts
        ).predictions
        rows.append([_scores(p, truth) for p in (smoothed[target], mix)])
        print(f"{device:15s}" + "".join(f"  {r:.3f} / {w:.2f}  " for r, w in rows[-1]))
    mean = np.mean(rows, axis=0)
    print(f"{'mean of six':15s}" + "".join(f"  {r:.3f} / {w:.2f}  " for r, w in mean))


def _scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Spearman rho and the share within +-10% of ``truth``."""
    return spearmanr(pred, truth).statistic, float(np.mean(np.abs(pred - truth) <= 0.1 * truth))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument(
        "--no-ceiling", dest="ceiling", action="store_false", help="skip the ceilings' table"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    archs, latency = load_devices()
    loaded = time.perf_counter()
    print(f"loaded {len(DEVICES)} tables x {len(archs)} architectures in {loaded - start:.1f} s")
    ops = nb201_ops(archs)
    residuals = {
        "none": None,
        "counts": op_counts(ops),
        "onehot": op_features(ops, order=1)[:, 1:],
    }
    smoothed = {0: latency}
    summary = []
    for name in args.methods:
        method = METHODS[name]
        if method.order not in smoothed:
            smoothed[method.order] = smooth(latency, op_features(ops, order=method.order))
        began = time.perf_counter()
        scores = evaluate(
            method, latency, smoothed[method.order], residuals[method.residual], args.n, args.seeds
        )
        report(name, method, scores, args.n)
        summary.append((name, scores))
        print(f"({time.perf_counter() - began:.1f} s)")
    print("\n== summary: mean rho over the six (w10% share) per N; rho per device at N=10")
    for name, scores in summary:
        cells = "  ".join(
            f"N={n}: {np.mean([scores[d, n][0].mean() for d in DEVICES]):.3f}"
            f" ({np.mean([scores[d, n][1].mean() for d in DEVICES]):.2f})"
            for n in args.n
        )
        per = (
            " ".join(f"{d}={scores[d, 10][0].mean():.3f}" for d in DEVICES) if 10 in args.n else ""
        )
        mark = " (default)" if name == DEFAULT else ""
        print(f"{name}{mark}: {cells}\n    {per}")
    if args.ceiling:
        ceiling(latency, ops, residuals["counts"])
    print(f"\ntotal {time.perf_counter() - start:.1f} s (loading {loaded - start:.1f} s)")


if __name__ == "__main__":
    main()
