"""TFLite files: the model converted to Keras (``torch_to_keras``), then by TensorFlow's
converter at a precision; full-integer int8 calibrated on training images or trained (QAT)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas._compat import native_logs
from nas.export._base import Exporter, ExportInputs, Runner
from nas.export._convert import torch_to_keras
from nas.export._keras import keras_converter, tf_modules, with_signature
from nas.export._litert import Timing

__all__ = ["TFLiteExporter", "TFLiteQATExporter", "to_tflite"]

PRECISIONS = ("fp32", "fp16", "dynamic-int8", "int8", "int8-per-tensor")


def to_tflite(
    model: Any,
    dtype: str = "fp32",
    representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
    *,
    integer_io: bool = False,
    saved_model: bool = False,
) -> bytes:
    """Convert a Keras model. ``dtype``: fp32, fp16 (fp16 weights), dynamic-int8 (int8 weights,
    float activations), int8 (full integer, needs ``representative``; weights per channel;
    ``integer_io`` makes the input and output int8 too) or int8-per-tensor (one scale per weight
    tensor: smaller files, since TFLite stores a float scale and an int64 zero point for every
    channel, which is as much as a 3x3 depthwise filter's weights). ``saved_model``: through
    ``from_keras_model``'s SavedModel instead of :func:`keras_converter` (slower, the same file
    otherwise; ``benchmarks/conversion.py`` compares them)."""
    tf, _ = tf_modules()
    if saved_model:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    else:
        converter = keras_converter(model)
    if dtype == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif dtype == "dynamic-int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif dtype in ("int8", "int8-per-tensor"):
        if representative is None:
            raise ValueError("full-integer int8 needs representative data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if dtype == "int8-per-tensor":
            converter._experimental_disable_per_channel = True  # the converter's only switch
        if integer_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif dtype != "fp32":
        raise ValueError(f"dtype must be one of {PRECISIONS}, but got {dtype!r}")
    # the converter logs from C++ (MLIR passes, calibration); and it asks for fixed input
    # statistics (quantized_input_stats) even when `representative` calibrates the int8 inputs
    with native_logs(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Statistics for quantized inputs", UserWarning)
        converted = converter.convert()
    return converted if saved_model else with_signature(converted, model)


class _TFLiteRunner:
    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with native_logs():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" notice
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]

    def __call__(self, x_nchw: np.ndarray) -> np.ndarray:
        outs = []
        scale, zero = self.inp["quantization"]
        for img in x_nchw:
            x = img.transpose(1, 2, 0)[None]
            if self.inp["dtype"] != np.float32:
                x = np.clip(np.round(x / scale + zero), -128, 127).astype(self.inp["dtype"])
            self.interpreter.set_tensor(self.inp["index"], x)
            self.interpreter.invoke()
            y = self.interpreter.get_tensor(self.out["index"])[0]
            if self.out["dtype"] != np.float32:
                s, z = self.out["quantization"]
                y = (y.astype(np.float32) - z) * s
            outs.append(y)
        return np.stack(outs)


def _nhwc_batches(x_nchw: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    def gen() -> Iterable[list[np.ndarray]]:
        for img in x_nchw:
            yield [img.transpose(1, 2, 0)[None]]

    return gen


@dataclasses.dataclass(frozen=True, repr=False)
class TFLiteExporter(Exporter):
    """A ``.tflite`` file at ``precision`` (one of ``PRECISIONS``), through the generic Keras
    converter; full-integer precisions take their ranges from ``inputs.calibration()``."""

    precision: str
    runtime: str = dataclasses.field(default="tflite", init=False)
    suffix: str = dataclasses.field(default=".tflite", init=False)
    layout: str = dataclasses.field(default="NHWC", init=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS and type(self) is TFLiteExporter:
            raise ValueError(f"`precision` must be one of {PRECISIONS}, but got {self.precision!r}")

    @property
    def parity_atol(self) -> float | None:  # type: ignore[override]
        return 1e-3 if self.precision == "fp32" else None

    @property
    def latency_dtype(self) -> str | None:  # type: ignore[override]
        return {"fp32": "fp32", "int8": "int8", "int8-per-tensor": "int8", "int8-qat": "int8"}.get(
            self.precision
        )

    def keras(self, model: torch.nn.Module, inputs: ExportInputs) -> Any:
        """The model's Keras mirror (batch 1), converted once per export."""
        return inputs.cached("keras", lambda: torch_to_keras(model, inputs.input_shape))

    def export(self, model: torch.nn.Module, inputs: ExportInputs, path: Path) -> Path:
        keras = self.keras(model, inputs)
        full_int = self.precision.startswith("int8")
        rep = _nhwc_batches(inputs.calibration()) if full_int else None
        path.write_bytes(to_tflite(keras, self.precision, rep))
        return path

    def open(self, path: Path, threads: int = 1) -> Runner:
        return _TFLiteRunner(Path(path), threads)

    def time(self, path: Path, threads: int = 1) -> Timing | None:
        from nas.export._litert import time_tflite

        # 200 runs in the host protocol's rounds, as tables and validation time models
        return time_tflite(str(path), threads=threads, runs=200)


@dataclasses.dataclass(frozen=True, repr=False)
class TFLiteQATExporter(TFLiteExporter):
    """Full-integer ``.tflite`` after ``inputs.qat_epochs`` of quantization-aware training
    (tensorflow-model-optimization) on ``inputs.training()``; ranges come from training."""

    precision: str = "int8-qat"

    def export(self, model: torch.nn.Module, inputs: ExportInputs, path: Path) -> Path:
        from nas.export._qat import qat_tflite

        x, y = inputs.training()
        keras = torch_to_keras(model, inputs.input_shape, batch_size=None)
        path.write_bytes(qat_tflite(keras, x.transpose(0, 2, 3, 1), y, epochs=inputs.qat_epochs))
        return path
