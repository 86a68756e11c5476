"""Joint configs (architecture, pruned widths, per-layer precision: ``apq(ofa_mbv3_small)``) of
the shipped Fashion-MNIST supernet, each exported as one ``tflite-mixed`` file and verified:

- every layer's precision read back from the file's tensors against the config;
- the simulated score (``nas.supernet.simulate_precisions``: what a search scores the config
  with) against the file's own top-1, both on the same test images (never seen by the supernet
  or its BatchNorm recalibration);
- the file's size, and its latency measured on this host (LiteRT, 1 thread, batch 1; every file
  timed again side by side at the end) next to the host table's prediction (per-layer entries at
  each layer's precision plus the QUANTIZE / DEQUANTIZE ops between; missing entries measured
  here first).

    .venv/bin/python benchmarks/apq_export.py [--n 10] [--seed 0] [--test-images 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nas  # noqa: E402,F401  (the torchvision/ofa import trap)


def main() -> int:
    from nas.export import export_subnet, file_layer_precisions, time_round_robin
    from nas.jobs import subnet_evaluator
    from nas.latency import build_latency, fill_for_configs
    from nas.paths import cache_root, runs_root
    from nas.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--spec", default="runs/fashion_mnist_host.yaml")
    args = parser.parse_args()

    spec = dataclasses.replace(load_spec(args.spec), space="apq(ofa_mbv3_small)")
    space, evaluator = subnet_evaluator(spec)
    latency = build_latency(spec.resolve_path(spec.devices[0].lut), space, dtype="fp32")
    rng = np.random.default_rng(args.seed)
    configs = [space.sample(rng) for _ in range(args.n)]
    t = time.perf_counter()
    filled = fill_for_configs(latency, configs, cache_dir=cache_root() / "layers")
    print(f"table: {filled} missing keys measured in {time.perf_counter() - t:.0f} s")
    out = runs_root() / "benchmarks" / "apq_export"
    rows = []
    for i, config in enumerate(configs):
        t = time.perf_counter()
        simulated = evaluator.evaluate(config, "test", args.test_images)["accuracy"]
        model = evaluator.subnet(config)
        (file,) = export_subnet(
            space,
            config,
            model,
            evaluator.dataset,
            out,
            formats=["tflite-mixed"],
            latency_model=latency,
            test_images=args.test_images,
            measure_latency=False,
        )
        precisions = file_layer_precisions(file.path, space.layer_paths(config))
        rows.append(
            {
                "config": str(config),
                "path": str(file.path),
                "precisions_match": precisions == list(config.dtypes),
                "simulated_top1": simulated,
                "file_top1": file.test_accuracy,
                "size_bytes": file.size_bytes,
                "predicted_ms": file.latency_predicted_ms,
            }
        )
        match = "match" if rows[-1]["precisions_match"] else "DIFFER"
        print(
            f"{i + 1}/{len(configs)} {config}: simulated {simulated:.2%}, file "
            f"{file.test_accuracy:.2%}, layers {match} ({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    timings = time_round_robin([r["path"] for r in rows], threads=1, runs=1000, rounds=20)
    for r, timing in zip(rows, timings, strict=True):
        r["measured_ms"] = timing.mean
    _report(rows, out)
    return 0


def _report(rows: list[dict], out: Path) -> None:
    from scipy.stats import kendalltau

    gaps = np.array([r["file_top1"] - r["simulated_top1"] for r in rows]) * 100
    pred = np.array([r["predicted_ms"] for r in rows])
    meas = np.array([r["measured_ms"] for r in rows])
    rel = (pred - meas) / meas
    print("\n| config | layers | simulated | file | gap (pt) | size (KiB) | predicted | measured |")
    print("|---|---|---|---|---|---|---|---|")
    for r, gap in zip(rows, gaps, strict=True):
        print(
            f"| {r['config']} | {'match' if r['precisions_match'] else 'DIFFER'} | "
            f"{r['simulated_top1']:.2%} | {r['file_top1']:.2%} | {gap:+.2f} | "
            f"{r['size_bytes'] / 1024:.0f} | {r['predicted_ms']:.3f} | {r['measured_ms']:.3f} |"
        )
    print(
        f"\n{sum(r['precisions_match'] for r in rows)}/{len(rows)} files with every layer at its "
        f"precision; gap file - simulated: mean {gaps.mean():+.2f} pt, max |gap| "
        f"{np.abs(gaps).max():.2f} pt; latency: {np.mean(np.abs(rel) <= 0.1):.0%} within ±10%, "
        f"mean error {rel.mean():+.1%}, Kendall tau {kendalltau(pred, meas).statistic:.3f}"
    )
    (out / "apq_export.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
