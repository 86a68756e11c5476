"""Export and verification of a subnet with BN recalibrated on real (small) data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas.data import batches, load_fashion_mnist
from nas.export import UnsupportedOpError, export_subnet, exporter, torch_to_keras
from nas.registry import EXPORT_FORMATS
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
    formats = EXPORT_FORMATS.names()
    assert {"tflite-fp32", "tflite-int8", "tflite-int8-qat", "onnx-int8"} <= set(formats)
    assert "executorch-xnnpack" in formats
    files = {
        f.format: f
        for f in export_subnet(
            space, config, subnet, dataset, tmp_path, formats=formats, qat_images=600
        )
    }
    assert set(files) == set(formats)
    for name in ("tflite-fp32", "onnx-fp32"):
        assert files[name].parity_ok and files[name].parity_max_abs <= 1e-3, files[name]
    for name, f in files.items():  # every registered format verifies (or says why not)
        assert f.path.is_file() and f.size_bytes > 0 and f.n_test == len(dataset.test.labels)
        assert f.parity_ok == (exporter(name).parity_atol is None or f.parity_max_abs <= 1e-3)
    with torch.no_grad():
        x = dataset.preprocessing.apply(dataset.test.images)
        x = torch.nn.functional.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)
        torch_acc = float((subnet(x).argmax(1) == dataset.test.labels).float().mean())
    assert files["tflite-fp32"].test_accuracy == pytest.approx(torch_acc, abs=1 / 300)
    pte = files["executorch-xnnpack"]  # PyTorch's mobile path, run in ExecuTorch's own runtime
    assert pte.parity_ok and pte.parity_max_abs <= 1e-3 and pte.path.suffix == ".pte"
    assert pte.test_accuracy == pytest.approx(torch_acc, abs=1 / 300)
    assert pte.latency_measured_ms > 0 and pte.latency_predicted_ms is None
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
    from nas.export import HostFingerprint

    here = HostFingerprint.here().key()
    assert here in files["tflite-fp32"].latency_measured_on  # the machine the figure is for
    contract = json.loads(files["tflite-int8"].path.with_suffix(".tflite.json").read_text())
    assert contract["latency_measured_ms"] > 0 and here in contract["latency_measured_on"]
    pre = contract["preprocessing"]
    assert (pre["height"], pre["width"], pre["channels"], pre["layout"]) == (24, 24, 1, "NHWC")
    assert pre["scale"] == pytest.approx(1 / 255) and len(pre["class_names"]) == 10
    assert (
        json.loads(files["onnx-int8"].path.with_suffix(".onnx.json").read_text())["preprocessing"][
            "layout"
        ]
        == "NCHW"
    )


class HandWrittenHSwish(torch.nn.Module):
    """A space's own activation module, as OFA writes h-swish: recognised, not traced through."""

    def forward(self, x):
        return x * torch.nn.functional.relu6(x + 3.0) / 6.0


class PlainCNN(torch.nn.Module):
    """Not MobileNetV3: per-layer widths and kernels, BN, a residual, squeeze-excitation by
    means, max pooling and a flatten over a 7x7 map (where NCHW and NHWC orders differ)."""

    def __init__(self, widths=(8, 12), kernels=(3, 5), classes=10) -> None:
        super().__init__()
        (w0, w1), (k0, k1) = widths, kernels
        nn = torch.nn
        self.stem = nn.Sequential(
            nn.Conv2d(1, w0, k0, padding=k0 // 2, bias=False), nn.BatchNorm2d(w0), nn.ReLU()
        )
        self.down = nn.Sequential(
            nn.Conv2d(w0, w1, k1, stride=2, padding=k1 // 2),
            nn.BatchNorm2d(w1),
            HandWrittenHSwish(),
        )
        self.dw = nn.Sequential(
            nn.Conv2d(w1, w1, 3, padding=1, groups=w1), nn.BatchNorm2d(w1), nn.ReLU6()
        )
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(w1 * 7 * 7, classes)

    def forward(self, x):
        x = self.down(self.stem(x))
        x = x + self.dw(x)
        x = x * torch.sigmoid(x.mean(3, keepdim=True).mean(2, keepdim=True))
        x = self.pool(x)
        return self.head(self.drop(torch.flatten(x, 1)))


def _with_random_bn_statistics(model: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


class PlainSpace:
    """Only what export asks of a space: its name (the file names)."""

    name = "plain_cnn"


@pytest.mark.slow
def test_a_plain_cnn_of_another_space_exports_to_tflite_with_parity(small_fmnist, tmp_path):
    torch.manual_seed(0)
    dataset = load_fashion_mnist(small_fmnist, val_size=200)
    model = _with_random_bn_statistics(PlainCNN())
    files = {
        f.format: f
        for f in export_subnet(
            PlainSpace(),
            "w8-12_k3-5",  # a config the exporter never looks into
            model,
            dataset,
            tmp_path,
            formats=["tflite-fp32", "tflite-int8", "tflite-int8-qat", "onnx-fp32"],
            input_shape=(1, 28, 28),
            qat_images=600,
        )
    }
    for name in ("tflite-fp32", "onnx-fp32"):
        assert files[name].parity_ok and files[name].parity_max_abs <= 1e-3, files[name]
    assert files["tflite-fp32"].path.name == "plain_cnn-w8-12_k3-5-fp32.tflite"
    # calibrated and trained int8 files of the converted graph still agree with PyTorch's classes
    fp32_acc = files["tflite-fp32"].test_accuracy
    for name in ("tflite-int8", "tflite-int8-qat"):
        assert files[name].size_bytes < 0.5 * files["tflite-fp32"].size_bytes, files[name]
        assert files[name].test_accuracy >= fp32_acc - 0.1, files[name]
    contract = json.loads(files["tflite-fp32"].path.with_suffix(".tflite.json").read_text())
    assert (contract["preprocessing"]["height"], contract["config"]) == (28, "w8-12_k3-5")

    # timed beside reference layers that ran far slower than their table says (an entry of
    # 1 ns): taken again, then kept flagged with the reason, in the file's contract too
    from nas.export import Reference, time_exported

    fp32 = files["tflite-fp32"]
    flagged = time_exported(fp32, reference=Reference((str(fp32.path),), (1e-6,)))
    assert flagged.latency_measured_ms > 0 and flagged.latency_measured_std_ms >= 0
    assert "reference layers ran" in flagged.latency_measured_busy
    contract = json.loads(fp32.path.with_suffix(".tflite.json").read_text())
    assert contract["latency_measured_busy"] == flagged.latency_measured_busy


def test_the_hand_written_activation_becomes_one_hard_swish_layer():
    from nas.export._keras import hard_activations

    keras = torch_to_keras(_with_random_bn_statistics(PlainCNN()), (1, 28, 28))
    kinds = [type(layer).__name__ for layer in keras.layers]
    assert kinds.count(hard_activations()["HSwish"].__name__) == 1
    assert "BatchNormalization" not in kinds  # folded into the convolutions
    assert kinds.count("GlobalAveragePooling2D") == 1  # the two means are one pool


class CosineHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return torch.cos(self.conv(x)).flatten(1)


def test_an_unsupported_operation_is_named_in_the_error():
    with pytest.raises(UnsupportedOpError, match=r"torch\.cos|cos"):
        torch_to_keras(CosineHead().eval(), (1, 8, 8))
    with pytest.raises(UnsupportedOpError, match="LSTM"):
        torch_to_keras(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LSTM(64, 4)), (1, 8, 8))


def test_an_unknown_format_is_refused_before_anything_is_written(small_fmnist, tmp_path):
    from nas.registry import RegistryError

    dataset = load_fashion_mnist(small_fmnist, val_size=200)
    with pytest.raises(RegistryError, match="tflite-int4"):
        export_subnet(
            PlainSpace(), "c", PlainCNN(), dataset, tmp_path / "out", formats=["tflite-int4"]
        )
    assert not (tmp_path / "out").exists()
