"""Export a subnet to TFLite and ONNX at several precisions, and verify every file: parity with
PyTorch, accuracy of the file itself on the test split, measured host latency next to the table's
prediction, size. Each file gets its preprocessing contract as ``<file>.json`` beside it."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data import ImageDataset, Split, resize
from nas.export._keras import keras_model, torch_layer_params
from nas.export._qat import qat_tflite
from nas.export._tflite import to_tflite

__all__ = [
    "FORMATS",
    "ExportedFile",
    "export_subnet",
    "open_runner",
    "preprocessing_contract",
]

logger = logging.getLogger(__name__)

#: format name -> (runtime, precision)
FORMATS = {
    "tflite-fp32": ("tflite", "fp32"),
    "tflite-fp16": ("tflite", "fp16"),
    "tflite-dynamic-int8": ("tflite", "dynamic-int8"),
    "tflite-int8": ("tflite", "int8"),
    "tflite-int8-per-tensor": ("tflite", "int8-per-tensor"),
    "tflite-int8-qat": ("tflite", "int8-qat"),
    "onnx-fp32": ("onnx", "fp32"),
    "onnx-int8": ("onnx", "int8"),
}
PARITY_ATOL = {
    "fp32": 1e-3
}  # max |logit difference| on 100 test images; other precisions: reported
PARITY_IMAGES = 100


@dataclasses.dataclass(frozen=True)
class ExportedFile:
    path: Path
    format: str
    runtime: str
    precision: str
    size_bytes: int
    parity_max_abs: float
    parity_ok: bool
    test_accuracy: float
    n_test: int
    latency_measured_ms: float | None
    latency_predicted_ms: float | None
    reason: str | None  # why it must not be registered (failed parity), else None

    def summary(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        return out


def preprocessing_contract(dataset: ImageDataset, resolution: int, layout: str) -> dict[str, Any]:
    """What an app needs to feed the file: ``(pixel * scale - mean) / std`` per channel, resized
    (bilinear) to ``height`` x ``width``, in ``layout``; and what the outputs mean."""
    p = dataset.preprocessing
    return {
        "height": resolution,
        "width": resolution,
        "channels": p.channels,
        "layout": layout,
        "scale": p.scale,
        "mean": list(p.mean),
        "std": list(p.std),
        "resize": f"bilinear from the dataset's {p.height}x{p.width} when different",
        "output": "logits (argmax = class; softmax for probabilities)",
        "class_names": list(dataset.class_names),
    }


def _inputs(dataset: ImageDataset, split: Split, resolution: int) -> torch.Tensor:
    return resize(dataset.preprocessing.apply(split.images), resolution)


class _TFLiteRunner:
    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

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


class _ONNXRunner:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def __call__(self, x_nchw: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                self.session.run(None, {self.name: x_nchw[i : i + 100]})[0]
                for i in range(0, len(x_nchw), 100)
            ]
        )


def open_runner(path: Path, threads: int = 1) -> Any:
    """A callable on an exported ``.tflite`` / ``.onnx`` file: preprocessed float NCHW batch ->
    float logits (int8 inputs and outputs are (de)quantized with the file's own parameters)."""
    path = Path(path)
    return _ONNXRunner(path, threads) if path.suffix == ".onnx" else _TFLiteRunner(path, threads)


def _representative(dataset: ImageDataset, resolution: int, n: int = 200, nhwc: bool = True):
    x = _inputs(dataset, dataset.train.subset(n, seed=1), resolution).numpy()

    def gen():
        for img in x:
            yield [img.transpose(1, 2, 0)[None] if nhwc else img[None]]

    return gen


def _to_onnx(subnet: torch.nn.Module, resolution: int, channels: int, path: Path) -> None:
    dummy = torch.zeros(1, channels, resolution, resolution)
    torch.onnx.export(
        subnet,
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )


def _onnx_int8(fp32: Path, out: Path, dataset: ImageDataset, resolution: int) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    data = _representative(dataset, resolution, nhwc=False)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(data())

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {"input": batch[0]}

    quantize_static(
        str(fp32),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )


def export_subnet(
    space: Any,
    config: Any,
    subnet: torch.nn.Module,
    dataset: ImageDataset,
    out_dir: Path,
    *,
    formats: Iterable[str] = ("tflite-fp32", "tflite-int8"),
    latency_model: Any = None,
    threads: int = 1,
    test_images: int | None = None,
    score_threads: int | None = None,
    qat_epochs: int = 1,
    qat_images: int = 20000,
) -> list[ExportedFile]:
    """Export ``subnet`` (BN already recalibrated) in each of ``formats`` and verify each file.

    ``threads``: the latency measurement's threads (the table's); ``score_threads``: threads for
    scoring the test images (default: every core; the logits do not depend on it).
    ``tflite-int8-qat``: ``qat_epochs`` of quantization-aware training on ``qat_images``
    training images first (tfmot)."""
    from nas.latency._litert import time_tflite

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; known: {sorted(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    subnet = subnet.eval()
    r, channels = config.resolution, dataset.preprocessing.channels
    test = dataset.test if test_images is None else dataset.test.subset(test_images, seed=0)
    x_test = _inputs(dataset, test, r).numpy()
    y_test = test.labels.numpy()
    with torch.no_grad():
        reference = subnet(torch.from_numpy(x_test[:PARITY_IMAGES])).numpy()
    layers = space.layers(config)
    params = keras = None  # the folded weights and the Keras mirror, made once when needed
    results = []
    for name in formats:
        runtime, precision = FORMATS[name]
        path = out_dir / f"{space.name}-{config}-{precision}.{runtime}"
        if runtime == "tflite":
            if params is None:
                params = torch_layer_params(subnet)
            if precision == "int8-qat":
                train = dataset.train.subset(qat_images, seed=3)
                x_train = _inputs(dataset, train, r).numpy().transpose(0, 2, 3, 1)
                path.write_bytes(
                    qat_tflite(layers, params, x_train, train.labels.numpy(), epochs=qat_epochs)
                )
            else:
                if keras is None:
                    keras = keras_model(layers, params)
                rep = _representative(dataset, r) if precision.startswith("int8") else None
                path.write_bytes(to_tflite(keras, precision, rep))
            layout = "NHWC"
        else:
            fp32_path = out_dir / f"{space.name}-{config}-fp32.onnx"
            if not fp32_path.is_file():
                _to_onnx(subnet, r, channels, fp32_path)
            if precision == "int8":
                _onnx_int8(fp32_path, path, dataset, r)
            layout = "NCHW"
        logits = open_runner(path, score_threads or os.cpu_count() or 1)(x_test)
        parity = float(np.abs(logits[:PARITY_IMAGES] - reference).max())
        tolerance = PARITY_ATOL.get(precision)
        parity_ok = tolerance is None or parity <= tolerance
        accuracy = float((logits.argmax(1) == y_test).mean())
        measured = (
            time_tflite(str(path), threads=threads, runs=200).mean if runtime == "tflite" else None
        )
        predicted = None
        table_dtype = "int8" if precision.startswith("int8") else precision  # fp32, fp16, ...
        if latency_model is not None and runtime == "tflite" and table_dtype in ("fp32", "int8"):
            try:
                predicted = latency_model.at(table_dtype).predict(config).ms
            except KeyError:
                predicted = None  # no table entries at this precision
        reason = (
            None
            if parity_ok
            else f"parity {parity:.2e} exceeds {tolerance:g} on {PARITY_IMAGES} test images"
        )
        contract = preprocessing_contract(dataset, r, layout)
        exported = ExportedFile(
            path,
            name,
            runtime,
            precision,
            path.stat().st_size,
            parity,
            parity_ok,
            accuracy,
            len(y_test),
            measured,
            predicted,
            reason,
        )
        path.with_suffix(path.suffix + ".json").write_text(
            json.dumps(
                {
                    "config": str(config),
                    "format": name,
                    "preprocessing": contract,
                    **exported.summary(),
                },
                indent=1,
            )
        )
        if reason:
            logger.warning("%s: %s; it will not be registered", path.name, reason)
        results.append(exported)
    return results
