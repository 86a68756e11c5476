"""PyTorch subnets of any space -> TFLite (through a generic Keras converter) and ONNX, with
parity checks. Formats are ``Exporter`` s registered by name in ``nas.registry.EXPORT_FORMATS``."""

from nas.export._base import Exporter, ExportInputs, Runner
from nas.export._conditions import (
    ATTEMPTS,
    REFERENCE_TOLERANCE,
    WAITED_MAX,
    Conditions,
    CpuWatch,
    Reference,
    machine_busy,
    timed_quietly,
)
from nas.export._convert import UnsupportedOpError, module_scope, torch_to_keras
from nas.export._executorch import ExecuTorchExporter
from nas.export._export import (
    PARITY_IMAGES,
    ExportedFile,
    export_subnet,
    exporter,
    open_runner,
    preprocessing_contract,
    time_exported,
)
from nas.export._keras import tf_modules
from nas.export._litert import (
    HostFingerprint,
    Timing,
    litert_version,
    round_robin,
    time_round_robin,
    time_tflite,
)
from nas.export._mixed import (
    MixedTFLiteExporter,
    boundary_tflite,
    file_layer_precisions,
    quantize_layers,
)
from nas.export._onnx import ONNXExporter
from nas.export._size import WEIGHT_BYTES, predicted_size_bytes
from nas.export._tflite import TFLiteExporter, TFLiteQATExporter, to_tflite
from nas.registry import EXPORT_FORMATS

for _precision in ("fp32", "fp16", "dynamic-int8", "int8", "int8-per-tensor"):
    EXPORT_FORMATS.register(f"tflite-{_precision}", TFLiteExporter(_precision))
EXPORT_FORMATS.register("tflite-int8-qat", TFLiteQATExporter())
EXPORT_FORMATS.register("tflite-mixed", MixedTFLiteExporter())
EXPORT_FORMATS.register("onnx-fp32", ONNXExporter("fp32"))
EXPORT_FORMATS.register("onnx-int8", ONNXExporter("int8"))
EXPORT_FORMATS.register("executorch-xnnpack", ExecuTorchExporter())

__all__ = [
    "WEIGHT_BYTES",
    "ATTEMPTS",
    "PARITY_IMAGES",
    "REFERENCE_TOLERANCE",
    "WAITED_MAX",
    "Conditions",
    "CpuWatch",
    "Reference",
    "machine_busy",
    "timed_quietly",
    "ExecuTorchExporter",
    "ExportInputs",
    "ExportedFile",
    "Exporter",
    "HostFingerprint",
    "MixedTFLiteExporter",
    "ONNXExporter",
    "Runner",
    "TFLiteExporter",
    "TFLiteQATExporter",
    "Timing",
    "UnsupportedOpError",
    "boundary_tflite",
    "export_subnet",
    "file_layer_precisions",
    "exporter",
    "litert_version",
    "module_scope",
    "open_runner",
    "predicted_size_bytes",
    "preprocessing_contract",
    "quantize_layers",
    "round_robin",
    "tf_modules",
    "time_exported",
    "time_round_robin",
    "time_tflite",
    "to_tflite",
    "torch_to_keras",
]
