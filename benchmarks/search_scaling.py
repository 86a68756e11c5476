"""Parallel scaling of `nas search` on fashion_mnist_host (supernet evaluator, host tables).

    .venv/bin/python benchmarks/search_scaling.py [--trials 16]

Runs the same number of trials three times, each in a fresh study: 1 worker x 1 thread,
2 workers x 1 thread, 1 worker x 2 threads. Prints trials per minute (timed from the first
trial's dispatch, so Ray and actor start-up are reported apart), the speed-ups, and the
driver + Ray + MLflow overhead per trial as a share of evaluation time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import nas  # noqa: F401
from nas.search import SearchJob
from nas.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def run(spec, workers: int, threads: int, trials: int) -> dict:
    import ray

    name = f"bench_scaling_w{workers}_t{threads}"
    spec = dataclasses.replace(
        spec,
        name=name,
        search=dataclasses.replace(
            spec.search, trials=trials, workers=workers, threads_per_worker=threads
        ),
    )
    shutil.rmtree(spec.run_dir(), ignore_errors=True)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    times: list[float] = []
    job = SearchJob(spec, track=True, progress=lambda info: times.append(time.perf_counter()))
    start = time.perf_counter()
    result = job.run(export=False)
    ray.shutdown()
    t = result.timing
    # steady state: from the first completed trial to the last (start-up excluded)
    steady = (times[-1] - times[0]) / max(len(times) - 1, 1) if len(times) > 1 else float("nan")
    eval_per_trial = t["eval_seconds"] / max(t["dispatched"], 1)
    per_worker_wall = steady * workers
    overhead = max(per_worker_wall - eval_per_trial, 0.0) / eval_per_trial
    return {
        "workers": workers,
        "threads": threads,
        "trials": result.n_complete,
        "trials_per_minute": 60.0 / steady,
        "wall_seconds": time.perf_counter() - start,
        "startup_seconds": times[0] - start - eval_per_trial if times else None,
        "eval_seconds_per_trial": eval_per_trial,
        "overhead_share": overhead,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--spec", default=str(REPO / "runs" / "fashion_mnist_host.yaml"))
    args = parser.parse_args()
    # a throw-away MLflow store and runs/ folder: the benchmark logs like a real search does
    tmp = tempfile.mkdtemp(prefix="nas-scaling-")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
    os.environ.setdefault("NAS_RUNS_DIR", f"{tmp}/runs")
    spec = load_spec(args.spec)
    rows = [run(spec, w, t, args.trials) for w, t in ((1, 1), (2, 1), (1, 2))]
    base = rows[0]["trials_per_minute"]
    for row in rows:
        print(
            f"{row['workers']} worker(s) x {row['threads']} thread(s): "
            f"{row['trials_per_minute']:.2f} trials/min "
            f"({row['trials_per_minute'] / base:.2f}x of 1x1), eval "
            f"{row['eval_seconds_per_trial']:.2f} s/trial, "
            f"driver+Ray+MLflow overhead {row['overhead_share']:.1%} of evaluation time"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
