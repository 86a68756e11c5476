"""Keras -> TFLite conversion at a precision."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

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
    float activations) or int8 (full integer, needs ``representative``; ``integer_io`` makes the
    input and output int8 too)."""
    tf, _ = tf_modules()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if dtype == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif dtype == "dynamic-int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif dtype == "int8":
        if representative is None:
            raise ValueError("full-integer int8 needs representative data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if integer_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif dtype != "fp32":
        raise ValueError(f"dtype must be fp32, fp16, dynamic-int8 or int8, but got {dtype!r}")
    return converter.convert()
