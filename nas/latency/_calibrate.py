"""Latency-table calibration: every distinct layer as its own small ``.tflite`` (real random
weights; int8 with representative data), timed on this host with LiteRT or on a phone over adb,
written as an OFA-format table. Resumable: keys already in the output table are skipped."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.export import Conditions, Reference, boundary_tflite
from nas.latency._table import (
    DeviceInfo,
    Entry,
    dtype_key,
    load_device,
    load_table,
    write_device,
    write_table,
)
from nas.paths import atomic_write
from search_spaces import BOUNDARY_OPS, LayerSpec, SearchSpace

__all__ = [
    "calibrate",
    "host_device_info",
    "HostTimer",
    "layer_file",
    "layer_tflite",
    "module_tflite",
    "measure_into",
    "measure_tables_into",
    "measures_here",
]

logger = logging.getLogger(__name__)


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def representative_for(shape: tuple[int, ...], seed: int, n: int = 8) -> Callable:
    def gen():
        rng = np.random.default_rng(seed)
        for _ in range(n):
            yield [rng.standard_normal((1, *shape)).astype(np.float32)]

    return gen


def cached_tflite(cache_dir: Path | None, key: str, build: Callable[[], bytes]) -> bytes:
    """``build()``'s bytes, kept in ``cache_dir`` under a hash of ``key`` (what determines the
    file: the layer or config, the precision, and the seeded weights), so that converting and
    timing can run apart (convert while the machine is busy, time it when it is quiet)."""
    if cache_dir is None:
        return build()
    path = cache_dir / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".tflite")
    if path.is_file():
        return path.read_bytes()
    data = build()
    atomic_write(path, data)
    return data


def _seeded_keras(build: Callable[[], Any], input_shape: tuple[int, int, int], seed: int) -> Any:
    """The Keras mirror (``torch_to_keras``) of the module ``build()`` returns, its weights
    initialized under ``seed``, in a fresh Keras session."""
    import torch

    from nas.export import tf_modules, torch_to_keras

    _, K = tf_modules()
    K.backend.clear_session()
    with torch.random.fork_rng():
        torch.manual_seed(seed % 2**63)
        return torch_to_keras(build(), input_shape)


def module_tflite(
    build: Callable[[], Any], input_shape: tuple[int, int, int], dtype: str, seed: int
) -> bytes:
    """The module ``build()`` returns (its weights initialized under ``seed``), converted as
    export converts a subnet (``torch_to_keras``, then LiteRT's converter) at ``dtype``;
    ``input_shape`` (C, H, W). int8 files take and return int8 tensors, as a layer inside a fully
    quantized model does (no quantize/dequantize pair)."""
    from nas.export import to_tflite

    model = _seeded_keras(build, input_shape, seed)
    if dtype == "int8":
        c, h, w = input_shape
        return to_tflite(model, "int8", representative_for((h, w, c), seed), integer_io=True)
    return to_tflite(model, dtype)


def mixed_module_tflite(
    build: Callable[[], Any],
    input_shape: tuple[int, int, int],
    layer_dtypes: dict[str, str],
    seed: int,
) -> bytes:
    """The module ``build()`` returns (weights seeded by ``seed``) as a mixed-precision file,
    converted as ``tflite-mixed`` exports it: each layer (submodule path) at its precision,
    int8 ranges calibrated on seeded random images; float input and output."""
    from nas.export import quantize_layers, to_tflite

    model = _seeded_keras(build, input_shape, seed)
    c, h, w = input_shape
    images = np.random.default_rng(seed).standard_normal((8, h, w, c)).astype(np.float32)
    return quantize_layers(to_tflite(model, "fp32"), layer_dtypes, images)


def layer_tflite(space: SearchSpace, layer: LayerSpec, dtype: str) -> bytes:
    """One layer alone (``space.layer_module``) as a ``.tflite`` with seeded random weights; a
    QUANTIZE or DEQUANTIZE op (``BOUNDARY_OPS``, any space) as its one-op file."""
    if layer.op in BOUNDARY_OPS:
        return boundary_tflite(layer.op, layer.input_shape)
    h, w, c = layer.input_shape
    return module_tflite(lambda: space.layer_module(layer), (c, h, w), dtype, _seed(layer.key))


def layer_file(space: SearchSpace, layer: LayerSpec, dtype: str, cache_dir: Path | None) -> bytes:
    """``layer_tflite``'s bytes, converted once per machine into ``cache_dir``."""
    return cached_tflite(
        cache_dir, f"layer|{layer.key}|{dtype}", lambda: layer_tflite(space, layer, dtype)
    )


def invoke_probe_tflite(dtype: str) -> bytes:
    """A one-op model (ReLU on 1x1x8): its latency is the interpreter's per-invoke cost."""
    from nas.export import tf_modules, to_tflite

    _, K = tf_modules()
    K.backend.clear_session()
    inputs = K.Input(shape=(1, 1, 8), batch_size=1)
    model = K.Model(inputs, K.layers.ReLU()(inputs))
    if dtype == "int8":
        return to_tflite(model, "int8", representative_for((1, 1, 8), 0), integer_io=True)
    return to_tflite(model, dtype)


def host_device_info(threads: int, provenance: str) -> DeviceInfo:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from nas.export import litert_version

    return DeviceInfo(
        name="host-x86-litert",
        soc=cpu,
        runtime="LiteRT interpreter (Python), default CPU path with XNNPACK",
        runtime_version=litert_version(),
        threads=threads,
        delegate="XNNPACK (LiteRT's default CPU delegate)",
        measured=(
            f"{datetime.date.today().isoformat()} on this host by `nas lut calibrate`; each "
            "entry's `mean` is the median of `count` timed invocations at batch 1"
            " after 10 warm-up runs"
        ),
        provenance=provenance,
    )


def calibrate(
    space: SearchSpace,
    resolution: int,
    out_dir: Path,
    *,
    dtype: str = "fp32",
    measure: Callable[[bytes, LayerSpec], Entry],
    device: DeviceInfo,
    progress: Callable[[int, int, str], None] | None = None,
    cache_dir: Path | None = None,
    convert_only: bool = False,
) -> Path:
    """Measure every layer of ``space`` at ``resolution`` missing from ``out_dir``'s table.

    ``measure(tflite_bytes, layer)`` times one layer file (host LiteRT or adb). The table is
    rewritten after every measured key, so an interrupted calibration loses at most one layer.
    ``convert_only`` fills ``cache_dir`` with the layer files and measures nothing.
    """
    if convert_only:
        if cache_dir is None:
            raise ValueError("convert_only needs a cache_dir")
        layers = space.all_layers(resolution)
        for i, layer in enumerate(layers):
            layer_file(space, layer, dtype, cache_dir)
            if progress is not None:
                progress(i + 1, len(layers), layer.key)
        return cache_dir
    table_path = out_dir / space.name / f"{resolution}.yaml"
    device_path = out_dir / "device.yaml"
    if device_path.is_file():
        existing_device = load_device(device_path)
        if existing_device.threads != device.threads or existing_device.name != device.name:
            from nas.errors import LatencyTableError

            raise LatencyTableError(
                f"{device_path} is for {existing_device.name} at {existing_device.threads} "
                "thread(s); "
                f"this calibration is {device.name} at {device.threads}: use another --out"
            )
    else:
        write_device(device_path, device)
    info = load_device(device_path)
    if dtype not in info.invoke_overhead_ms:
        probe = measure(invoke_probe_tflite(dtype), None)
        info = dataclasses.replace(
            info, invoke_overhead_ms={**info.invoke_overhead_ms, dtype: probe.mean}
        )
        write_device(device_path, info)
        logger.info("interpreter invoke overhead (%s): %.4f ms", dtype, probe.mean)
    return measure_into(
        table_path,
        space,
        space.all_layers(resolution),
        dtype=dtype,
        measure=measure,
        progress=progress,
        cache_dir=cache_dir,
        label=f"{space.name} r{resolution} {dtype}",
    )


@dataclasses.dataclass
class HostTimer:
    """Times layer files with LiteRT on this machine. Called on one file it times that file;
    :func:`measure_into` gives it all the files of a table at once (``many``: ``runs`` per file
    in the host protocol's round-robin rounds, each file's fastest round's median,
    ``nas.export.time_round_robin``), so that the entries are taken at the machine's
    undisturbed speed, as validation times whole models. ``many`` watches the machine
    (``nas.export.timed_quietly``) and leaves what it saw in ``conditions``."""

    threads: int = 1
    runs: int = 100
    #: the rounds spread over at least this many seconds (``time_round_robin``'s ``span_s``)
    span_s: float = 0.0
    #: reference layers of the table being filled, timed in the same rounds as the new files:
    #: the new entries are then put at the table's speed (divided by the layers' ratio to their
    #: entries), so that entries timed on demand match the ones timed with the table
    reference: Reference | None = None
    #: timings taken while the machine is busy (the quietest one is kept)
    attempts: int = 1
    #: with a reference: reference layers outside this ratio to their entries in every attempt
    #: make ``many`` raise ``LatencyTableError`` (the entries are refused, nothing is written)
    refuse_outside: tuple[float, float] | None = None
    #: the conditions of the last ``many``
    conditions: Conditions | None = dataclasses.field(default=None, init=False)

    def __call__(self, tflite: bytes, layer: LayerSpec | None) -> Any:
        from nas.export import time_tflite

        return time_tflite(tflite, threads=self.threads, runs=self.runs)

    def many(self, files: list[bytes]) -> list[Any]:
        from nas.export import Timing, time_round_robin, timed_quietly

        ref = self.reference
        refs = list(ref.files) if ref is not None else []

        def timing() -> list[Timing]:
            return time_round_robin(
                [*files, *refs], threads=self.threads, runs=self.runs, span_s=self.span_s
            )

        def ratio(timings: list[Timing]) -> float:
            assert ref is not None
            return ref.ratio_of([t.mean for t in timings[len(files) :]])

        timings, self.conditions = timed_quietly(
            timing,
            ratio=None if ref is None else ratio,
            attempts=self.attempts,
            what=f"{len(files)} layer file(s)",
        )
        timings = timings[: len(files)]
        if ref is not None:  # at the table's speed
            r = self.conditions.reference_ratio or 1.0
            low, high = self.refuse_outside or (0.0, float("inf"))
            if not low <= r <= high:
                from nas.errors import LatencyTableError

                raise LatencyTableError(
                    f"refusing {len(files)} entries timed beside the reference layers of "
                    f"{ref.table}: they ran {r:.2f}x their entries "
                    f"({self.conditions.describe()}); time them when the machine is quiet, or "
                    "re-time the table on this machine"
                )
            timings = [Timing(t.mean / r, t.std / r, t.count) for t in timings]
        return timings


def measure_into(
    table_path: Path,
    space: SearchSpace,
    layers: list[LayerSpec],
    *,
    dtype: str,
    measure: Callable[[bytes, LayerSpec], Entry],
    progress: Callable[[int, int, str], None] | None = None,
    cache_dir: Path | None = None,
    label: str = "",
) -> Path:
    """Measure each of ``layers`` whose key is not yet in ``table_path`` and add it.

    ``measure(tflite, layer)`` times one layer file at a time (a phone over adb): the table is
    rewritten after every key, so an interrupted calibration loses at most one layer. A
    :class:`HostTimer` times them all together once every file is converted (the converted
    files are cached in ``cache_dir``, so an interrupted run loses only the timing); see
    :func:`measure_tables_into` for several tables timed together."""
    if isinstance(measure, HostTimer):
        measure_tables_into(
            [(table_path, dtype, layers)], space, measure, progress, cache_dir, label
        )
        return table_path
    entries, todo = _todo(table_path, layers, dtype, label)
    for i, layer in enumerate(todo):
        key = dtype_key(layer.key, dtype)
        # a Timing (LiteRT here) or an Entry (adb)
        timing = measure(layer_file(space, layer, dtype, cache_dir), layer)
        entries[key] = Entry(timing.mean, timing.std, timing.count)
        write_table(table_path, entries)
        if progress is not None:
            progress(i + 1, len(todo), key)
    return table_path


def measure_tables_into(
    work: list[tuple[Path, str, list[LayerSpec]]],
    space: SearchSpace,
    measure: HostTimer,
    progress: Callable[[int, int, str], None] | None = None,
    cache_dir: Path | None = None,
    label: str = "",
    also: Sequence[bytes | str] = (),
) -> list[Any]:
    """:func:`measure_into` for several (table file, precision, layers) on this host at once:
    every missing layer's file is converted (cached in ``cache_dir``), then all are timed in
    one round-robin (``measure.many``), so that a slow spell of the machine touches a few
    rounds of every table rather than every round of one; each table is then written.
    ``also``: more model files timed in the same round-robin (whole subnets a fit compares
    with the layers, so both are taken in the same state of the machine); their timings are
    returned, in order. ``progress(done, total, key)`` counts the files converted over all
    the tables."""
    tables: dict[Path, dict[str, Entry]] = {}  # one table file may hold several precisions
    todos, changed = [], set()
    for path, dtype, layers in work:
        entries, todo = _todo(path, layers, dtype, label)
        todos.append((tables.setdefault(path, entries), dtype, todo))
        if todo:
            changed.add(path)
    total = sum(len(todo) for *_, todo in todos)
    files = []
    for _, dtype, todo in todos:
        for layer in todo:
            files.append(layer_file(space, layer, dtype, cache_dir))
            if progress is not None:
                progress(len(files), total, dtype_key(layer.key, dtype))
    if files or also:
        logger.info(
            "%s: timing %d layer files and %d other models together",
            label or work[0][0],
            len(files),
            len(also),
        )
    timings = iter(measure.many([*files, *also]) if files or also else [])
    for entries, dtype, todo in todos:
        for layer in todo:
            timing = next(timings)
            entries[dtype_key(layer.key, dtype)] = Entry(timing.mean, timing.std, timing.count)
    for path in changed:
        write_table(path, tables[path])
    return list(timings)


def _todo(
    table_path: Path, layers: list[LayerSpec], dtype: str, label: str
) -> tuple[dict[str, Entry], list[LayerSpec]]:
    """The entries ``table_path`` has, and the distinct ``layers`` it lacks at ``dtype``."""
    entries: dict[str, Entry] = dict(load_table(table_path).entries) if table_path.is_file() else {}
    todo = list(
        {
            dtype_key(x.key, dtype): x for x in layers if dtype_key(x.key, dtype) not in entries
        }.values()
    )
    logger.info(
        "%s: %d layers, %d measured already",
        label or table_path,
        len(layers),
        len(layers) - len(todo),
    )
    return entries, todo


def measures_here(device: DeviceInfo) -> bool:
    """Whether this host can add entries to ``device``'s tables: they were measured on this
    host's CPU with LiteRT (a phone's or another machine's table is never filled in here)."""
    here = host_device_info(device.threads or 1, "")
    return device.name == here.name and device.soc == here.soc
