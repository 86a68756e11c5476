"""One ``.tflite`` file whose layers run at the precisions a config gives them (APQ's models).

The road: the model's fp32 file (the Keras mirror, whose tensor names carry each PyTorch
module's path, ``torch_to_keras``), then LiteRT's own quantizer (``ai-edge-quantizer``) with one
recipe entry per op: static int8 (int8 weights per channel, int8 activations calibrated on
training images) for the ops of an int8 layer, fp16 weights (float casting: fp16 constants and a
DEQUANTIZE op, fp32 arithmetic) for the convolutions of an fp16 layer, nothing for fp32. Where
precisions meet, the quantizer inserts the QUANTIZE / DEQUANTIZE ops that LiteRT then runs.

Why not the converter's float fallback (``QuantizationDebugger`` with ``denylisted_nodes``): it
can keep layers float in a full-integer file, but it has no fp16 layer beside int8 ones; the
quantizer takes a recipe per op, which is what a per-layer config is.

``file_layer_precisions`` reads a file back: the precision each layer of a config runs at, from
the tensors themselves (the verification compares it with the config).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas._compat import native_logs
from nas.export._base import ExportInputs
from nas.export._keras import tf_modules
from nas.export._tflite import TFLiteExporter, to_tflite
from search_spaces import BOUNDARY_OPS, SearchSpace

__all__ = [
    "MixedTFLiteExporter",
    "boundary_tflite",
    "file_layer_precisions",
    "op_layers",
    "quantize_layers",
]

_QDQ = {"QUANTIZE", "DEQUANTIZE"}
_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _layer_of(tensor_name: str, paths: list[str]) -> int | None:
    """The index in ``paths`` of the layer a tensor's name comes from (``<model>/<module>/...``,
    the Keras model's name first; fused names joined by ``;``): the longest
    ``SearchSpace.owning_layer`` over the fused parts' modules."""
    found = [
        layer
        for part in tensor_name.split(";")
        if len(pieces := part.split("/")) >= 2
        # "<scope>-<n>": the n-th Keras layer of one module
        and (layer := SearchSpace.owning_layer(pieces[1].split("-")[0], paths)) is not None
    ]
    return max(found, key=lambda i: len(paths[i]), default=None)


def _interpreter(model: bytes | Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    with native_logs():
        if isinstance(model, Path):
            return Interpreter(model_path=str(model))
        return Interpreter(model_content=bytes(model))


def op_layers(model: bytes | Path, paths: Sequence[str]) -> list[tuple[dict, int]]:
    """``(op, layer index)`` for every op of the file in execution order: an op belongs to the
    layer its output's name says, else (the model's output) the layer its constants' (weights')
    names say, else (ops the converter made outside every module) the layer of the op before."""
    return _op_layers(_interpreter(model), list(paths))


def _op_layers(interp: Any, paths: list[str]) -> list[tuple[dict, int]]:
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    produced = {o for op in ops for o in op["outputs"]}
    out, current = [], 0
    for op in ops:
        constants = [i for i in op["inputs"] if i >= 0 and i not in produced]
        found = next(
            (
                layer
                for i in [*op["outputs"], *constants]
                if (layer := _layer_of(names[i], paths)) is not None
            ),
            None,
        )
        current = found if found is not None else current
        out.append((op, current))
    return out


def file_layer_precisions(path: Path, paths: Sequence[str]) -> list[str]:
    """The precision each layer (module ``paths``, a config's ``layer_paths``) runs at in the
    file, read from its tensors: ``int8`` when every op of the layer computes in int8, ``fp16``
    when its weighted ops take fp16 constants (dequantized: fp32 arithmetic) and none is int8,
    ``fp32`` when it is all fp32; anything else ``mixed(<ops' precisions>)``. A layer with no op
    in the file is ``absent``. QUANTIZE / DEQUANTIZE ops are where layers meet: not counted."""
    interp = _interpreter(Path(path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = _op_layers(interp, list(paths))
    producer = {o: op for op, _ in ops for o in op["outputs"]}
    per_layer: list[list[str]] = [[] for _ in paths]
    for op, layer in ops:
        if op["op_name"] in _QDQ:
            continue
        if any(tensors[o]["dtype"] == np.int8 for o in op["outputs"]):
            precision = "int8"
        elif op["op_name"] in _WEIGHTED and _weight_dtype(op, tensors, producer) == np.float16:
            precision = "fp16"
        else:
            precision = "fp32" if op["op_name"] in _WEIGHTED else "float"
        per_layer[layer].append(precision)
    return [_layer_precision(found) for found in per_layer]


def _weight_dtype(op: dict, tensors: dict, producer: dict) -> np.dtype:
    """The stored dtype of a weighted op's filter (through the DEQUANTIZE that feeds it)."""
    w = op["inputs"][1]
    source = producer.get(w)
    if source is not None and source["op_name"] == "DEQUANTIZE":
        w = source["inputs"][0]
    return np.dtype(tensors[w]["dtype"])


def _layer_precision(found: list[str]) -> str:
    kinds = set(found)
    if not kinds:
        return "absent"
    if kinds == {"int8"}:
        return "int8"
    if "fp16" in kinds and kinds <= {"fp16", "float"}:
        return "fp16"
    if kinds <= {"fp32", "float"}:
        return "fp32"
    return f"mixed({','.join(sorted(kinds))})"


def _op_config(dtype: str) -> tuple[Any, str] | None:
    """The quantizer's (op config, algorithm) for a layer precision; None: left fp32."""
    from ai_edge_quantizer import qtyping as Q

    if dtype == "int8":
        return (
            Q.OpQuantizationConfig(
                activation_tensor_config=Q.TensorQuantizationConfig(
                    num_bits=8, symmetric=False, granularity=Q.QuantGranularity.TENSORWISE
                ),
                weight_tensor_config=Q.TensorQuantizationConfig(
                    num_bits=8, symmetric=True, granularity=Q.QuantGranularity.CHANNELWISE
                ),
                compute_precision=Q.ComputePrecision.INTEGER,
                explicit_dequantize=False,
            ),
            "min_max_uniform_quantize",
        )
    if dtype == "fp16":
        return (
            Q.OpQuantizationConfig(
                weight_tensor_config=Q.TensorQuantizationConfig(
                    num_bits=16, dtype=Q.TensorDataType.FLOAT
                ),
                compute_precision=Q.ComputePrecision.FLOAT,
                explicit_dequantize=True,
            ),
            "float_casting",
        )
    if dtype == "fp32":
        return None
    raise ValueError(f"layer precision must be fp32, fp16 or int8, but got {dtype!r}")


def quantize_layers(
    float_model: bytes, layer_dtypes: Mapping[str, str], calibration: np.ndarray
) -> bytes:
    """``float_model`` (an fp32 ``.tflite`` from ``torch_to_keras``) with the ops of each layer
    (module path -> precision) at its precision; ``calibration``: NHWC float32 images for the
    int8 activations' ranges."""
    from ai_edge_quantizer import quantizer

    paths = list(layer_dtypes)
    interp = _interpreter(float_model)
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    q = quantizer.Quantizer(bytearray(float_model))
    for op, layer in _op_layers(interp, paths):
        dtype = layer_dtypes[paths[layer]]
        entry = _op_config(dtype)
        if entry is None or (dtype == "fp16" and op["op_name"] not in _WEIGHTED):
            continue  # fp16 is a weight format: only ops with weights store it
        # the quantizer's scope of an op: its output names, each followed by ";"
        regex = "^" + "".join(re.escape(names[i]) + ";" for i in op["outputs"]) + "$"
        q.update_quantization_recipe(regex, op["op_name"], entry[0], algorithm_key=entry[1])
    # the quantizer prints its progress and sizes, and warns about its own defaults
    quiet = io.StringIO()
    with (
        native_logs(),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(quiet),
        contextlib.redirect_stderr(quiet),
    ):
        warnings.simplefilter("ignore")
        result = {}
        if q.need_calibration:
            (signature,) = interp.get_signature_list().items()
            key, spec = signature
            (name,) = spec["inputs"]
            data = [{name: img[None]} for img in calibration.astype(np.float32)]
            result = q.calibrate({key: data}, num_threads=1)
        return bytes(q.quantize(result).quantized_model)


@dataclasses.dataclass(frozen=True, repr=False)
class MixedTFLiteExporter(TFLiteExporter):
    """A ``.tflite`` file at the per-layer precisions of ``inputs.layer_dtypes`` (module path
    -> fp32 / fp16 / int8, from the config's layers: ``export_subnet`` fills it in); a config
    without per-layer precisions is exported at fp32. Priced by latency tables layer by layer at
    each layer's precision (``latency_dtype`` None: the config says)."""

    precision: str = "mixed"
    per_layer_precision: bool = dataclasses.field(default=True, init=False)

    @property
    def parity_atol(self) -> float | None:  # type: ignore[override]
        return None  # quantized layers: reported only

    @property
    def latency_dtype(self) -> str | None:  # type: ignore[override]
        return None

    def export(self, model: torch.nn.Module, inputs: ExportInputs, path: Path) -> Path:
        keras = self.keras(model, inputs)
        fp32 = to_tflite(keras, "fp32")
        if not inputs.layer_dtypes or set(inputs.layer_dtypes.values()) == {"fp32"}:
            path.write_bytes(fp32)
            return path
        images = inputs.calibration().transpose(0, 2, 3, 1)
        path.write_bytes(quantize_layers(fp32, inputs.layer_dtypes, images))
        return path


def boundary_tflite(op: str, shape: tuple[int, ...]) -> bytes:
    """A file of one QUANTIZE (float32 in, int8 out) or DEQUANTIZE (int8 in, float32 out) op on
    a tensor of ``shape`` (without the batch): what a mixed-precision file pays where a float
    layer feeds an int8 one, or the other way. Cut from the quantizer's own output for one int8
    op (QUANTIZE, the op, DEQUANTIZE), so the op and its parameters are the quantizer's."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    if op not in BOUNDARY_OPS:
        raise ValueError(f"op must be one of {BOUNDARY_OPS}, but got {op!r}")
    _, K = tf_modules()
    K.backend.clear_session()
    inputs = K.Input(shape=tuple(shape), batch_size=1)
    relu = K.layers.ReLU(name="boundary")
    model = K.Model(inputs, relu(inputs))
    rng = np.random.default_rng(0)
    images = rng.standard_normal((8, *shape)).astype(np.float32)
    quantized = quantize_layers(to_tflite(model, "fp32"), {"boundary": "int8"}, images)
    flat = flatbuffer_utils.read_model_from_bytearray(bytearray(quantized))
    graph = flat.subgraphs[0]
    code = getattr(schema.BuiltinOperator, op.upper())
    kept = [o for o in graph.operators if flat.operatorCodes[o.opcodeIndex].builtinCode == code]
    if len(kept) != 1:
        raise RuntimeError(f"the quantizer made {len(kept)} {op.upper()} ops, expected one")
    (only,) = kept
    graph.operators = [only]
    graph.inputs, graph.outputs = list(only.inputs), list(only.outputs)
    signature = flat.signatureDefs[0]
    signature.inputs[0].tensorIndex = int(only.inputs[0])
    signature.outputs[0].tensorIndex = int(only.outputs[0])
    return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))
