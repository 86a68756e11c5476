"""Latency lookup tables: OFA's YAML format (``key -> {mean, std, count}``, milliseconds), loaded
strictly, and the ``device.yaml`` metadata beside them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from nas._yaml import dump_yaml, read_yaml
from nas.errors import LatencyTableError, MissingLatencyKeyError
from nas.paths import atomic_write

__all__ = [
    "Entry",
    "LatencyTable",
    "DeviceInfo",
    "load_table",
    "write_table",
    "load_device",
    "write_device",
    "dtype_key",
]

DTYPES = ("fp32", "fp16", "int8")


def dtype_key(key: str, dtype: str) -> str:
    """The table key of a layer at a precision: fp32 has no suffix, others ``-dtype:<dtype>``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, but got {dtype!r}")
    return key if dtype == "fp32" else f"{key}-dtype:{dtype}"


@dataclasses.dataclass(frozen=True)
class Entry:
    mean: float
    std: float
    count: int


@dataclasses.dataclass(frozen=True)
class LatencyTable:
    """One table file: layer key -> measured latency (ms)."""

    path: Path
    entries: Mapping[str, Entry]

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def mean(self, key: str) -> float:
        """The mean latency of ``key`` in ms (see :meth:`entry`)."""
        return self.entry(key).mean

    def entry(self, key: str) -> Entry:
        """The entry of ``key``.

        Raises:
            MissingLatencyKeyError: the key is not in this table (never priced as 0).
        """
        try:
            return self.entries[key]
        except KeyError:
            raise MissingLatencyKeyError(
                f"layer key {key!r} is not in latency table {self.path}"
            ) from None


def load_table(path: str | Path) -> LatencyTable:
    """Load and schema-check one table.

    Raises:
        LatencyTableError: missing file, not YAML, or an entry without a finite ``mean >= 0``
            (the message names the key and the file).
    """
    path = Path(path)
    data = read_yaml(path, LatencyTableError, "latency table")
    if not isinstance(data, dict) or not data:
        raise LatencyTableError(
            f"{path}: a latency table is a non-empty mapping of layer key -> {{mean, std, count}}"
        )
    entries = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, dict):
            raise LatencyTableError(
                f"{path}: entry {key!r} must map to {{mean, std, count}}, got {value!r}"
            )
        unknown = set(value) - {"mean", "std", "count", "var"}
        if unknown:
            raise LatencyTableError(f"{path}: entry {key!r} has unknown fields {sorted(unknown)}")
        mean = value.get("mean")
        if (
            isinstance(mean, bool)
            or not isinstance(mean, int | float)
            or not math.isfinite(mean)
            or mean < 0
        ):
            raise LatencyTableError(
                f"{path}: entry {key!r} needs a finite mean >= 0 (ms), got {mean!r}"
            )
        std = value.get("std", math.sqrt(value["var"]) if "var" in value else 0.0)
        count = value.get("count", 0)
        if not isinstance(std, int | float) or not isinstance(count, int):
            raise LatencyTableError(f"{path}: entry {key!r} has a non-numeric std or count")
        entries[key] = Entry(float(mean), float(std), int(count))
    return LatencyTable(path, MappingProxyType(entries))


def write_table(path: str | Path, entries: Mapping[str, Entry]) -> None:
    """Write a table atomically, keys sorted (OFA's layout); gzip-compressed when ``path``
    ends in ``.gz`` (a whole-architecture table of thousands of entries)."""
    data = {k: {"count": e.count, "mean": e.mean, "std": e.std} for k, e in sorted(entries.items())}
    atomic_write(path, dump_yaml(path, data))


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceInfo:
    """``device.yaml``: what the numbers are for and where they came from.

    kind: the latency source the folder holds (a ``nas.registry.LATENCY_KINDS`` name):
    ``layer_table`` (per-layer entries summed, ``<space>/<resolution>.yaml``) or ``arch_table``
    (one entry per whole architecture, ``<space>/arch.yaml``, or ``arch.yaml.gz``).

    invoke_overhead_ms: the fixed cost of one interpreter invocation (a trivial one-op model),
    keyed by dtype, measured at calibration. Every layer entry contains it once, a whole model
    pays it once: prediction subtracts it per layer and adds it back once.
    overhead_ms: per-model latency left unexplained by the layer entries, fitted by
    ``nas lut validate --fit-overhead`` on subnets other than those it is validated on; keyed by
    dtype, added once per predicted model.
    scale: per-model multiplier of the layers' sum (default 1), keyed by dtype: a host table
    re-timed on another machine fits ``scale`` and ``overhead_ms`` by least squares on a few
    whole subnets timed there (single layers run with their weights in cache; a whole model on
    a machine with less cache per core does not).
    """

    name: str
    soc: str
    runtime: str
    runtime_version: str
    threads: int | None  # None: not published by the source
    delegate: str
    measured: str
    provenance: str
    invoke_overhead_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)
    overhead_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)
    scale: Mapping[str, float] = dataclasses.field(default_factory=dict)
    notes: str = ""
    kind: str = "layer_table"


def load_device(path: str | Path) -> DeviceInfo:
    path = Path(path)
    data = read_yaml(
        path, LatencyTableError, "device metadata (every table folder has a device.yaml)"
    )
    if not isinstance(data, dict):
        raise LatencyTableError(f"{path}: expected a mapping")
    fields = {f.name for f in dataclasses.fields(DeviceInfo)}
    unknown, missing = (
        set(data) - fields,
        {
            f.name
            for f in dataclasses.fields(DeviceInfo)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        - set(data),
    )  # type: ignore[misc]
    if unknown:
        raise LatencyTableError(
            f"{path}: unknown field(s) {sorted(unknown)}; allowed: {sorted(fields)}"
        )
    if missing:
        raise LatencyTableError(f"{path}: missing field(s) {sorted(missing)}")
    per_dtype = {}
    for name in ("overhead_ms", "invoke_overhead_ms", "scale"):
        value = data.get(name) or {}
        if not isinstance(value, dict) or any(
            k not in DTYPES or not isinstance(v, int | float) for k, v in value.items()
        ):
            raise LatencyTableError(f"{path}: {name} must map a dtype in {DTYPES} to a number")
        per_dtype[name] = MappingProxyType({k: float(v) for k, v in value.items()})
    try:
        return DeviceInfo(
            **{
                **data,
                **per_dtype,
                "threads": None if data["threads"] is None else int(data["threads"]),
            }
        )
    except (TypeError, ValueError) as e:
        raise LatencyTableError(f"{path}: {e}") from e


def write_device(path: str | Path, info: DeviceInfo) -> None:
    # not dataclasses.asdict: it deep-copies, and the per-dtype maps are read-only proxies
    data: dict[str, Any] = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
    data["overhead_ms"] = dict(info.overhead_ms)
    data["invoke_overhead_ms"] = dict(info.invoke_overhead_ms)
    data["scale"] = dict(info.scale)
    if not data["scale"]:
        del data["scale"]  # tables without a fit read as before
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
