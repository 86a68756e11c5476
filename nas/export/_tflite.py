"""Keras -> TFLite conversion at a precision."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from nas._compat import native_logs
from nas.export._keras import tf_modules

__all__ = ["to_tflite"]


def to_tflite(
    model: Any,
    dtype: str = "fp32",
    representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
    *,
    integer_io: bool = False,
) -> bytes:
    """Convert a Keras model. ``dtype``: fp32, fp16 (fp16 weights), dynamic-int8 (int8 weights,
    float activations), int8 (full integer, needs ``representative``; weights per channel;
    ``integer_io`` makes the input and output int8 too) or int8-per-tensor (one scale per weight
    tensor: smaller files, since TFLite stores a float scale and an int64 zero point for every
    channel, which is as much as a 3x3 depthwise filter's weights)."""
    tf, _ = tf_modules()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
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
        raise ValueError(
            f"dtype must be fp32, fp16, dynamic-int8, int8 or int8-per-tensor, but got {dtype!r}"
        )
    # the converter logs from C++ (MLIR passes, calibration); and it asks for fixed input
    # statistics (quantized_input_stats) even when `representative` calibrates the int8 inputs
    with native_logs(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Statistics for quantized inputs", UserWarning)
        return converter.convert()
