"""Subnet-evaluation throughput and the shipped supernet's accuracies.

    .venv/bin/python benchmarks/subnet_eval.py [--spec runs/fashion_mnist_host.yaml] [--n 12]

Prints, for 1 and 2 torch threads: random subnets evaluated per minute on the validation split
(extract + BN recalibration on 2,000 training images + top-1 on the 10k validation images), then
top-1 of the largest and smallest subnets on the 10k test set (BN recalibrated, no fine-tuning).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import nas  # noqa: F401
from nas.jobs import subnet_evaluator
from nas.spec import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="runs/fashion_mnist_host.yaml")
    parser.add_argument("--n", type=int, default=12, help="random subnets per thread setting")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    space, evaluator = subnet_evaluator(spec)
    dataset = evaluator.dataset
    results: dict = {"checkpoint": spec.supernet.checkpoint, "n_val_images": len(dataset.val)}
    rng = np.random.default_rng(123)
    configs = [space.sample(rng) for _ in range(args.n)]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        evaluator.evaluate(configs[0], "val")  # warm-up
        start = time.perf_counter()
        for config in configs:
            evaluator.evaluate(config, "val")
        minutes = (time.perf_counter() - start) / 60
        results[f"subnets_per_minute_{threads}_thread"] = round(args.n / minutes, 2)
        print(
            f"{threads} thread(s): {args.n / minutes:.2f} subnets/min on the validation split "
            f"({len(dataset.val)} images, BN recalibration on "
            f"{spec.supernet.bn_calibration_images})",
            flush=True,
        )
    torch.set_num_threads(2)
    for which in ("largest", "smallest"):
        out = evaluator.evaluate(space.resolve(which), "test")
        results[f"test_top1_{which}"] = out["accuracy"]
        print(
            f"{which} {out['config']}: top-1 {out['accuracy'] * 100:.2f}% on {out['n_images']} "
            "test images"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
