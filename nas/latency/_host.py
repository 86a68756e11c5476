"""A host table belongs to the machine that timed it. On use, a few of its layers (the reference
set) are timed again on the machine nas runs on; when they disagree by more than 10% (or the CPU
model differs), the table is re-timed here, once, and kept per machine under the cache folder
(keyed by the machine's fingerprint), never written into the shipped table. A phone's table is
never re-timed on the host."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.export import (
    ATTEMPTS,
    REFERENCE_TOLERANCE,
    WAITED_MAX,
    HostFingerprint,
    Reference,
    machine_busy,
)
from nas.latency._table import (
    DeviceInfo,
    LatencyTable,
    load_device,
    load_table,
    write_device,
)
from nas.paths import assets_root, cache_root
from search_spaces import LayerSpec

__all__ = [
    "HostCheck",
    "HostFingerprint",
    "check_host",
    "fill_for_configs",
    "fill_missing",
    "host_table",
    "is_host_table",
    "is_shipped",
    "layer_from_key",
    "local_copy",
    "reference_keys",
]

logger = logging.getLogger(__name__)

#: reference layers timed again on use, and the relative disagreement that means "another machine"
N_REFERENCE = 4
TOLERANCE = REFERENCE_TOLERANCE
_CHECKED: dict[tuple[str, str], Path] = {}  # (table folder, space) -> folder to price with
#: how a re-timing is made (bumped when that changes: 2 = round-robin timing and a whole-model
#: fit, 3 = ten short rounds instead of three long ones, 4 = all tables in one round-robin
#: spread over RETIME_SPAN_S, 5 = the fit's whole subnets in that same round-robin, fitted on
#: relative errors); part of its folder's name, so an older re-timing is not reused
RETIME_VERSION = 5
#: a re-timing's rounds (all of its tables and the fit's subnets timed together) spread over at
#: least these seconds: a slow spell of a shared host (seen lasting several seconds) then slows
#: a few rounds of every entry, not every round of some
RETIME_SPAN_S = 10.0


def host_name() -> str:
    """The device name host tables of this machine kind carry (``host-x86-litert``)."""
    machine = platform.machine().lower()
    return (
        "host-"
        + {"x86_64": "x86", "amd64": "x86", "aarch64": "arm64"}.get(machine, machine)
        + ("-litert")
    )


def is_host_table(device: DeviceInfo) -> bool:
    """A table timed with LiteRT on a host of this kind (not a phone's, not another arch's)."""
    return device.kind == "layer_table" and device.name == host_name()


def retime_enabled() -> bool:
    """``NAS_HOST_RETIME``: ``auto`` (default) checks host tables on use and re-times them on
    another machine; ``off`` prices with them as they are (the test suite's default: a first
    re-timing converts every layer of the table, minutes of work)."""
    value = os.environ.get("NAS_HOST_RETIME", "auto")
    if value not in ("auto", "off"):
        from nas.errors import SpecError

        raise SpecError(f"NAS_HOST_RETIME = {value!r} must be auto or off")
    return value == "auto"


def layer_from_key(key: str) -> LayerSpec:
    """The layer a table key names (the inverse of ``LayerSpec.key``; no ``-dtype:`` suffix)."""
    op, *parts = key.split("-")
    fields: dict[str, Any] = {}
    attrs = []
    for part in parts:
        name, _, value = part.partition(":")
        if name in ("input", "output"):
            fields[name] = tuple(int(v) for v in value.split("x"))
        else:
            attrs.append((name, int(value)))
    return LayerSpec(op, fields["input"], fields["output"], tuple(attrs))


def reference_keys(table: LatencyTable, n: int = N_REFERENCE) -> list[str]:
    """``n`` fp32 keys of ``table`` spread over its latency range (fixed for a table)."""
    keys = sorted((k for k in table.entries if "-dtype:" not in k), key=lambda k: table.mean(k))
    return [keys[round(q * (len(keys) - 1))] for q in ((i + 1) / (n + 1) for i in range(n))]


@dataclasses.dataclass(frozen=True)
class HostCheck:
    """The reference layers timed here against the table: ``ratio`` is the median of
    here/table over the reference layers."""

    fingerprint: HostFingerprint
    table_cpu: str
    ratio: float
    seconds: float

    @property
    def same_machine(self) -> bool:
        return self.table_cpu == self.fingerprint.cpu and abs(self.ratio - 1) <= TOLERANCE


def check_host(
    device: DeviceInfo, table: LatencyTable, space: Any, budget_s: float = 5.0
) -> HostCheck:
    """Time the table's reference layers on this machine (files converted once, cached under
    ``<cache>/layers``) and compare them with the table's entries: ``ratio`` is the median of
    here/table over the layers.

    One attempt times every layer in 20 round-robin rounds of 10 runs (about 0.1 s). A shared
    2-core host flips between its undisturbed speed and slow spells (up to 1.4x slower here,
    measured every 0.3 s for a minute: the longest slow spell lasted 2.3 s), and a slow spell
    only ever makes things slower: so the fastest attempt counts, and attempts repeat, 0.25 s
    apart, while the ratio is above ``1 + TOLERANCE`` and for at most ``budget_s``. On the
    machine that timed the table the first attempt usually settles it (0.1 s); a machine with
    another CPU model is settled by its first attempt too (its ratio only goes into the log);
    one with the same model but other timings spends the budget before it is re-timed."""
    start = time.perf_counter()
    fingerprint = HostFingerprint.here()
    another_cpu = device.soc != fingerprint.cpu  # settled: the ratio is only for the log
    reference = _reference(table, space, device.threads or 1)
    ratio = math.inf
    while True:
        ratio = min(ratio, reference.ratio())
        if ratio <= 1 + TOLERANCE or another_cpu or time.perf_counter() - start > budget_s:
            break
        time.sleep(0.25)
    return HostCheck(
        fingerprint=fingerprint,
        table_cpu=device.soc,
        ratio=ratio,
        seconds=time.perf_counter() - start,
    )


def host_table(lut_dir: str | Path, space: Any) -> Path:
    """The folder to price ``space`` on this machine with: ``lut_dir`` itself when it is not a
    host table or was timed on a machine like this one; else this machine's re-timing of it
    (made on first use, then reused) under ``<cache>/host_tables/<fingerprint>/<device>``
    (see ``nas.paths.cache_root``)."""
    lut_dir = Path(lut_dir)
    device = load_device(lut_dir / "device.yaml")
    if not is_host_table(device):
        return lut_dir
    memo = (str(lut_dir.resolve()), space.name)
    if memo not in _CHECKED:
        _CHECKED[memo] = _checked_folder(lut_dir, device, space)
    return _CHECKED[memo]


def _checked_folder(lut_dir: Path, device: DeviceInfo, space: Any) -> Path:
    tables = sorted((lut_dir / space.name).glob("*.yaml"))
    if not tables:
        return lut_dir  # the predictor names what is missing
    known = _known_retiming(lut_dir)
    if known is not None:
        return known
    if machine_busy():
        logger.warning(
            "cannot check whether %s was timed on a machine like this one: the machine is busy "
            "(load %.1f on %d cores); pricing with it as it is",
            lut_dir,
            os.getloadavg()[0],
            os.cpu_count() or 1,
        )
        return lut_dir
    check = check_host(device, load_table(tables[-1]), space)
    if check.same_machine:
        logger.debug("host table %s matches this machine (ratio %.3f)", lut_dir, check.ratio)
        return lut_dir
    local = _retiming_dir(lut_dir, check.fingerprint)
    logger.warning(
        "%s was timed on another machine (%s; reference layers %.2fx here on %s): pricing with "
        "this machine's re-timing in %s",
        lut_dir,
        device.soc,
        check.ratio,
        check.fingerprint.describe(),
        local,
    )
    return retime(lut_dir, device, space, local, check.fingerprint)


def _retiming_dir(lut_dir: Path, fingerprint: HostFingerprint) -> Path:
    """Where this machine's re-timing of ``lut_dir`` goes: keyed by the machine and by the
    table's content (two folders of the same name, or a table changed since, never share one)."""
    digest = hashlib.sha256(f"retime/{RETIME_VERSION}".encode())
    for path in sorted(lut_dir.rglob("*.yaml")):
        if "validation" not in path.relative_to(lut_dir).parts:
            digest.update(str(path.relative_to(lut_dir)).encode() + path.read_bytes())
    return (
        cache_root()
        / "host_tables"
        / fingerprint.key()
        / (f"{lut_dir.name}-{digest.hexdigest()[:10]}")
    )


def local_copy(lut_dir: Path) -> Path:
    """This machine's own copy of ``lut_dir`` (a shipped host table timed on a machine like this
    one), made once, for entries measured here: the folder a re-timing would use, so that later
    jobs price with it (:func:`_known_retiming`)."""
    local = _retiming_dir(lut_dir, HostFingerprint.here())
    if not (local / "device.yaml").is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f"{local.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(lut_dir, tmp, ignore=shutil.ignore_patterns("validation"))
        shutil.rmtree(local, ignore_errors=True)  # an unfinished folder of an earlier run
        try:
            tmp.rename(local)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("entries measured here go to %s (not the shipped %s)", local, lut_dir)
    return local


def _known_retiming(lut_dir: Path) -> Path | None:
    """This machine's finished re-timing of ``lut_dir`` from an earlier job, if there is one."""
    local = _retiming_dir(lut_dir, HostFingerprint.here())
    return local if (local / "device.yaml").is_file() else None


def retime(
    lut_dir: Path, device: DeviceInfo, space: Any, out: Path, fingerprint: HostFingerprint
) -> Path:
    """Time every entry of ``lut_dir``'s tables for ``space`` on this machine into ``out``
    (resumable: keys already there are kept; layer files are cached under <cache>/layers),
    then fit each precision's whole-model scale and overhead (:func:`fit_whole_models`) on
    :data:`N_FIT` whole subnets timed in the same round-robin as the layers (spread over at
    least :data:`RETIME_SPAN_S`): a slow spell of the machine then slows layers and subnets
    alike instead of skewing the fit. Logs its progress (INFO) at every tenth of the layers.

    Returns ``out``; or, when the timing waited for a CPU more than :data:`WAITED_MAX` of its
    time (a machine busier than its cores), the re-timing moved to ``<out>.busy``, for the
    job at hand only: the next job re-times."""
    from nas.latency._calibrate import HostTimer, measure_tables_into

    # the base space under any wrappers: the tables hold its layers, and its subnets are what
    # the fit times (a pruned or mixed config would ask for keys not yet measured: no fit)
    while getattr(space, "base", None) is not None:  # a SpaceWrapper: the space it extends
        space = space.base
    work = []  # (table file here, dtype, layers)
    for path in sorted((lut_dir / space.name).glob("*.yaml")):
        by_dtype: dict[str, list[LayerSpec]] = {}
        for key in load_table(path).entries:
            base, _, dtype = key.partition("-dtype:")
            by_dtype.setdefault(dtype or "fp32", []).append(layer_from_key(base))
        work += [(out / space.name / path.name, d, layers) for d, layers in by_dtype.items()]
    configs = fit_subnets(space)
    fit_files = _fit_files(lut_dir, device, space, sorted({d for _, d, _ in work}), configs)
    progress = _Progress(f"re-timing {lut_dir.name}")
    timer = HostTimer(threads=device.threads or 1, span_s=RETIME_SPAN_S)
    timings = measure_tables_into(
        work,
        space,
        timer,
        progress=progress,
        cache_dir=cache_root() / "layers",
        label=f"re-timing {lut_dir.name}",
        also=[f for files in fit_files.values() for f in files],
    )
    measured = {
        dtype: [t.mean for t in timings[i * len(configs) : (i + 1) * len(configs)]]
        for i, dtype in enumerate(fit_files)
    }
    here = dataclasses.replace(
        device,
        soc=fingerprint.cpu,
        runtime_version=fingerprint.runtime_version,
        overhead_ms={},  # fitted on the calibrating machine: not valid here
        scale={},
        provenance=(
            f"re-timed by nas on {fingerprint.describe()} from {lut_dir} ({device.soc}); "
            f"{device.provenance}"
        ),
    )
    write_device(out / "device.yaml", fit_whole_models(out, here, space, configs, measured))
    logger.info("%s: done in %.0f s", progress.label, progress.elapsed())
    waited = timer.conditions.waited if timer.conditions is not None else 0.0
    if waited > WAITED_MAX:  # not kept: the next job re-times
        busy = out.with_name(f"{out.name}.busy")
        shutil.rmtree(busy, ignore_errors=True)
        out.rename(busy)
        logger.warning(
            "the machine was busy while %s was re-timed (the timing waited for a CPU %.0f%% of "
            "its time): pricing this job with it (%s), and the next job on this machine "
            "re-times it",
            lut_dir.name,
            100 * waited,
            busy,
        )
        return busy
    return out


#: whole subnets per precision timed with a re-timing, to fit the per-model scale and overhead
N_FIT = 12
#: their seed: never one `nas lut validate` draws the subnets it checks with (0, 1,000,003)
FIT_SEED = 20_261_123
#: a whole-model scale outside this range is not a machine's: the fit is not kept
PLAUSIBLE_SCALE = (0.67, 1.5)


def fit_subnets(space: Any) -> list[Any]:
    """The :data:`N_FIT` random subnets (seed :data:`FIT_SEED`) a re-timing's fit times."""
    import numpy as np

    rng = np.random.default_rng(FIT_SEED)
    return [space.sample(rng) for _ in range(N_FIT)]


def _fit_files(
    lut_dir: Path, device: DeviceInfo, space: Any, dtypes: list[str], configs: list[Any]
) -> dict[str, list[Any]]:
    """dtype -> the fit subnets' files (converted once, cached under ``<cache>/subnets``), for
    each precision whose table has every key the subnets need (checked before converting)."""
    from nas.errors import LatencyTableError
    from nas.latency._model import LayerTableLatency
    from nas.latency._validate import subnet_files

    files = {}
    for dtype in dtypes:
        model = LayerTableLatency(lut_dir, space, dtype=dtype, device=device)
        try:
            for config in configs:
                model.layer_sum(config)
        except LatencyTableError as e:  # a key or a resolution the table lacks
            logger.warning("no whole-model fit for %s %s: %s", lut_dir, dtype, e)
            continue
        files[dtype] = subnet_files(space, configs, dtype, cache_root() / "subnets")
    return files


def fit_whole_models(
    lut_dir: Path,
    device: DeviceInfo,
    space: Any,
    configs: list[Any],
    measured: dict[str, list[float]],
) -> DeviceInfo:
    """``device`` with ``scale`` and ``overhead_ms`` fitted, per precision, by least squares of
    the relative error between ``measured[dtype]`` (ms, one per config) and the layer sums of
    ``lut_dir``'s tables (what ``nas lut validate`` scores is relative: within +-10%). A fit
    whose scale is outside :data:`PLAUSIBLE_SCALE` is not kept (logged)."""
    import numpy as np

    from nas.latency._model import LayerTableLatency

    scale, overhead = dict(device.scale), dict(device.overhead_ms)
    for dtype, ms in measured.items():
        model = LayerTableLatency(lut_dir, space, dtype=dtype, device=device)
        sums = [model.layer_sum(config)[0] for config in configs]
        a, b = np.polyfit(sums, ms, 1, w=1.0 / np.asarray(ms))
        if not PLAUSIBLE_SCALE[0] <= a <= PLAUSIBLE_SCALE[1]:
            logger.warning(
                "whole-model fit for %s %s rejected: scale %.3f is outside %s",
                lut_dir.name, dtype, a, PLAUSIBLE_SCALE,
            )  # fmt: skip
            continue
        scale[dtype], overhead[dtype] = float(a), float(b)
        logger.info(
            "%s %s: whole models run %.3f x the layer sum %+.3f ms here (%d subnets)",
            lut_dir.name, dtype, a, b, len(ms),
        )  # fmt: skip
    return dataclasses.replace(device, scale=scale, overhead_ms=overhead)


class _Progress:
    """Logs ``(done, total)`` layers at every tenth of the total, with the seconds so far."""

    def __init__(self, label: str) -> None:
        self.label, self.start, self.logged = label, time.perf_counter(), 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, done: int, total: int, key: str = "") -> None:
        if done * 10 // max(total, 1) > self.logged:
            self.logged = done * 10 // max(total, 1)
            logger.info("%s: %d/%d layers (%.0f s)", self.label, done, total, self.elapsed())


def is_shipped(path: Path) -> bool:
    """``path`` is inside the data nas ships (the installed package's assets)."""
    return Path(path).resolve().is_relative_to(assets_root().resolve())


#: entries timed on demand at more than this ratio to the table's own speed (its reference
#: layers timed with them) are refused: the machine is too far from the table's state for a
#: scale to put them right
ON_DEMAND_RATIO = (0.5, 2.0)


def host_reference(lut_dir: Path, space: Any) -> Reference | None:
    """:data:`N_REFERENCE` fp32 layers of a host table of this machine (``reference_keys`` of
    its highest-resolution table that has fp32 entries) with their entries, to time with what
    is measured here and see whether the machine runs at the table's speed; None for a table
    this machine does not time (a phone's, another CPU's) or one without fp32 entries."""
    from nas.latency._calibrate import measures_here

    device = load_device(lut_dir / "device.yaml")
    if not measures_here(device):
        return None
    for path in sorted((lut_dir / space.name).glob("*.yaml"), key=_resolution_of, reverse=True):
        table = load_table(path)
        if any("-dtype:" not in k for k in table.entries):
            return _reference(table, space, device.threads or 1)
    return None


def _reference(table: LatencyTable, space: Any, threads: int) -> Reference:
    """``table``'s :func:`reference_keys` as a :class:`Reference` (their fp32 layer files
    converted once, cached under ``<cache>/layers``)."""
    from nas.latency._calibrate import layer_file

    keys = reference_keys(table)
    files = tuple(
        layer_file(space, layer_from_key(k), "fp32", cache_root() / "layers") for k in keys
    )
    return Reference(
        files, tuple(table.mean(k) for k in keys), threads, str(table.path), tuple(keys)
    )


def reference_for(model: Any) -> Reference | None:
    """:func:`host_reference` of a latency model's table folder (None for a model without one,
    such as a whole-architecture table)."""
    lut_dir = getattr(model, "lut_dir", None)
    space = getattr(model, "space", None)
    if lut_dir is None or space is None:
        return None
    return host_reference(Path(lut_dir), space)


def _resolution_of(path: Path) -> int:
    return int(path.stem) if path.stem.isdigit() else -1


def fill_missing(
    model: Any,
    layers: list[LayerSpec],
    resolution: int,
    *,
    dtype: str = "fp32",
    runs: int = 100,
    cache_dir: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> int:
    """Measure, on this host, the ``layers`` missing from ``model``'s table at ``resolution``
    (a :class:`LayerTableLatency` of a host table), write them into the table file and reload it.
    A shipped table (package data) is never written: ``model`` moves to this machine's copy of
    it first (:func:`local_copy`). Returns how many keys were measured.

    The new entries are taken under the table's own conditions: the table's reference layers
    (:func:`host_reference`) are timed in the same rounds, the timing is repeated while the
    machine is busy (``nas.export.timed_quietly``), and the entries are divided by the
    reference layers' ratio to their entries (a machine running 20% slow now would otherwise
    make every new entry 20% dearer than the table's).

    Raises:
        MissingLatencyKeyError: keys are missing and the table is not this host's (a phone's
            table is calibrated with ``nas lut calibrate --device adb:SERIAL``); never guessed.
        LatencyTableError: the reference layers ran outside :data:`ON_DEMAND_RATIO` of their
            entries in every attempt (refused: nothing is written).
    """
    from nas.errors import MissingLatencyKeyError
    from nas.latency._calibrate import HostTimer, measure_into, measures_here

    table = model.table(resolution)
    missing = model.missing_keys(resolution, layers, dtype)
    if not missing:
        return 0
    if not measures_here(model.device):
        raise MissingLatencyKeyError(
            f"{len(missing)} layer key(s) are not in {table.path}, e.g. {missing[0]!r}; that "
            f"table is for {model.device.name} ({model.device.soc}), which this host cannot "
            "measure: calibrate them on the device (nas lut calibrate --device adb:SERIAL)"
        )
    timer = HostTimer(
        threads=model.device.threads or 1,
        runs=runs,
        reference=host_reference(model.lut_dir, model.space),
        attempts=ATTEMPTS,
        refuse_outside=ON_DEMAND_RATIO,
    )
    if is_shipped(model.lut_dir):  # entries measured here belong to this machine's copy
        model.relocate(local_copy(model.lut_dir))
        table = model.table(resolution)
    measure_into(
        table.path,
        model.space,
        layers,
        dtype=dtype,
        measure=timer,
        progress=progress,
        cache_dir=cache_dir,
    )
    model.reload(resolution)
    return len(missing)


def fill_for_configs(model: Any, configs: list[Any], **kwargs: Any) -> int:
    """:func:`fill_missing` for everything ``configs`` are priced with
    (``LayerTableLatency.priced_layers``: pruned widths, per-layer precisions, the QUANTIZE /
    DEQUANTIZE ops between them), per resolution and precision. Returns how many keys were
    measured; raises as ``fill_missing`` does."""
    groups: dict[tuple[int, str], list[LayerSpec]] = {}
    for config in configs:
        resolution = model.space.input_shape(config)[1]
        for layer in model.priced_layers(config):
            groups.setdefault((resolution, layer.dtype or model.dtype), []).append(layer)
    return sum(
        fill_missing(model, layers, resolution, dtype=dtype, **kwargs)
        for (resolution, dtype), layers in sorted(groups.items())
    )
