"""``nas lut fit`` on this host, for real (issue 12, item 5): the host fp32 1-thread table as the
source, a table for another setting fitted from N whole subnets timed here, next to a full
layer-by-layer calibration of that setting, all checked against the same 50 other subnets timed
end to end.

    .venv/bin/python benchmarks/latency_host_fit.py [--settings fp32:2,int8:1] [--n 10,20]

Per setting (precision:threads):

1. ``nas lut calibrate --device host`` of the setting (every layer timed; its layer files
   cached under ``<cache>/layers``, so a second run times without converting): seconds.
2. ``nas lut fit --device host --n N`` for each N (the source is the shipped table as a job
   prices it here, i.e. this machine's re-timing of it when this is another machine): seconds.
   Where N is enough for a scale per layer group, the same fit with one scale beside it.
3. 50 random subnets (``nas lut validate``'s draw, seed 0; none of them is a fitted subnet)
   converted and timed end to end once; every table above predicts them: share within +/-10%,
   MAPE, Kendall tau.

Run with nothing else on the machine: it compares timings. Prints one JSON line per table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

import nas  # noqa: F401  (the torchvision/ofa import trap)
import nas.latency._fit as fit
from nas.cli import main as nas_main
from nas.latency import LayerTableLatency, load_device, suggest_subnets, time_here
from nas.paths import cache_root, resolve
from search_spaces import get_space

SPACE = "ofa_mbv3_small"
FIT_SEED = 7  # the fit's pool; validation draws with seed 0, as `nas lut validate` does


def _run(argv: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = nas_main(argv)
    if rc:
        raise SystemExit(f"nas {' '.join(argv)} exited {rc}")
    return time.perf_counter() - start


def _figures(folder: Path, space, dtype: str, configs, measured: np.ndarray) -> dict:
    model = LayerTableLatency(
        folder, space, dtype=dtype, device=load_device(folder / "device.yaml")
    )
    pred = np.array([model.predict(c).ms for c in configs])
    rel = np.abs(pred / measured - 1)
    return {
        "within_10pct": float(np.mean(rel <= 0.1)),
        "mape": float(rel.mean()),
        "kendall_tau": float(kendalltau(pred, measured).statistic),
    }


@contextlib.contextmanager
def _one_scale(on: bool):
    """While ``on``: ``nas lut fit`` keeps one scale for every layer group whatever N."""
    saved = fit.TIMINGS_PER_PARAMETER
    fit.TIMINGS_PER_PARAMETER = 10**9 if on else saved
    try:
        yield
    finally:
        fit.TIMINGS_PER_PARAMETER = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="fp32:2,int8:1")
    parser.add_argument("--n", default="10,20", help="timed subnets per fit")
    parser.add_argument("--validate", type=int, default=50)
    parser.add_argument("--lut", default="latency_luts/host-x86-litert")
    parser.add_argument("--out", default=None, help="default: a temporary folder")
    args = parser.parse_args()
    space, source = get_space(SPACE), resolve(args.lut)
    out = Path(args.out or tempfile.mkdtemp(prefix="host_fit_"))
    ns = [int(n) for n in args.n.split(",")]
    groups = 4  # ofa_mbv3_small's layer groups: kernels 3, 5, 7, and stem and head
    per_group = fit.TIMINGS_PER_PARAMETER * (groups + 1)  # N from which the fit is per group
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(args.validate)]
    fitted = {str(c) for n in ns for c in suggest_subnets(source, space, n, seed=FIT_SEED)}
    configs = [c for c in configs if str(c) not in fitted]
    for setting in args.settings.split(","):
        dtype, threads = setting.split(":")
        tables = {}
        full = out / f"full-{dtype}-t{threads}"
        seconds = _run(["lut", "calibrate", "--space", SPACE, "--device", "host",
                        "--threads", threads, "--dtype", dtype, "--out", str(full),
                        "--cache", str(cache_root() / "layers")])  # fmt: skip
        tables["full calibration"] = (full, seconds)
        for n, one_scale in [(n, False) for n in ns] + [(n, True) for n in ns if n >= per_group]:
            name = f"fit{n}-{dtype}-t{threads}" + ("-one-scale" if one_scale else "")
            with _one_scale(one_scale):
                seconds = _run(["lut", "fit", "--space", SPACE, "--sources", str(source),
                                "--device", "host", "--n", str(n), "--seed", str(FIT_SEED),
                                "--dtype", dtype, "--threads", threads,
                                "--out", str(out / name)])  # fmt: skip
            tables[f"fit N={n}" + (", one scale" if one_scale else "")] = (out / name, seconds)
        start = time.perf_counter()
        timed = time_here(
            source, space, configs, dtype, int(threads),
            runs=100, cache_dir=cache_root() / "subnets", span_s=60.0,
        )  # fmt: skip
        measured = np.array([timed[str(c)] for c in configs])
        validate_s = time.perf_counter() - start
        for what, (folder, seconds) in tables.items():
            row = {"setting": f"{dtype}, {threads} thread(s)", "table": what, "seconds": seconds,
                   "validated_on": len(configs), "validation_seconds": validate_s,
                   **_figures(folder, space, dtype, configs, measured)}  # fmt: skip
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
