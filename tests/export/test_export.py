"""Export and verification of a subnet with BN recalibrated on real (small) data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas.data import batches, load_fashion_mnist
from nas.export import export_subnet
from nas.supernet import recalibrate_bn
from search_spaces import get_space


@pytest.mark.slow
def test_every_format_is_written_verified_and_carries_its_preprocessing(small_fmnist, tmp_path):
    torch.manual_seed(0)
    dataset = load_fashion_mnist(small_fmnist, val_size=200)
    space = get_space("ofa_mbv3_small")
    config = space.parse("r24_k35e46_k37e34_k53e66_k33e43")
    subnet = space.build(config)
    recalibrate_bn(subnet, batches(dataset.train, 100, dataset.preprocessing, resolution=24))
    formats = [
        "tflite-fp32",
        "tflite-fp16",
        "tflite-dynamic-int8",
        "tflite-int8",
        "tflite-int8-per-tensor",
        "tflite-int8-qat",
        "onnx-fp32",
        "onnx-int8",
    ]
    files = {
        f.format: f
        for f in export_subnet(
            space, config, subnet, dataset, tmp_path, formats=formats, qat_images=600
        )
    }
    assert set(files) == set(formats)
    for name in ("tflite-fp32", "onnx-fp32"):
        assert files[name].parity_ok and files[name].parity_max_abs <= 1e-3, files[name]
    with torch.no_grad():
        x = dataset.preprocessing.apply(dataset.test.images)
        x = torch.nn.functional.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)
        torch_acc = float((subnet(x).argmax(1) == dataset.test.labels).float().mean())
    assert files["tflite-fp32"].test_accuracy == pytest.approx(torch_acc, abs=1 / 300)
    assert files["tflite-int8"].size_bytes < 0.4 * files["tflite-fp32"].size_bytes
    # one scale per tensor instead of a scale and an int64 zero point per channel
    assert files["tflite-int8-per-tensor"].size_bytes < files["tflite-int8"].size_bytes
    qat = files["tflite-int8-qat"]  # trained ranges: a full-integer file that still classifies
    assert qat.size_bytes < 0.4 * files["tflite-fp32"].size_bytes
    assert qat.test_accuracy >= files["tflite-int8"].test_accuracy - 0.05, qat
    from ai_edge_litert.interpreter import Interpreter

    tensors = Interpreter(model_path=str(qat.path)).get_tensor_details()
    assert sum(t["dtype"] == np.int8 for t in tensors) > 0.6 * len(tensors)  # integer inside
    assert (
        files["tflite-fp32"].latency_measured_ms > 0
        and files["onnx-fp32"].latency_measured_ms is None
    )
    contract = json.loads(files["tflite-int8"].path.with_suffix(".tflite.json").read_text())
    pre = contract["preprocessing"]
    assert (pre["height"], pre["width"], pre["channels"], pre["layout"]) == (24, 24, 1, "NHWC")
    assert pre["scale"] == pytest.approx(1 / 255) and len(pre["class_names"]) == 10
    assert (
        json.loads(files["onnx-int8"].path.with_suffix(".onnx.json").read_text())["preprocessing"][
            "layout"
        ]
        == "NCHW"
    )
