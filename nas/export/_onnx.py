"""ONNX files: ``torch.onnx`` export (TorchScript path, dynamic batch) and onnxruntime's static
QDQ int8 quantization calibrated on training images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from nas.export._base import Exporter, ExportInputs, Runner

__all__ = ["ONNXExporter"]


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


def _to_onnx(model: torch.nn.Module, input_shape: tuple[int, int, int], path: Path) -> None:
    torch.onnx.export(
        model,
        (torch.zeros(1, *input_shape),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )


def _quantize_int8(fp32: Path, out: Path, calibration: np.ndarray) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration)

        def get_next(self):
            img = next(self.it, None)
            return None if img is None else {"input": img[None]}

    quantize_static(
        str(fp32),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )


@dataclasses.dataclass(frozen=True, repr=False)
class ONNXExporter(Exporter):
    """An ``.onnx`` file, fp32 or int8 (static QDQ, ranges from ``inputs.calibration()``)."""

    precision: str
    runtime: str = dataclasses.field(default="onnx", init=False)
    suffix: str = dataclasses.field(default=".onnx", init=False)
    layout: str = dataclasses.field(default="NCHW", init=False)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "int8"):
            raise ValueError(f"`precision` must be fp32 or int8, but got {self.precision!r}")

    @property
    def parity_atol(self) -> float | None:  # type: ignore[override]
        return 1e-3 if self.precision == "fp32" else None

    def export(self, model: torch.nn.Module, inputs: ExportInputs, path: Path) -> Path:
        if self.precision == "fp32":
            _to_onnx(model, inputs.input_shape, path)
            return path
        fp32 = path.with_name(path.name + ".fp32.onnx")  # the quantizer reads a file
        try:
            _to_onnx(model, inputs.input_shape, fp32)
            _quantize_int8(fp32, path, inputs.calibration())
        finally:
            fp32.unlink(missing_ok=True)
        return path

    def open(self, path: Path, threads: int = 1) -> Runner:
        return _ONNXRunner(Path(path), threads)
