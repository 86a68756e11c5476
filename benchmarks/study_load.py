"""A 10,000-trial predictor study (OFA's ImageNet space, OFA's accuracy predictor, Note10 table)
on each study storage: trials per second and the driver's own time per trial.

    .venv/bin/python benchmarks/study_load.py [--trials 10000] [--storages journal,postgresql]
                                              [--sampler random] [--workers 2] [--mlflow]
                                              [--durable]

Each storage gets a fresh study (PostgreSQL: a server started here on 127.0.0.1, as the tests
do, with ``fsync=off`` unless ``--durable``; the journal: a file in a temporary runs folder,
fsynced when a trial finishes), run by ``SearchJob`` exactly as
``nas search`` runs it, on Ray workers. Printed per storage:

- trials/s: complete trials over the dispatch loop's wall time (Ray's start-up excluded);
- driver overhead per trial: the loop's time minus its waits for a worker's result, per trial:
  asking and telling the study (its storage), pricing on the table, the subnet cache, the
  heartbeats and MLflow writes when ``--mlflow``;
- the dispatch loop's time spent waiting for workers (evaluation and Ray's calls).

``random`` is the default sampler: what is measured is the storage and the driver; TPE's own
time per ask grows with the trials it models (``--sampler tpe`` shows it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/servers.py starts the PostgreSQL server

import nas  # noqa: E402,F401
from nas.paths import assets_root  # noqa: E402
from nas.search import SearchJob, _driver  # noqa: E402
from nas.spec import load_spec  # noqa: E402


class _Clock:
    """Time spent in the dispatch loop, and in its waits for a worker's result."""

    def __init__(self) -> None:
        self.loop = self.wait = 0.0
        #: (wall, wait) at every 1000th collected result: the driver's time per 1000 trials
        self.marks: list[tuple[float, float]] = []

    def per_thousand_ms(self) -> list[float]:
        """Driver ms per trial in each block of 1000 results."""
        return [
            (b[0] - a[0] - (b[1] - a[1])) for a, b in zip(self.marks, self.marks[1:], strict=False)
        ]

    def install(self) -> None:
        loop_run = _driver._TrialLoop.run
        collect = _driver._TrialLoop._collect
        clock = self

        def timed_collect(loop, done):
            collect(loop, done)
            if loop.done % 1000 == 0:
                clock.marks.append((time.perf_counter(), clock.wait))

        _driver._TrialLoop._collect = timed_collect

        def run(loop):
            pool = loop.pool
            next_completed = pool.next_completed

            def timed(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return next_completed(*args, **kwargs)
                finally:
                    clock.wait += time.perf_counter() - t

            pool.next_completed = timed
            t = time.perf_counter()
            clock.marks.append((t, clock.wait))
            try:
                return loop_run(loop)
            finally:
                clock.loop += time.perf_counter() - t

        _driver._TrialLoop.run = run


def study_spec(name: str, storage: str | None, trials: int, sampler: str, workers: int):
    spec = load_spec(REPO / "runs" / "ofa_imagenet_note10.yaml")
    return dataclasses.replace(
        spec,
        name=name,
        evaluator=dataclasses.replace(
            spec.evaluator,
            predictor=str(assets_root() / "predictors" / "ofa_mbv3_w12_imagenet_acc.pth"),
        ),
        devices=[
            dataclasses.replace(spec.devices[0], lut=str(assets_root() / "latency_luts" / "note10"))
        ],
        search=dataclasses.replace(
            spec.search, trials=trials, sampler=sampler, workers=workers, storage=storage
        ),
    )


def run(storage_kind: str, url: str | None, args: argparse.Namespace) -> dict:
    clock = _Clock()
    clock.install()
    spec = study_spec(f"load-{storage_kind}", url, args.trials, args.sampler, args.workers)
    start = time.perf_counter()
    result = SearchJob(spec, track=args.mlflow).run(export=False)
    wall = time.perf_counter() - start
    n = result.n_complete
    return {
        "storage": storage_kind,
        "trials": n,
        "trials_per_s": n / clock.loop,
        "driver_ms_per_trial": 1000 * (clock.loop - clock.wait) / n,
        "wait_ms_per_trial": 1000 * clock.wait / n,
        "wall_s": wall,
        "evaluated": result.timing["dispatched"],
        "per_thousand_ms": clock.per_thousand_ms(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--storages", default="journal,postgresql")
    parser.add_argument("--sampler", default="random")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mlflow", action="store_true", help="log every trial to MLflow too")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="a PostgreSQL server that fsyncs its commits (the tests' server does not)",
    )
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="nas-load-")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
    os.environ.setdefault("NAS_RUNS_DIR", f"{tmp}/runs")
    rows = []
    for kind in args.storages.split(","):
        if kind == "postgresql":
            from tests.servers import PostgreSQL

            server = PostgreSQL(durable=args.durable)
            try:
                rows.append(run(kind, server.create_database(), args))
            finally:
                server.close()
        else:
            rows.append(run(kind, None, args))
        r = rows[-1]
        print(
            f"{r['storage']:>10}: {r['trials']} trials ({r['evaluated']} evaluated), "
            f"{r['trials_per_s']:.1f} trials/s, driver {r['driver_ms_per_trial']:.2f} ms/trial, "
            f"waiting for workers {r['wait_ms_per_trial']:.2f} ms/trial, "
            f"wall {r['wall_s']:.0f} s",
            flush=True,
        )
        blocks = r["per_thousand_ms"]
        if len(blocks) > 1:
            print(
                "            driver ms/trial by block of 1000 trials: "
                + " ".join(f"{ms:.1f}" for ms in blocks),
                flush=True,
            )
    print(
        f"sampler {args.sampler}, {args.workers} Ray workers, MLflow "
        f"{'on' if args.mlflow else 'off'}; {os.cpu_count()} CPUs; PostgreSQL "
        f"{'fsyncs' if args.durable else 'does not fsync (fsync=off)'}; the journal fsyncs "
        "each finished trial"
    )


if __name__ == "__main__":
    main()
