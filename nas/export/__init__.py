"""PyTorch subnets -> Keras mirror -> TFLite (and ONNX), with parity checks."""

from nas.export._export import (
    FORMATS,
    ExportedFile,
    export_subnet,
    open_runner,
    preprocessing_contract,
)
from nas.export._keras import keras_model, random_layer_params, torch_layer_params
from nas.export._tflite import to_tflite
from nas.registry import EXPORT_FORMATS

for _name, _format in FORMATS.items():  # names only for now: spec.py validates against them
    EXPORT_FORMATS.register(_name, _format)

__all__ = [
    "FORMATS",
    "ExportedFile",
    "export_subnet",
    "preprocessing_contract",
    "keras_model",
    "open_runner",
    "random_layer_params",
    "to_tflite",
    "torch_layer_params",
]
