"""Quantization-aware training with tensorflow-model-optimization on a converted Keras model.

The model (``torch_to_keras``: BatchNorm folded, weights from the PyTorch subnet) is annotated
layer by layer: tfmot's default 8-bit scheme for what its registry supports (convolutions, ReLU,
Add, pooling, Dense, ...), and an output quantizer for the rest (h-swish, h-sigmoid, Multiply,
Rescaling). It is then
trained for a short while on training images (never validation or test) and converted to a
full-integer TFLite file whose ranges come from training, not from a representative set.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np

from nas._compat import native_logs
from nas.export._keras import hard_activations, keras_converter, tf_modules, with_signature

__all__ = ["qat_tflite"]

logger = logging.getLogger(__name__)


def _output_quantize_config():
    import tensorflow_model_optimization as tfmot

    qk = tfmot.quantization.keras

    class OutputQuantizeConfig(qk.QuantizeConfig):
        """No weights; the layer's output gets a moving-average 8-bit quantizer."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [
                qk.quantizers.MovingAverageQuantizer(
                    num_bits=8, per_axis=False, symmetric=False, narrow_range=False
                )
            ]

        def get_config(self):
            return {}

    return qk, OutputQuantizeConfig


def qat_tflite(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
) -> bytes:
    """Full-integer TFLite after ``epochs`` of QAT of the Keras ``model`` (built with batch size
    None) on ``x_train`` (NHWC, preprocessed)."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as default_registry,
    )

    tf, K = tf_modules()
    tf.keras.utils.set_random_seed(seed)
    qk, OutputQuantizeConfig = _output_quantize_config()
    registry = default_registry.Default8BitQuantizeRegistry()

    def annotate(layer: Any) -> Any:
        config = None if registry.supports(layer) else OutputQuantizeConfig()
        return qk.quantize_annotate_layer(layer, config)

    annotated = K.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with qk.quantize_scope({"OutputQuantizeConfig": OutputQuantizeConfig, **hard_activations()}):
        quantized = qk.quantize_apply(annotated)
    quantized.compile(
        optimizer=K.optimizers.SGD(lr, momentum=0.9),
        loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    start = time.perf_counter()
    quantized.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    logger.info(
        "QAT: %d epoch(s) on %d training images in %.0f s",
        epochs,
        len(x_train),
        time.perf_counter() - start,
    )
    converter = keras_converter(quantized)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # the converter logs from C++ (MLIR passes); and it asks for fixed input statistics
    # (quantized_input_stats) although QAT has learned the ranges
    with native_logs(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Statistics for quantized inputs", UserWarning)
        return with_signature(converter.convert(), quantized)
