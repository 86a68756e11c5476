"""Keras -> LiteRT conversion: the traced-function route nas converts through
(``nas.export._keras.keras_converter``) against ``from_keras_model``'s SavedModel route, on the same
Keras models, side by side in one process.

    .venv/bin/python benchmarks/conversion.py [--space ofa_mbv3_small] [--random 3]

For the smallest, the largest and ``--random`` seeded random subnets (weights seeded as latency
tables and validation convert them), at fp32 and at full-integer int8 (int8 in and out, as table
layers are), per route: the conversion's wall time, the file's size; then whether the two files
hold the same ops in the same order, the largest difference of their outputs on one random input,
and both files' LiteRT latency on this host (1 thread, batch 1), timed in one round-robin
(``nas.export.time_round_robin``: the fastest round's median), measured, not predicted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nas  # noqa: E402,F401  (the torchvision/ofa import trap)


def _ops_and_output(tflite: bytes, x):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(inp["dtype"])
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    y = interp.get_tensor(out["index"]).astype(np.float32)
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        y = (y - zero) * scale
    return [op["op_name"] for op in interp._get_ops_details()], y


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from nas.export import time_round_robin, to_tflite
    from nas.latency._calibrate import _seeded_keras, representative_for
    from search_spaces import get_space

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="ofa_mbv3_small")
    parser.add_argument("--random", type=int, default=3, help="random subnets beside the ends")
    args = parser.parse_args(argv)

    space = get_space(args.space)
    rng = np.random.default_rng(0)
    configs = {"smallest": space.smallest(), "largest": space.largest()}
    configs.update({f"random {i}": space.sample(rng) for i in range(args.random)})
    rows, files = [], []
    for name, config in configs.items():
        c, h, w = space.input_shape(config)
        x = rng.standard_normal((1, h, w, c)).astype(np.float32)
        for dtype in ("fp32", "int8"):
            model = _seeded_keras(lambda cfg=config: space.build(cfg), (c, h, w), 0)
            kwargs = {}
            if dtype == "int8":
                kwargs = {"representative": representative_for((h, w, c), 0), "integer_io": True}
            got = {}
            for route, saved_model in (("saved-model", True), ("function", False)):
                start = time.perf_counter()
                data = to_tflite(model, dtype, saved_model=saved_model, **kwargs)
                got[route] = (time.perf_counter() - start, data)
            (t_old, old), (t_new, new) = got["saved-model"], got["function"]
            (ops_old, y_old), (ops_new, y_new) = _ops_and_output(old, x), _ops_and_output(new, x)
            rows.append(
                {
                    "subnet": name,
                    "dtype": dtype,
                    "old_s": t_old,
                    "new_s": t_new,
                    "old_kb": len(old) / 1024,
                    "new_kb": len(new) / 1024,
                    "same_ops": ops_old == ops_new,
                    "max_dy": float(np.abs(y_old - y_new).max()),
                }
            )
            files += [old, new]
            print(f"converted {name} {dtype}", file=sys.stderr, flush=True)
    timings = time_round_robin(files, threads=1, runs=200)
    print(
        f"{'subnet':<10} {'dtype':<5} {'saved-model s':>13} {'function s':>10} {'speed-up':>8} "
        f"{'KB old/new':>15} {'same ops':>8} {'max|dy|':>8} {'ms old/new (measured)':>22}"
    )
    for i, row in enumerate(rows):
        ms_old, ms_new = timings[2 * i].mean, timings[2 * i + 1].mean
        print(
            f"{row['subnet']:<10} {row['dtype']:<5} {row['old_s']:>13.2f} {row['new_s']:>10.2f} "
            f"{row['old_s'] / row['new_s']:>7.1f}x {row['old_kb']:>7.0f}/{row['new_kb']:<7.0f} "
            f"{str(row['same_ops']):>8} {row['max_dy']:>8.1e} {ms_old:>10.4f}/{ms_new:<10.4f}"
        )
    old_total, new_total = sum(r["old_s"] for r in rows), sum(r["new_s"] for r in rows)
    print(
        f"all: saved-model {old_total:.1f} s, function {new_total:.1f} s "
        f"({old_total / new_total:.1f}x); LiteRT fp32/int8, 1 thread, this host"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
