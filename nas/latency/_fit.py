"""``nas lut fit``: a whole-architecture table (``arch_table``) for a new device from a few timed
architectures and the arch tables of devices timed in full, by ``_fewshot``'s method (the sources
smoothed by a 3rd-order op model, mixed by non-negative least squares, the rest fitted on op
counts). The fit's error is measured on held-out timings: each timing left out in turn.

Only spaces whose config strings ``OP_PARSERS`` can read into per-slot ops (``nb201``) are
supported; the sources are table folders of that space (``<dir>/<space>/arch.yaml[.gz]``).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from nas.errors import FewShotError
from nas.latency._fewshot import (
    choose_archs,
    fit_fewshot,
    nb201_ops,
    op_counts,
    op_features,
    smooth,
)
from nas.latency._table import DeviceInfo, Entry, load_device, load_table, write_device, write_table

__all__ = ["OP_PARSERS", "FitReport", "fit_arch_table", "read_timings", "suggest_archs"]

#: space name -> parser of its config strings into an (architectures x slots) int array of ops
OP_PARSERS: Mapping[str, Callable[[Sequence[str]], np.ndarray]] = {"nb201": nb201_ops}
_ORDER = 3  # smoothing order measured best by benchmarks/latency_fewshot.py


@dataclasses.dataclass(frozen=True)
class FitReport:
    """What ``fit_arch_table`` wrote and how well it predicts timings it did not see:
    ``heldout_*`` from leaving each timing out in turn (needs >= 3 timings; else ``nan``)."""

    table: Path
    n: int
    sources: tuple[str, ...]
    weights: Mapping[str, float]
    heldout_mape: float
    heldout_within_10pct: float


@dataclasses.dataclass(frozen=True)
class _Sources:
    names: tuple[str, ...]
    configs: list[str]
    latency: np.ndarray  # sources x configs


def _arch_table_path(folder: Path, space: str) -> Path:
    packed = folder / space / "arch.yaml.gz"
    return packed if packed.is_file() else folder / space / "arch.yaml"


def _load_sources(dirs: Sequence[Path], space: str) -> _Sources:
    if space not in OP_PARSERS:
        raise FewShotError(f"--space {space!r}: nas lut fit supports {sorted(OP_PARSERS)}")
    if len(dirs) < 1:
        raise FewShotError("--sources: name at least one arch_table folder")
    names, tables = [], []
    for folder in dirs:
        folder = Path(folder)
        device = load_device(folder / "device.yaml")
        if device.kind != "arch_table":
            raise FewShotError(f"--sources {folder}: a {device.kind} folder, not an arch_table")
        tables.append(load_table(_arch_table_path(folder, space)))
        names.append(device.name)
    common = set(tables[0].entries)
    for table in tables[1:]:
        common &= set(table.entries)
    if not common:
        raise FewShotError(f"--sources: the tables of {space!r} share no architecture")
    configs = sorted(common)
    latency = np.array([[t.entries[c].mean for c in configs] for t in tables])
    return _Sources(tuple(names), configs, latency)


def read_timings(path: str | Path) -> dict[str, float]:
    """A CSV with columns ``config,ms`` (a header row; one row per timed architecture).

    Raises:
        FewShotError: naming the file and line of a missing column, a bad number or a repeat.
    """
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise FewShotError(f"--timings {path}: {e.strerror}") from e
    if not rows or not {"config", "ms"} <= set(rows[0]):
        raise FewShotError(f"--timings {path}: expected a header `config,ms` and one row per model")
    timings: dict[str, float] = {}
    for line, row in enumerate(rows, start=2):
        config, raw = (row.get("config") or "").strip(), (row.get("ms") or "").strip()
        try:
            ms = float(raw)
        except ValueError:
            raise FewShotError(f"{path}:{line}: ms must be a number, got {raw!r}") from None
        if not np.isfinite(ms) or ms <= 0:
            raise FewShotError(f"{path}:{line}: ms must be > 0, got {raw!r}")
        if config in timings:
            raise FewShotError(f"{path}:{line}: {config!r} is timed twice")
        timings[config] = ms
    return timings


def suggest_archs(dirs: Sequence[Path], space: str, n: int, *, seed: int = 0) -> list[str]:
    """The ``n`` architectures to time on the new device (``choose_archs``' D-optimal design
    over the sources)."""
    src = _load_sources(dirs, space)
    ops = OP_PARSERS[space](src.configs)
    smoothed = smooth(src.latency, op_features(ops, order=_ORDER))
    return [src.configs[i] for i in choose_archs(smoothed, n, seed=seed)]


def fit_arch_table(
    dirs: Sequence[Path],
    space: str,
    timings: Mapping[str, float],
    out: str | Path,
    device: DeviceInfo,
) -> FitReport:
    """Fit every architecture of the sources for the device timed in ``timings`` and write
    ``<out>/<space>/arch.yaml.gz`` and ``<out>/device.yaml`` (``device`` with ``kind``
    ``arch_table`` and the fit's provenance appended). Entries: ``mean`` the fitted ms,
    ``std`` the held-out RMS error, ``count`` 0 (fitted, not timed).

    Raises:
        FewShotError: a timed config is not an architecture of the sources (named), or the fit
            cannot be made (too few timings).
    """
    src = _load_sources(dirs, space)
    index = {c: i for i, c in enumerate(src.configs)}
    unknown = [c for c in timings if c not in index]
    if unknown:
        raise FewShotError(
            f"--timings: {len(unknown)} config(s) not in the sources' {space} tables, "
            f"e.g. {unknown[0]!r}"
        )
    ops = OP_PARSERS[space](src.configs)
    smoothed = smooth(src.latency, op_features(ops, order=_ORDER))
    counts = op_counts(ops)
    chosen = np.array([index[c] for c in timings], dtype=np.int64)
    ms = np.array(list(timings.values()))
    fit = fit_fewshot(smoothed, chosen, ms, residual_features=counts)

    errors = []
    if len(chosen) >= 3:
        for j in range(len(chosen)):
            keep = np.arange(len(chosen)) != j
            held = fit_fewshot(smoothed, chosen[keep], ms[keep], residual_features=counts)
            errors.append(held.predictions[chosen[j]] / ms[j] - 1.0)
    errors_arr = np.abs(np.array(errors))
    mape = float(errors_arr.mean()) if errors else float("nan")
    within = float((errors_arr <= 0.1).mean()) if errors else float("nan")
    rms = float(np.sqrt(np.mean((np.array(errors) * ms) ** 2))) if errors else 0.0

    out = Path(out)
    predictions = np.maximum(fit.predictions, 0.0)
    path = out / space / "arch.yaml.gz"
    entries = zip(src.configs, predictions, strict=True)
    write_table(path, {c: Entry(float(p), rms, 0) for c, p in entries})
    weights = dict(zip(src.names, (float(w) for w in fit.weights), strict=True))
    provenance = (
        f"fitted by `nas lut fit` from {len(timings)} whole-model timing(s) and the {space} "
        f"tables of {', '.join(src.names)} (NNLS mix weights "
        + ", ".join(f"{k} {v:.3f}" for k, v in weights.items())
        + f"; op-count residual, ridge {fit.ridge:g}); held-out error (each timing left out): "
        + (f"MAPE {mape:.1%}, {within:.0%} within +/-10%" if errors else "not measured (< 3)")
    )
    write_device(
        out / "device.yaml",
        dataclasses.replace(
            device,
            kind="arch_table",
            provenance=f"{device.provenance}; {provenance}" if device.provenance else provenance,
        ),
    )
    return FitReport(path, len(timings), src.names, weights, mape, within)
