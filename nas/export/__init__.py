"""PyTorch subnets -> Keras mirror -> TFLite (and ONNX), with parity checks."""

from nas.export._keras import keras_model, random_layer_params, torch_layer_params
from nas.export._tflite import to_tflite

__all__ = ["keras_model", "random_layer_params", "to_tflite", "torch_layer_params"]
