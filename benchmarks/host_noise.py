"""How steady this host's LiteRT timings are: the same files timed again and again.

    .venv/bin/python benchmarks/host_noise.py [--space ofa_mbv3_small] [--subnets 6] \
        [--layers 10] [--rounds 5]

``--subnets`` random whole subnets and ``--layers`` layers of the space (fp32, 1 thread) are
converted as nas converts them; then, ``--rounds`` times, each file is timed once in turn with a
fresh interpreter (median of 200 runs for a subnet, 50 for a layer). Prints every round's medians
and each file's spread (slowest / fastest round). A spread far above 1 means single timings on this
host cannot be trusted to 10%, which is why nas times round-robin and keeps each file's fastest
round (``nas.export.time_round_robin``). Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nas  # noqa: E402,F401  (the torchvision/ofa import trap)


def main() -> None:
    from nas.export import HostFingerprint, time_tflite
    from nas.latency import subnet_tflite
    from nas.latency._calibrate import layer_tflite
    from search_spaces import get_space

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--space", default="ofa_mbv3_small")
    parser.add_argument("--subnets", type=int, default=6)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    space = get_space(args.space)
    rng = np.random.default_rng(7)
    files = [
        (f"subnet {c}", subnet_tflite(space, c, "fp32"), 200)
        for c in (space.sample(rng) for _ in range(args.subnets))
    ]
    catalog = space.all_layers(space.resolutions[-1])
    picked = [catalog[i] for i in np.linspace(0, len(catalog) - 1, args.layers).astype(int)]
    files += [(f"layer {x.key}", layer_tflite(space, x, "fp32"), 50) for x in picked]
    medians: list[list[float]] = [[] for _ in files]
    for _ in range(args.rounds):
        for (_, data, runs), out in zip(files, medians, strict=True):
            out.append(time_tflite(data, threads=1, runs=runs, rounds=1).mean)
    rows = [
        {"file": name, "medians_ms": m, "spread": max(m) / min(m)}
        for (name, _, _), m in zip(files, medians, strict=True)
    ]
    for kind in ("subnet", "layer"):
        spreads = [r["spread"] for r in rows if r["file"].startswith(kind)]
        lo, hi, mid = min(spreads), max(spreads), float(np.median(spreads))
        print(f"{kind}s: spread {lo:.3f}-{hi:.3f} (median {mid:.3f})")
    print(json.dumps({"machine": HostFingerprint.here().describe(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
