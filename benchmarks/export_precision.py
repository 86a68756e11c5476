"""Exported files side by side: accuracy, size and host latency per precision.

    .venv/bin/python benchmarks/export_precision.py [--spec runs/fashion_mnist_host.yaml] \
        [--subnet smallest --subnet largest ...] [--formats tflite-fp32,tflite-int8,...]

For each subnet (BN recalibrated from the spec's supernet, no fine-tuning) every format is exported
and verified in one run: top-1 of the file itself on the 10k test images (LiteRT / onnxruntime /
ExecuTorch), file size and its ratio to fp32, host latency measured in the file's own runtime
(LiteRT or ExecuTorch, 1 thread, 200 runs in the host protocol's rounds; onnxruntime is not
timed) and its ratio to fp32, and the latency the host table predicts for that precision.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

import nas  # noqa: F401
from nas.export import export_subnet
from nas.jobs import subnet_evaluator
from nas.latency import build_latency
from nas.spec import load_spec

DEFAULT_SUBNETS = ["smallest", "r28_k3335e3663_k35e43_k35e33_k33e63", "largest"]
DEFAULT_FORMATS = (
    "tflite-fp32,tflite-fp16,tflite-dynamic-int8,tflite-int8,tflite-int8-per-tensor,tflite-int8-qat,"
    "onnx-fp32,onnx-int8,executorch-xnnpack"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="runs/fashion_mnist_host.yaml")
    parser.add_argument("--subnet", action="append", help="repeatable (default: three subnets)")
    parser.add_argument("--formats", default=DEFAULT_FORMATS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    spec = load_spec(args.spec)
    space, evaluator = subnet_evaluator(spec)
    latency = build_latency(spec.resolve_path(spec.devices[0].lut), space)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for which in args.subnet or DEFAULT_SUBNETS:
            config = space.resolve(which)
            files = export_subnet(
                space,
                config,
                evaluator.subnet(config),
                evaluator.dataset,
                Path(tmp),
                formats=args.formats.split(","),
                latency_model=latency,
            )
            base = next((f for f in files if f.format == "tflite-fp32"), None)
            print(f"\n{config}")
            print(
                f"  {'format':24s} {'size KiB':>9s} {'x fp32':>7s} {'test top-1':>10s} "
                f"{'vs fp32':>8s} {'host ms':>8s} {'x fp32':>7s} {'table ms':>9s}  parity"
            )
            for f in files:
                size_ratio = f.size_bytes / base.size_bytes if base else float("nan")
                delta = (f.test_accuracy - base.test_accuracy) * 100 if base else float("nan")
                ms = f.latency_measured_ms
                speed = ms / base.latency_measured_ms if base and ms else None
                print(
                    f"  {f.format:24s} {f.size_bytes / 1024:9.1f} {size_ratio:7.3f} "
                    f"{f.test_accuracy * 100:9.2f}% {delta:+7.2f}p "
                    + (f"{ms:8.3f} {speed:7.2f} " if ms else f"{'n/a':>8s} {'':7s} ")
                    + (
                        f"{f.latency_predicted_ms:9.3f}"
                        if f.latency_predicted_ms is not None
                        else f"{'n/a':>9s}"
                    )
                    + f"  {f.parity_max_abs:.1e}{'' if f.parity_ok else ' FAILED'}"
                )
                rows.append(
                    {
                        "config": str(config),
                        **{k: v for k, v in f.summary().items() if k != "path"},
                        "size_vs_fp32": size_ratio,
                        "accuracy_points_vs_fp32": delta,
                        "latency_vs_fp32": speed,
                    }
                )
    print(
        "\nhost: this machine, each file in its own runtime (LiteRT interpreter or ExecuTorch, "
        "both with XNNPACK), 1 thread, batch 1, measured; "
        "test top-1 on 10,000 Fashion-MNIST test images"
    )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
