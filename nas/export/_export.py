"""Export a subnet in several registered formats and verify every file: parity with PyTorch,
accuracy of the file itself on the test split, measured host latency next to the predicted one,
size. Each file gets its preprocessing contract as ``<file>.json`` beside it.

``export_subnet`` reads top to bottom as the data flow; each step is a short function. It knows
nothing of a space but its name, nor of a format but its ``Exporter``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data import ImageDataset, Split, resize
from nas.export._base import Exporter, ExportInputs, Runner
from nas.export._conditions import Reference, timed_quietly
from nas.paths import file_safe
from nas.registry import EXPORT_FORMATS

__all__ = [
    "PARITY_IMAGES",
    "ExportedFile",
    "export_subnet",
    "exporter",
    "open_runner",
    "preprocessing_contract",
    "time_exported",
]

logger = logging.getLogger(__name__)

PARITY_IMAGES = 100  # max |logit difference| from PyTorch is measured on this many test images


@dataclasses.dataclass(frozen=True)
class ExportedFile:
    path: Path
    format: str
    runtime: str
    precision: str
    size_bytes: int
    parity_max_abs: float
    parity_ok: bool
    test_accuracy: float
    n_test: int
    latency_measured_ms: float | None
    latency_predicted_ms: float | None
    reason: str | None  # why it must not be registered (failed parity), else None
    #: the machine ``latency_measured_ms`` was timed on (``HostFingerprint.describe()``) and how
    latency_measured_on: str | None = None
    #: the spread of the measurement (its rounds' medians, ms)
    latency_measured_std_ms: float | None = None
    #: why the measurement is flagged (the machine was busy; ``nas.export.Conditions.busy``),
    #: or None: taken on a quiet machine
    latency_measured_busy: str | None = None
    #: the size the search priced the config at (``nas.export.predicted_size_bytes``), next to
    #: ``size_bytes`` measured on the file; None for a format without a size model
    size_predicted_bytes: int | None = None

    def summary(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        return out


def exporter(name: str) -> Exporter:
    """The registered ``Exporter`` of format ``name``.

    Raises:
        RegistryError: no such format (the message lists the known ones).
    """
    return EXPORT_FORMATS.get(name)


def open_runner(path: Path, threads: int = 1) -> Runner:
    """A callable on an exported file (by its suffix): preprocessed float NCHW batch -> float
    logits (int8 inputs and outputs are (de)quantized with the file's own parameters)."""
    path = Path(path)
    for name in EXPORT_FORMATS.names():
        if exporter(name).suffix == path.suffix:
            return exporter(name).open(path, threads)
    raise ValueError(f"{path}: no registered export format writes {path.suffix!r} files")


def preprocessing_contract(
    dataset: ImageDataset, input_shape: tuple[int, int, int], layout: str
) -> dict[str, Any]:
    """What an app needs to feed the file: ``(pixel * scale - mean) / std`` per channel, resized
    (bilinear) to ``height`` x ``width``, in ``layout``; and what the outputs mean."""
    p = dataset.preprocessing
    _, height, width = input_shape
    return {
        "height": height,
        "width": width,
        "channels": p.channels,
        "layout": layout,
        "scale": p.scale,
        "mean": list(p.mean),
        "std": list(p.std),
        "resize": f"bilinear from the dataset's {p.height}x{p.width} when different",
        "output": "logits (argmax = class; softmax for probabilities)",
        "class_names": list(dataset.class_names),
    }


# ---- steps ----------------------------------------------------------------------------------
def _inputs(dataset: ImageDataset, split: Split, input_shape: tuple[int, int, int]) -> np.ndarray:
    _, h, w = input_shape
    if h != w:
        raise ValueError(f"only square inputs are resized, but got {input_shape=}")
    return resize(dataset.preprocessing.apply(split.images), h).numpy()


def _export_inputs(
    dataset: ImageDataset,
    input_shape: tuple[int, int, int],
    qat_epochs: int,
    qat_images: int,
    layer_dtypes: dict[str, str] | None = None,
) -> ExportInputs:
    def training() -> tuple[np.ndarray, np.ndarray]:
        train = dataset.train.subset(qat_images, seed=3)
        return _inputs(dataset, train, input_shape), train.labels.numpy()

    return ExportInputs(
        input_shape=input_shape,
        calibration=lambda: _inputs(dataset, dataset.quantization_calibration(), input_shape),
        training=training,
        qat_epochs=qat_epochs,
        layer_dtypes=layer_dtypes,
    )


@dataclasses.dataclass(frozen=True)
class _TestSet:
    x: np.ndarray  # preprocessed NCHW
    y: np.ndarray
    reference: np.ndarray  # PyTorch's logits on the first PARITY_IMAGES


def _test_set(
    model: torch.nn.Module, dataset: ImageDataset, input_shape: tuple[int, int, int], n: int | None
) -> _TestSet:
    test = dataset.test if n is None else dataset.test.subset(n, seed=0)
    x = _inputs(dataset, test, input_shape)
    with torch.no_grad():
        reference = model(torch.from_numpy(x[:PARITY_IMAGES])).numpy()
    return _TestSet(x, test.labels.numpy(), reference)


def _predicted_ms(latency_model: Any, config: Any, exp: Exporter) -> float | None:
    """The latency the model predicts for this file; the one place that asks it."""
    if latency_model is None or (exp.latency_dtype is None and not exp.per_layer_precision):
        return None
    try:
        if exp.per_layer_precision:  # each layer at the config's precision for it
            return latency_model.predict(config).ms
        return latency_model.at(exp.latency_dtype).predict(config).ms
    except KeyError:
        return None  # no table entries at this precision


def _predicted_size(space: Any, config: Any, exp: Exporter) -> int | None:
    """The size the search prices this file at: TFLite files at the config's per-layer
    precisions or at one precision with a size model, of a config of a ``SearchSpace`` (a
    model exported from elsewhere has no layers to price); None otherwise."""
    from nas.export._size import WEIGHT_BYTES, predicted_size_bytes
    from search_spaces import SearchSpace

    if exp.runtime != "tflite" or not isinstance(space, SearchSpace):
        return None
    if not exp.per_layer_precision and exp.latency_dtype not in WEIGHT_BYTES:
        return None
    dtype = None if exp.per_layer_precision else exp.latency_dtype
    try:
        return predicted_size_bytes(space, config, dtype)
    except ValueError:  # a layer at a precision without a size model (bf16, int4)
        return None


def time_exported(
    file: ExportedFile, threads: int = 1, reference: Reference | None = None
) -> ExportedFile:
    """``file`` with its latency measured on this machine now (``threads``), its spread, and
    whether the machine was busy (``nas.export.timed_quietly``: taken again while it is, with
    ``reference``, a host table's reference layers, timed after it); its contract JSON is
    rewritten to say so. Time files while nothing else runs: the export stage times its files
    after its workers are done, never beside them."""
    from nas.export._litert import HostFingerprint

    exp = exporter(file.format)
    timing, conditions = timed_quietly(
        lambda: exp.time(file.path, threads), reference=reference, what=file.path.name
    )
    if timing is None:  # a format this host does not time
        return file
    timed = dataclasses.replace(
        file,
        latency_measured_ms=timing.mean,
        latency_measured_on=f"{HostFingerprint.here().describe()}, {threads} thread(s)",
        latency_measured_std_ms=timing.std,
        latency_measured_busy=conditions.busy,
    )
    contract = file.path.with_suffix(file.path.suffix + ".json")
    if contract.is_file():
        doc = json.loads(contract.read_text())
        contract.write_text(json.dumps({**doc, **timed.summary()}, indent=1))
    return timed


def _verify(
    name: str, exp: Exporter, path: Path, test: _TestSet, score_threads: int
) -> ExportedFile:
    """Parity on the first PARITY_IMAGES and accuracy on all; not timed, no prediction yet."""
    logits = exp.open(path, score_threads)(test.x)
    parity = float(np.abs(logits[:PARITY_IMAGES] - test.reference).max())
    ok = exp.parity_atol is None or parity <= exp.parity_atol
    reason = None
    if not ok:
        reason = f"parity {parity:.2e} exceeds {exp.parity_atol:g} on {PARITY_IMAGES} test images"
        logger.warning("%s: %s; it will not be registered", path.name, reason)
    return ExportedFile(
        path=path,
        format=name,
        runtime=exp.runtime,
        precision=exp.precision,
        size_bytes=path.stat().st_size,
        parity_max_abs=parity,
        parity_ok=ok,
        test_accuracy=float((logits.argmax(1) == test.y).mean()),
        n_test=len(test.y),
        latency_measured_ms=None,
        latency_predicted_ms=None,
        reason=reason,
    )


def _write_contract(file: ExportedFile, config: Any, contract: dict[str, Any]) -> None:
    doc = {"config": str(config), "format": file.format, "preprocessing": contract}
    path = file.path.with_suffix(file.path.suffix + ".json")
    path.write_text(json.dumps({**doc, **file.summary()}, indent=1))


def export_subnet(
    space: Any,
    config: Any,
    subnet: torch.nn.Module,
    dataset: ImageDataset,
    out_dir: Path,
    *,
    formats: Iterable[str] = ("tflite-fp32", "tflite-int8"),
    input_shape: tuple[int, int, int] | None = None,
    latency_model: Any = None,
    threads: int = 1,
    test_images: int | None = None,
    score_threads: int | None = None,
    qat_epochs: int = 1,
    qat_images: int = 20000,
    measure_latency: bool = True,
    reference: Reference | None = None,
) -> list[ExportedFile]:
    """Export ``subnet`` (BN already recalibrated) in each of ``formats`` (names registered in
    ``nas.registry.EXPORT_FORMATS``) and verify each file.

    ``input_shape``: the subnet's (C, H, W); default ``space.input_shape(config)``.
    ``threads``: the latency measurement's threads (the table's); ``score_threads``: threads for
    scoring the test images (default: every core; the logits do not depend on it).
    ``measure_latency`` False leaves the files untimed (``time_exported`` times them later, e.g.
    once parallel exports are done and the machine is quiet); ``reference``: a host table's
    reference layers, timed after each file to see whether the machine ran at its speed.
    ``tflite-int8-qat``: ``qat_epochs`` of quantization-aware training on ``qat_images``
    training images first (tfmot).

    Raises:
        RegistryError: an unknown format (before anything is written).
        UnsupportedOpError: the subnet has an operation a format cannot express.
    """
    exporters = {name: exporter(name) for name in formats}
    if input_shape is None:
        input_shape = space.input_shape(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    subnet = subnet.eval()
    # only a per-layer-precision format asks the space for its layers' precisions
    per_layer = any(exp.per_layer_precision for exp in exporters.values())
    layer_dtypes = space.layer_dtypes(config) if per_layer else None
    inputs = _export_inputs(dataset, input_shape, qat_epochs, qat_images, layer_dtypes)
    test = _test_set(subnet, dataset, input_shape, test_images)
    results = []
    for name, exp in exporters.items():
        path = out_dir / f"{space.name}-{file_safe(str(config))}-{exp.precision}{exp.suffix}"
        exp.export(subnet, inputs, path)
        file = _verify(name, exp, path, test, score_threads or os.cpu_count() or 1)
        file = dataclasses.replace(
            file,
            latency_predicted_ms=_predicted_ms(latency_model, config, exp),
            size_predicted_bytes=_predicted_size(space, config, exp),
        )
        if measure_latency:  # before the contract is written, so that it is written once
            file = time_exported(file, threads, reference)
        _write_contract(file, config, preprocessing_contract(dataset, input_shape, exp.layout))
        results.append(file)
    return results
