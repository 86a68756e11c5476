"""Time to calibrate one full host latency table (every distinct layer of a space at one
resolution), from scratch into a temporary folder.

    .venv/bin/python benchmarks/lut_calibration.py [--space ofa_mbv3_small] [--resolution 28] \
        [--dtype fp32]

Prints the number of layers, the total wall time, and its split into conversion (Keras -> TFLite)
and timing (LiteRT, warm-up + 50 runs per layer, 1 thread).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nas  # noqa: F401
from nas.export import time_tflite
from nas.latency import load_table
from nas.latency._calibrate import calibrate, host_device_info
from search_spaces import get_space


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--space", default="ofa_mbv3_small")
    parser.add_argument("--resolution", type=int, default=28)
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "int8"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    space = get_space(args.space)
    timing = {"seconds": 0.0}

    def measure(model: bytes, layer) -> object:
        start = time.perf_counter()
        entry = time_tflite(model, threads=args.threads, runs=50)
        timing["seconds"] += time.perf_counter() - start
        return entry

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        device = host_device_info(args.threads, "benchmark run")
        path = calibrate(
            space, args.resolution, Path(tmp), dtype=args.dtype, measure=measure, device=device
        )
        total = time.perf_counter() - start
        n = len(load_table(path))
    result = {
        "space": args.space,
        "resolution": args.resolution,
        "dtype": args.dtype,
        "threads": args.threads,
        "layers": n,
        "total_seconds": round(total, 1),
        "litert_timing_seconds": round(timing["seconds"], 1),
        "conversion_and_other_seconds": round(total - timing["seconds"], 1),
    }
    print(
        f"{args.space} r{args.resolution} {args.dtype}: {n} layers calibrated in {total:.1f} s "
        f"({timing['seconds']:.1f} s timing in LiteRT, the rest Keras->TFLite conversion)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
