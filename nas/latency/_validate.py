"""Validation: whole random subnets as ``.tflite``, measured end to end, against the table."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nas.export import Reference, time_round_robin
from nas.latency._model import LayerTableLatency

__all__ = [
    "ValidationReport",
    "measure_subnets",
    "subnet_files",
    "subnet_tflite",
    "validation_report",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ValidationReport:
    n: int
    within_10pct: float
    mape: float
    kendall_tau: float
    dtype: str
    threads: int
    overhead_ms: float
    points: list[dict[str, Any]]
    #: the machine the measured side was timed on (``HostFingerprint.describe()``)
    machine: str = ""
    scale: float = 1.0
    #: why the measured side is flagged (the machine was busy while it was timed), or None
    busy: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "busy": self.busy,
            "n": self.n,
            "within_10pct": self.within_10pct,
            "mape": self.mape,
            "kendall_tau": self.kendall_tau,
            "dtype": self.dtype,
            "threads": self.threads,
            "overhead_ms": self.overhead_ms,
            "scale": self.scale,
            "machine": self.machine,
        }


def subnet_tflite(space, config, dtype: str) -> bytes:
    """A whole subnet as it ships (``space.build``, converted as export converts it) with
    weights seeded by the config, as ``.tflite`` (int8: int8 in and out); a config that gives
    its layers precisions as its ``tflite-mixed`` file (``dtype`` is then the device's)."""
    from nas.latency._calibrate import _seed, mixed_module_tflite, module_tflite

    layer_dtypes = space.layer_dtypes(config)
    if layer_dtypes is not None:
        return mixed_module_tflite(
            lambda: space.build(config), space.input_shape(config), layer_dtypes, _seed(str(config))
        )
    return module_tflite(
        lambda: space.build(config), space.input_shape(config), dtype, _seed(str(config))
    )


def subnet_files(
    space: Any,
    configs: list,
    dtype: str,
    cache_dir: Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Each config's whole subnet as it ships, as ``.tflite`` (``subnet_tflite``), converted
    once and cached in ``cache_dir`` (file paths there; the bytes without a cache)."""
    from nas.latency._calibrate import cached_tflite

    files = []
    for i, config in enumerate(configs):
        files.append(
            cached_tflite(
                cache_dir,
                f"subnet|{space.name}|{config}|{dtype}",
                lambda config=config: subnet_tflite(space, config, dtype),
            )
        )
        if progress is not None:
            progress(i + 1, len(configs))
    return files


def measure_subnets(
    model: LayerTableLatency | None,
    configs: list,
    dtype: str,
    threads: int,
    runs: int = 200,
    progress: Callable[[int, int], None] | None = None,
    cache_dir: Path | None = None,
    space: Any = None,
    span_s: float = 0.0,
    attempts: int = 1,
    reference: Reference | None = None,
) -> list[dict[str, Any]]:
    """Predicted layer sum (without overhead) and measured latency of each config. Every file
    is converted first, then all are timed together (``nas.export.time_round_robin``: each
    one's fastest of ten round-robin medians, as a table's entries are taken; the rounds spread
    over at least ``span_s`` seconds), watched for a busy machine (``nas.export.timed_quietly``,
    with ``reference``: the table's reference layers, ``nas.latency.reference_for``;
    ``attempts`` timings at most).
    Each point carries its spread (``measured_std_ms``) and ``busy`` (why the timing is
    flagged, or None). With ``model=None`` the files are only converted into ``cache_dir``
    (nothing is timed)."""
    from nas.export import timed_quietly

    space = model.space if model is not None else space
    files = subnet_files(space, configs, dtype, cache_dir, progress)
    if model is None:
        return []
    timings, conditions = timed_quietly(
        lambda: time_round_robin(files, threads=threads, runs=runs, span_s=span_s),
        reference=reference,
        attempts=attempts,
        what=f"{len(files)} subnets",
    )
    return [
        {
            "config": str(config),
            "layer_sum_ms": model.layer_sum(config)[0],
            "measured_ms": timing.mean,
            "measured_std_ms": timing.std,
            "busy": conditions.busy,
        }
        for config, timing in zip(configs, timings, strict=True)
    ]


def validation_report(
    points: list[dict[str, Any]],
    overhead_ms: float,
    dtype: str,
    threads: int,
    scale: float = 1.0,
) -> ValidationReport:
    """The prediction (``scale`` times the layer sum, plus ``overhead_ms``: what
    ``LayerTableLatency.predict`` gives) against the measured latency of every point."""
    from scipy.stats import kendalltau

    pred = scale * np.array([p["layer_sum_ms"] for p in points]) + overhead_ms
    meas = np.array([p["measured_ms"] for p in points])
    rel = np.abs(pred - meas) / meas
    for p, value in zip(points, pred, strict=True):
        p["predicted_ms"] = float(value)
    from nas.export import HostFingerprint

    tau = float(kendalltau(pred, meas).statistic) if len(points) > 1 else float("nan")
    return ValidationReport(
        n=len(points),
        within_10pct=float(np.mean(rel <= 0.10)),
        mape=float(np.mean(rel)),
        kendall_tau=tau,
        dtype=dtype,
        threads=threads,
        overhead_ms=overhead_ms,
        scale=scale,
        points=points,
        machine=HostFingerprint.here().describe(),
        busy="; ".join(sorted({p["busy"] for p in points if p.get("busy")})) or None,
    )


def scatter_plot(report: ValidationReport, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meas = [p["measured_ms"] for p in report.points]
    pred = [p["predicted_ms"] for p in report.points]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(meas, pred, s=14)
    lo, hi = min(meas + pred) * 0.9, max(meas + pred) * 1.1
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="predicted = measured")
    ax.fill_between(
        [lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="gray", alpha=0.2, label="±10%"
    )
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency, LUT (ms)")
    ax.set_title(
        f"{title}\n{report.within_10pct:.0%} within ±10%, MAPE {report.mape:.1%}, τ "
        f"{report.kendall_tau:.3f}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
