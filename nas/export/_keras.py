"""The lazy TensorFlow / tf-keras import (with the legacy-Keras switch and quiet C++ logs), and
the serializable hard activations the converter (``torch_to_keras``) emits."""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["hard_activations", "tf_modules"]


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
