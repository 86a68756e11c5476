"""Knowledge distillation in the export fine-tune against plain fine-tuning, on three subnets.

    .venv/bin/python benchmarks/distill.py [--spec runs/fashion_mnist_host.yaml] [--epochs 1] \
        [--subnet CONFIG ...] [--alpha 0.5] [--temperature 4]

Each subnet (default: three members spread over the main job's latency range) is extracted from
the spec's supernet with BatchNorm recalibrated, then fine-tuned ``--epochs`` on the training
split twice from the same weights and seed: plain (cross-entropy with label smoothing, as
``export.finetune_epochs`` does) and distilled (``export.distill``: the largest subnet as the
teacher, ``alpha * CE + (1 - alpha) * T^2 * KL``). Top-1 is PyTorch's on the 10k Fashion-MNIST
test images, which neither the supernet, the search nor the fine-tune saw.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

import nas  # noqa: F401
from nas.data import batches
from nas.jobs import distillation, subnet_evaluator
from nas.spec import DistillSpec, load_spec
from nas.supernet import finetune, top1

DEFAULT_SUBNETS = [
    "smallest",
    "r28_k3335e3663_k35e43_k35e33_k33e63",
    "r28_k5577e4466_k557e646_k577e664_k57e66",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="runs/fashion_mnist_host.yaml")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--subnet", action="append", help="repeatable (default: three subnets)")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec)
    distill_spec = DistillSpec(alpha=args.alpha, temperature=args.temperature)
    spec = dataclasses.replace(spec, export=dataclasses.replace(spec.export, distill=distill_spec))
    space, evaluator = subnet_evaluator(spec)
    teacher = distillation(spec, "export", evaluator)
    data = evaluator.dataset

    def test_top1(model, resolution: int) -> float:
        loader = batches(data.test, 500, data.preprocessing, resolution=resolution)
        return top1(model, loader)[0]

    largest = space.largest()
    rows = [
        {
            "teacher": str(largest),
            "teacher_test_top1": test_top1(teacher.teacher, space.input_shape(largest)[1]),
        }
    ]
    for which in args.subnet or DEFAULT_SUBNETS:
        config = space.resolve(which)
        resolution = space.input_shape(config)[1]
        row = {"config": str(config), "epochs": args.epochs}
        row["no_finetune_top1"] = test_top1(evaluator.subnet(config), resolution)
        for name, distill in (("plain", None), ("distilled", teacher)):
            start = time.perf_counter()
            model = finetune(
                evaluator.subnet(config),
                data,
                resolution,
                args.epochs,
                seed=spec.seed,
                distill=distill,
            )
            row[f"{name}_top1"] = test_top1(model, resolution)
            row[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
        row["gain_points"] = 100 * (row["distilled_top1"] - row["plain_top1"])
        rows.append(row)
        print(
            f"{config}: no fine-tune {100 * row['no_finetune_top1']:.2f}%, plain "
            f"{100 * row['plain_top1']:.2f}%, distilled {100 * row['distilled_top1']:.2f}% "
            f"({row['gain_points']:+.2f} points)",
            flush=True,
        )
    print(
        f"teacher {largest}: {100 * rows[0]['teacher_test_top1']:.2f}% test top-1; alpha "
        f"{args.alpha}, T {args.temperature}; top-1 on 10,000 Fashion-MNIST test images"
    )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
