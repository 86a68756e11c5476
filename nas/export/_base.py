"""The extension point for export formats: an ``Exporter`` writes one file format at one
precision and opens what it wrote. Formats are registered by name in
``nas.registry.EXPORT_FORMATS``; the engine never asks which runtime a format is."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.export._litert import Timing

__all__ = ["ExportInputs", "Exporter", "Runner"]

#: float32 NCHW batch (preprocessed as the dataset says) -> float32 logits (batch, classes)
Runner = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportInputs:
    """What an exporter may need besides the model, computed only when an exporter asks.

    ``input_shape``: the model's (C, H, W), from the caller (the space knows it; the exporter
    never reads a config). ``calibration()``: preprocessed NCHW float32 training images for
    full-integer ranges. ``training()``: (NCHW images, labels) for quantization-aware training.
    ``layer_dtypes``: module path -> precision of each layer, when the config gives its layers
    precisions (a mixed-precision config; ``None`` otherwise).
    ``memo``: a per-export cache that exporters share (a converted Keras model, say), so that
    several formats of one model convert it once; keys are the exporters' own.
    """

    input_shape: tuple[int, int, int]
    calibration: Callable[[], np.ndarray]
    training: Callable[[], tuple[np.ndarray, np.ndarray]]
    qat_epochs: int = 1
    layer_dtypes: Mapping[str, str] | None = None
    memo: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"`input_shape` must be (C, H, W), but got {self.input_shape=}")
        if self.qat_epochs < 0:
            raise ValueError(f"`qat_epochs >= 0` must hold, but got {self.qat_epochs=}")

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]


class Exporter(abc.ABC):
    """One file format at one precision (``tflite-int8``, ``onnx-fp32``, ...).

    Contract:

    - ``export(model, inputs, path) -> path`` writes the file at ``path`` (whose suffix is
      ``self.suffix``) and returns it. ``model`` is a PyTorch module in eval mode with BatchNorm
      already recalibrated; the exporter does not mutate it. Only ``path`` is left behind
      (intermediate files are removed). It raises ``UnsupportedOpError`` (a ``TypeError``) when
      the model has an operation the format cannot express, naming it.
    - ``open(path, threads) -> Runner``: a callable on the file that takes what PyTorch takes
      (float32 NCHW, preprocessed) and returns float32 logits; a file with integer input or
      output is (de)quantized with the file's own parameters, so its logits are comparable.
    - ``time(path, threads)``: mean milliseconds of one inference on this host, or ``None``
      when this runtime is not timed here.
    - ``parity_atol``: the largest |logit difference| from PyTorch that the file may show (on
      ``PARITY_IMAGES`` test images) to be registered; ``None``: reported only (quantized files).
    - ``latency_dtype``: the precision under which latency tables price this file, or ``None``
      when no table does.
    - ``per_layer_precision``: the file runs each layer at the config's precision for it
      (``inputs.layer_dtypes``); tables price it layer by layer at those precisions.
    - ``layout``: the input layout an app feeds (``NHWC`` or ``NCHW``), written into the file's
      preprocessing contract.
    - ``requirements``: pip lines of the runtime that opens the file, beyond what nas itself
      installs; a registered version's MLflow model lists them.

    Exporters hold no state beyond their settings: one instance is registered per format name and
    shared by every export, in any thread or process.
    """

    runtime: str
    precision: str
    suffix: str
    layout: str
    parity_atol: float | None = None
    latency_dtype: str | None = None
    per_layer_precision: bool = False
    requirements: tuple[str, ...] = ()

    @abc.abstractmethod
    def export(self, model: torch.nn.Module, inputs: ExportInputs, path: Path) -> Path: ...

    @abc.abstractmethod
    def open(self, path: Path, threads: int = 1) -> Runner: ...

    def time(self, path: Path, threads: int = 1) -> Timing | None:
        """The file's latency on this machine (the host protocol: ``nas.export.round_robin``),
        or None for a format this host does not time."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(precision={self.precision!r})"
