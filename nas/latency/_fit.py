"""``nas lut fit``: a table for a new device (or a new setting of a known one) from a few timed
whole models. Two kinds of source, two fits; both measure their error on held-out timings (each
timing left out in turn) and record it in the new folder's provenance.

- ``arch_table`` sources (``fit_arch_table``): a whole-architecture table from the arch tables of
  devices timed in full, by ``_fewshot``'s method (the sources smoothed by a 3rd-order op model,
  mixed by non-negative least squares, the rest fitted on op counts). Spaces whose config
  strings ``OP_PARSERS`` reads into per-slot ops (``nb201``).
- a ``layer_table`` source (``fit_layer_table``): a per-layer table at another setting (threads,
  precision) from the source's fp32 entries, one scale per layer group (``layer_group``: the
  depthwise kernel size, or stem and head) plus a per-model overhead, fitted by least squares
  around the single best scale (ridge on the groups' deviations, its penalty by leave-one-out;
  one scale for all groups below ``TIMINGS_PER_PARAMETER`` timings per parameter).
  ``suggest_subnets`` picks subnets that span the source's latency range; ``time_here`` times
  them end to end on this host as ``nas lut validate`` does.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import FewShotError
from nas.latency._arch import arch_table_path
from nas.latency._fewshot import (
    _loo_ridge,
    choose_archs,
    fit_fewshot,
    nb201_ops,
    op_counts,
    op_features,
    smooth,
)
from nas.latency._model import LayerTableLatency
from nas.latency._table import (
    DeviceInfo,
    Entry,
    dtype_key,
    load_device,
    load_table,
    write_device,
    write_table,
)

__all__ = [
    "OP_PARSERS",
    "FitReport",
    "fit_arch_table",
    "fit_layer_table",
    "layer_group",
    "read_timings",
    "suggest_archs",
    "suggest_subnets",
    "time_here",
]

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
        tables.append(load_table(arch_table_path(folder, space)))
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
    mape, within, rms = _heldout(errors, ms)

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


def layer_group(key: str) -> str:
    """The group a layer's scale is fitted for: ``<op> k<kernel>`` for a layer with a kernel
    size in its key (OFA's ``expanded_conv``), else ``stem and head`` (once per model each)."""
    kernel = re.search(r"-kernel:(\d+)", key)
    return f"{key.split('-', 1)[0]} k{kernel.group(1)}" if kernel else "stem and head"


def _layer_source(folder: Path, space: Any) -> LayerTableLatency:
    folder = Path(folder)
    device = load_device(folder / "device.yaml")
    if device.kind != "layer_table":
        raise FewShotError(f"--sources {folder}: a {device.kind} folder, not a layer_table")
    from nas.latency._host import host_table, is_host_table, retime_enabled

    if is_host_table(device) and retime_enabled():  # priced as a job here would price it
        folder = host_table(folder, space)
        device = load_device(folder / "device.yaml")
    return LayerTableLatency(folder, space, dtype="fp32", device=device)


def _group_sums(model: LayerTableLatency, configs: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """(groups, configs x groups): each config's fp32 source entries summed per layer group."""
    rows = []
    for config in configs:
        table = model.table(model.space.input_shape(config)[1])
        row: dict[str, float] = {}
        for key in model.layer_keys(config):
            row[layer_group(key)] = row.get(layer_group(key), 0.0) + table.mean(key)
        rows.append(row)
    groups = sorted({g for row in rows for g in row})
    return groups, np.array([[row.get(g, 0.0) for g in groups] for row in rows])


def suggest_subnets(folder: Path, space: Any, n: int, *, seed: int = 0) -> list[Any]:
    """``n`` subnets that span the source's latency range: of ``20 n`` random ones (``seed``),
    the one at the middle of each of ``n`` equal strata of the source's prediction."""
    if n < 1:
        raise FewShotError(f"--n/--suggest must be >= 1, got {n}")
    model = _layer_source(folder, space)
    rng = np.random.default_rng(seed)
    pool = list({str(c): c for c in (space.sample(rng) for _ in range(max(50, 20 * n)))}.values())
    order = np.argsort([model.layer_sum(c)[0] for c in pool], kind="stable")
    picks = ((np.arange(n) + 0.5) * len(pool) / n).astype(int)
    return [pool[i] for i in order[picks]]


def time_here(
    folder: Path, space: Any, configs: Sequence[Any], dtype: str, threads: int, **kwargs: Any
) -> dict[str, float]:
    """``configs`` timed end to end on this host at ``dtype`` and ``threads``, config string ->
    ms (``measure_subnets``: converted, cached, then timed round robin; ``kwargs`` go there)."""
    from nas.latency._validate import measure_subnets

    model = _layer_source(folder, space)
    points = measure_subnets(model, list(configs), dtype, threads, **kwargs)
    return {p["config"]: p["measured_ms"] for p in points}


#: timings per fitted parameter (a scale per layer group, and the overhead) below which the fit
#: keeps one scale for every group: with 10 timings the groups' scales overfit (measured with
#: ``benchmarks/latency_host_fit.py``, 4 groups: 20% within +-10% on held-out subnets, against
#: 80% for the per-group fit from 20 timings)
TIMINGS_PER_PARAMETER = 3


def _fit_scales(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(per-group scales, overhead ms) for ``y ~ overhead + x @ scales``: the single scale and
    overhead by least squares on the sums, then, with at least ``TIMINGS_PER_PARAMETER`` timings
    per parameter, the groups' deviations from that scale by ridge (``_loo_ridge``) on the
    residual; with fewer, every group keeps the single scale."""
    total = x.sum(axis=1)
    if np.ptp(total) == 0:
        raise FewShotError("--timings: the timed subnets all have the same source latency")
    scale, overhead = np.polyfit(total, y, 1)
    if scale <= 0:
        raise FewShotError(
            f"--timings: the timings do not grow with the source's latency (slope {scale:.3g})"
        )
    if len(y) < TIMINGS_PER_PARAMETER * (x.shape[1] + 1):
        return np.full(x.shape[1], scale), float(overhead)
    mean = x.mean(axis=0)
    delta, _ = _loo_ridge(x - mean, y - (scale * total + overhead))
    scales = np.maximum(scale + delta, 0.0)
    return scales, float(overhead - mean @ (scales - scale))


def fit_layer_table(
    folder: Path,
    space: Any,
    timings: Mapping[str, float],
    out: str | Path,
    *,
    dtype: str,
    threads: int,
    name: str | None = None,
) -> FitReport:
    """A ``layer_table`` folder at ``out`` for ``dtype`` at ``threads``: every fp32 entry of the
    source ``folder`` times its group's fitted scale (as the key at ``dtype``), the fitted
    per-model overhead in ``device.yaml`` (``overhead_ms[dtype]``).

    Raises:
        FewShotError: fewer than 3 timings, a config the space cannot read (named), timings
            that do not grow with the source's latency.
    """
    if len(timings) < 3:
        raise FewShotError(f"--timings: {len(timings)} timing(s); a layer fit needs at least 3")
    model = _layer_source(folder, space)
    configs = []
    for text in timings:
        try:
            configs.append(space.parse(text))
        except Exception as e:  # the space's own message names what is wrong
            raise FewShotError(f"--timings: {text!r} is not a {space.name} config: {e}") from e
    groups, x = _group_sums(model, configs)
    y = np.array(list(timings.values()))
    scales, overhead = _fit_scales(x, y)
    errors = []
    if len(y) >= 4:
        for j in range(len(y)):
            keep = np.arange(len(y)) != j
            s, b = _fit_scales(x[keep], y[keep])
            errors.append((b + x[j] @ s) / y[j] - 1.0)
    mape, within, rms = _heldout(errors, y)

    out = Path(out)
    by_group = dict(zip(groups, (float(v) for v in scales), strict=True))
    for resolution, table in model.tables.items():
        entries = {
            dtype_key(key, dtype): Entry(
                by_group.get(layer_group(key), scales.mean()) * e.mean, rms, 0
            )
            for key, e in table.entries.items()
            if "-dtype:" not in key
        }
        write_table(out / space.name / f"{resolution}.yaml", entries)
    source = model.device
    provenance = (
        f"fitted by `nas lut fit` from {len(y)} whole-model timing(s) at {dtype}, {threads} "
        f"thread(s), and the fp32 entries of {source.name} ({model.lut_dir}): scale per layer "
        "group " + ", ".join(f"{g} {v:.3f}" for g, v in by_group.items())
        + f", overhead {overhead:.3f} ms; held-out error (each timing left out): "
        + (f"MAPE {mape:.1%}, {within:.0%} within +/-10%" if errors else "not measured (< 4)")
    )  # fmt: skip
    device = dataclasses.replace(
        source,
        name=name or out.name,
        threads=threads,
        measured=f"{len(y)} whole subnets timed at {dtype}; every layer entry fitted (count 0)",
        provenance=provenance,
        invoke_overhead_ms={dtype: 0.0},
        overhead_ms={dtype: overhead},
        scale={dtype: 1.0},
        kind="layer_table",
    )
    write_device(out / "device.yaml", device)
    return FitReport(out, len(y), (source.name,), by_group, mape, within)


def _heldout(errors: Sequence[float], ms: np.ndarray) -> tuple[float, float, float]:
    """(MAPE, share within +/-10%, RMS ms) of relative held-out errors (nan, nan, 0: none)."""
    if not errors:
        return float("nan"), float("nan"), 0.0
    rel = np.abs(np.array(errors))
    return float(rel.mean()), float((rel <= 0.1).mean()), float(np.sqrt(np.mean((rel * ms) ** 2)))
