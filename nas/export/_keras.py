"""The lazy TensorFlow / tf-keras import (with the legacy-Keras switch and quiet C++ logs), the
serializable hard activations the converter (``torch_to_keras``) emits, and LiteRT's converter
for a Keras model (``keras_converter``, ``with_signature``)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

__all__ = ["hard_activations", "keras_converter", "tf_modules", "with_signature"]


def tf_modules():
    """(tensorflow, tf_keras), imported lazily with the legacy-Keras switch set (nas._compat)."""
    try:
        return _load_tf()
    except ImportError as e:  # pragma: no cover - the pinned install has both
        raise ImportError(
            "TFLite export needs tensorflow==2.21.0 and tf-keras==2.21.0 (bash setup.sh)"
        ) from e


@functools.cache
def _load_tf() -> tuple[Any, Any]:
    from nas._compat import native_logs  # also sets TF_USE_LEGACY_KERAS before the import

    # loading logs from C++ (oneDNN, CUDA stubs), and so does the first device look-up (cuInit)
    with native_logs():
        import tensorflow as tf
        import tf_keras

        tf.config.list_physical_devices()
    return tf, tf_keras


def keras_converter(model: Any) -> Any:
    """LiteRT's converter for a Keras model's inference function, traced once, its variables
    frozen (``from_concrete_functions``). ``from_keras_model`` would first save the model as a
    SavedModel, tracing every layer's functions again for serialization: 6-12x the time per
    file (8.9x over ``benchmarks/conversion.py``'s ten), for the same ops and outputs. The file it
    gives has no signature: :func:`with_signature` writes the one a SavedModel would have."""
    tf, _ = tf_modules()
    names = zip(model.inputs, model.input_names, strict=True)
    specs = [tf.TensorSpec(x.shape, x.dtype, name) for x, name in names]
    forward = tf.function(lambda *xs: model(xs[0] if len(xs) == 1 else list(xs), training=False))
    # the function as its own trackable object: without one the converter warns (through absl)
    # on every call; with a tf.function it keeps this path, never the SavedModel one
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [forward.get_concrete_function(*specs)], forward
    )


def with_signature(tflite: bytes, model: Any) -> bytes:
    """``tflite`` with the ``serving_default`` signature a SavedModel's conversion writes: the
    Keras model's input and output names on the file's inputs and outputs (LiteRT's signature
    runners and the quantizer's calibration look inputs up by it)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    flat = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    graph = flat.subgraphs[0]

    def tensor_maps(names: list[str], indices: Iterable[int]) -> list[Any]:
        maps = []
        for name, index in zip(names, indices, strict=True):
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = name, int(index)
            maps.append(entry)
        return maps

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = tensor_maps(model.input_names, graph.inputs)
    signature.outputs = tensor_maps(model.output_names, graph.outputs)
    flat.signatureDefs = [signature]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


_HARD: dict[str, Any] = {}


def hard_activations() -> dict[str, Any]:
    """``{"HSwish": cls, "HSigmoid": cls}``: serializable Keras layers (not Lambdas, which can be
    neither cloned nor quantization-annotated) for ``x * relu6(x + 3) / 6`` and
    ``relu6(x + 3) / 6``; TFLite's converter turns the first into its HARD_SWISH op."""
    if not _HARD:
        tf, K = tf_modules()

        @K.utils.register_keras_serializable(package="nas")
        class HSwish(K.layers.Layer):
            def call(self, x):
                return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

        @K.utils.register_keras_serializable(package="nas")
        class HSigmoid(K.layers.Layer):
            def call(self, x):
                return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

        _HARD.update(HSwish=HSwish, HSigmoid=HSigmoid)
    return _HARD
