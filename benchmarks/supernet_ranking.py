"""How well a supernet ranks its subnets, as a user of its search feels it.

    .venv/bin/python benchmarks/supernet_ranking.py [--spec runs/fashion_mnist_host.yaml]
        [--n-random 100] [--n-tau 20] [--steps 300] [--out ranking.json]

1. The share of ``--n-random`` random subnets whose validation top-1 (the 10k validation images,
   BatchNorm recalibrated on 2,000 training images, as a search scores them) is below the
   smallest subnet's; the same among those that lie in the space before its extension to depth 1
   and 12-20 px, against that space's smallest (``r24_k33e33_k33e33_k33e33_k33e33``).
2. Kendall tau over ``--n-tau`` subnets spread over the latency range (evenly over log latency
   predicted by the spec's first device table): the supernet's validation top-1 against the
   validation top-1 of the same subnet after the same short fine-tune (``--steps`` SGD steps from
   the supernet's weights, batch 128, lr 0.01 cosine, the training split only). Both lists print.
3. Test top-1 (10k test images, never seen by training or search) of the largest and smallest.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import kendalltau

import nas  # noqa: F401
from nas.data import batches
from nas.jobs import subnet_evaluator
from nas.latency import build_latency
from nas.spec import load_spec
from nas.supernet import top1, train_steps

OLD_SMALLEST = "r24_k33e33_k33e33_k33e33_k33e33"


def _in_old_space(config) -> bool:
    return config.resolution >= 24 and min(config.depths) >= 2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="runs/fashion_mnist_host.yaml")
    parser.add_argument("--n-random", type=int, default=100)
    parser.add_argument("--n-tau", type=int, default=20)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--checkpoint", help="supernet file (default: the spec's)")
    parser.add_argument("--out", help="write the figures and both lists as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    spec = load_spec(args.spec)
    space, evaluator = subnet_evaluator(spec, args.checkpoint)
    dataset = evaluator.dataset
    rng = np.random.default_rng(args.seed)
    out: dict = {
        "checkpoint": args.checkpoint or spec.supernet.checkpoint,
        "n_val_images": len(dataset.val),
    }
    start = time.perf_counter()

    def val(config) -> float:
        return evaluator.evaluate(config, "val")["accuracy"]

    smallest, old_smallest = space.smallest(), space.parse(OLD_SMALLEST)
    # 1. random subnets against the smallest
    if args.n_random:  # 0 skips this part
        ref = {"smallest": val(smallest), "old_smallest": val(old_smallest)}
        randoms = [space.sample(rng) for _ in range(args.n_random)]
        scores = []
        for i, config in enumerate(randoms):
            scores.append(val(config))
            if (i + 1) % 10 == 0:
                print(f"  {i + 1}/{len(randoms)} random subnets scored", flush=True)
        below = sum(s < ref["smallest"] for s in scores)
        old = [s for c, s in zip(randoms, scores, strict=True) if _in_old_space(c)]
        old_below = sum(s < ref["old_smallest"] for s in old)
        out["random"] = [
            {"config": str(c), "val_top1": s} for c, s in zip(randoms, scores, strict=True)
        ]
        out.update(
            val_top1_smallest=ref["smallest"],
            val_top1_old_smallest=ref["old_smallest"],
            share_below_smallest=below / len(scores),
            n_in_old_space=len(old),
            share_below_old_smallest=old_below / max(len(old), 1),
        )
        print(
            f"smallest {smallest}: val top-1 {ref['smallest'] * 100:.2f}%; {below} of "
            f"{len(scores)} random subnets below it ({below / len(scores):.0%}); random val top-1 "
            f"{min(scores) * 100:.2f}-{max(scores) * 100:.2f}%",
            flush=True,
        )
        print(
            f"old space's smallest {old_smallest}: {ref['old_smallest'] * 100:.2f}%; "
            f"{old_below} of the {len(old)} random subnets in the old space (24-28 px, "
            "depth >= 2) below it",
            flush=True,
        )

    # 2. supernet score against a short fine-tune, over the latency range
    device = spec.devices[0]
    latency = build_latency(spec.resolve_path(device.lut), space, dtype=device.dtype)
    rng = np.random.default_rng(args.seed + 1)  # the same subnets whether part 1 ran or not
    pool = [space.sample(rng) for _ in range(2000)] + [smallest, space.largest()]
    ms = np.array([latency.predict(c).ms for c in pool])
    order = np.argsort(ms)
    targets = np.linspace(np.log(ms.min()), np.log(ms.max()), args.n_tau)
    picked: list[int] = []
    for t in targets:  # the unpicked subnet nearest each evenly spaced log latency
        for i in order[np.argsort(np.abs(np.log(ms[order]) - t))]:
            if i not in picked:
                picked.append(int(i))
                break
    rows = []
    for n, i in enumerate(sorted(picked, key=lambda i: ms[i])):
        config = pool[i]
        before, resolution = val(config), space.input_shape(config)[1]
        model = train_steps(
            evaluator.subnet(config), dataset, resolution, args.steps, seed=args.seed
        )
        val_batches = batches(
            dataset.val, evaluator.batch_size, dataset.preprocessing, resolution=resolution
        )
        after, _ = top1(model, val_batches)
        rows.append(
            {
                "config": str(config),
                "latency_ms": float(ms[i]),
                "supernet": before,
                "finetuned": after,
            }
        )
        print(
            f"  {n + 1:2d}. {config}  {ms[i]:.3f} ms  supernet {before * 100:.2f}%  "
            f"fine-tuned {after * 100:.2f}%",
            flush=True,
        )
    tau = kendalltau([r["supernet"] for r in rows], [r["finetuned"] for r in rows]).statistic
    out.update(kendall_tau=float(tau), tau_subnets=rows, finetune_steps=args.steps)
    print(f"Kendall tau (supernet vs {args.steps}-step fine-tune, {len(rows)} subnets): {tau:.3f}")

    # 3. the ends on the test split
    for which in ("largest", "smallest"):
        config = space.resolve(which)
        acc = evaluator.evaluate(config, "test")["accuracy"]
        out[f"test_top1_{which}"] = acc
        print(f"{which} {config}: test top-1 {acc * 100:.2f}% (10,000 test images)")
    acc = evaluator.evaluate(old_smallest, "test")["accuracy"]
    out["test_top1_old_smallest"] = acc
    print(f"old space's smallest {old_smallest}: test top-1 {acc * 100:.2f}%")
    out["seconds"] = time.perf_counter() - start
    print(json.dumps({k: v for k, v in out.items() if k not in ("random", "tau_subnets")}))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
