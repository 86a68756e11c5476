"""The end-of-search export stage, serial (as the driver did it) vs on the actor pool.

    .venv/bin/python benchmarks/export_parallel.py [--spec runs/fashion_mnist_host.yaml] \
        [--configs 3] [--workers 2]

The same members are exported both ways: ``--configs`` subnets (the spec's study front when
``runs/<job>/study.journal`` exists, else seeded random draws), each for every device of the spec
in its default format (the main job: 3 configs x fp32/int8 = 6 models). Each member is fine-tuned
(``export.finetune_epochs``), exported, verified (parity, test accuracy of the file, LiteRT
latency). Serial: one after another in this process, with 1 thread (as wave 1's driver did it, the
other core idle) and with every core (torch and the LiteRT scoring). Pool: ``--workers`` Ray actors
of 1 thread each (actor start-up timed apart), the files timed in this process once the workers are
done (as the stage does; that timing is part of the pool's wall time). Prints both wall times, the
speed-up, and each model's wall and CPU time (CPU time shows the work itself when other processes
share the machine). Registration in MLflow is not part of either timing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import nas  # noqa: F401
from nas.export import time_exported
from nas.jobs import subnet_evaluator
from nas.latency import build_latency
from nas.search._exporting import ExportWorker, export_member, longest_first
from nas.spec import load_spec
from nas.tracking.registry import DEFAULT_FORMAT


class TimedExportWorker(ExportWorker):
    """The pool's export worker, also returning the task's wall and CPU seconds."""

    def timed_export(self, *args: Any) -> tuple[list[Any], float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        files = self.export(*args)
        return files, time.perf_counter() - wall, time.process_time() - cpu


def _configs(spec: Any, space: Any, n: int) -> list[str]:
    journal = spec.run_dir() / "study.journal"
    if journal.is_file():
        from nas.search import SearchJob, open_study

        job = SearchJob(spec, track=False)
        front = job.fronts(open_study(spec))[job.device_names[0]]
        picked = [t.user_attrs["config"] for t in front]
        if len(picked) >= n:
            idx = np.linspace(0, len(picked) - 1, num=n).round().astype(int)
            return [picked[i] for i in idx]
    rng = np.random.default_rng(spec.seed)
    return [str(space.sample(rng)) for _ in range(n)]


def _serial(
    spec: Any, tasks: list[tuple[int, str, list[str]]], out: Path, threads: int
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    space, evaluator = subnet_evaluator(spec)
    models = {
        i: build_latency(spec.resolve_path(d.lut), space, dtype=d.dtype)
        for i, d in enumerate(spec.devices)
    }
    rows, start = [], time.perf_counter()
    for device, config, formats in tasks:
        wall, cpu = time.perf_counter(), time.process_time()
        export_member(
            spec, space, evaluator, models[device], config, out / str(device), formats,
            score_threads=threads,
        )  # fmt: skip
        rows.append(
            {"config": config, "formats": formats, "wall_s": time.perf_counter() - wall,
             "cpu_s": time.process_time() - cpu}
        )  # fmt: skip
        print(f"serial{threads} {formats[0]:12s} {config}: {rows[-1]['wall_s']:.1f} s", flush=True)
    return {"wall_s": time.perf_counter() - start, "models": rows}


def _pool(spec: Any, tasks: list[tuple[int, str, list[str]]], out: Path, workers: int) -> dict:
    import ray

    from nas.cluster import init_ray, spec_to_dict
    from nas.pool import ActorPool

    init_ray(workers)
    began = time.perf_counter()
    actor = ray.remote(num_cpus=1)(TimedExportWorker)
    with ActorPool(
        actor, (spec_to_dict(spec), 1), size=workers, max_failures=1, what="an export worker"
    ) as pool:
        startup = time.perf_counter() - began
        start = time.perf_counter()
        for device, config, formats in tasks:
            pool.submit((config, formats), "timed_export", device, config, str(out / str(device)),
                        formats)  # fmt: skip
        rows = []
        files = []
        for done in pool.as_completed():
            exported, wall, cpu = done.value
            config, formats = done.item
            files += exported
            rows.append({"config": config, "formats": formats, "wall_s": wall, "cpu_s": cpu})
            print(f"pool    {formats[0]:12s} {config}: {wall:.1f} s", flush=True)
    timing = time.perf_counter()
    for f in files:  # as the stage does: timed once the workers are done
        time_exported(f)
    timing = time.perf_counter() - timing
    wall = time.perf_counter() - start
    ray.shutdown()
    return {"wall_s": wall, "startup_s": startup, "timing_after_pool_s": timing, "models": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="runs/fashion_mnist_host.yaml")
    parser.add_argument("--configs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-serial", action="store_true")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    space, _ = subnet_evaluator(spec)
    configs = _configs(spec, space, args.configs)
    tasks = [(i, c, [DEFAULT_FORMAT[d.dtype]]) for c in configs for i, d in enumerate(spec.devices)]
    # the stage's order: the longest expected first (nas.search._exporting.longest_first)
    order = longest_first(
        [{"row": {"config": c}, "todo": f, "task": (i, c, f)} for i, c, f in tasks], space
    )
    tasks = [t["task"] for t in order]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        report: dict[str, Any] = {"n_models": len(tasks), "cpus": cores}
        report["pool"] = _pool(spec, tasks, Path(tmp) / "pool", args.workers)
        if not args.skip_serial:
            # as wave 1's driver did (one thread: the other core idle), and with every core
            for threads in sorted({1, cores}):
                report[f"serial_{threads}t"] = _serial(
                    spec, tasks, Path(tmp) / f"serial{threads}", threads
                )
    for key in [k for k in report if k.startswith("serial_")]:
        report[f"speedup_vs_{key}"] = report[key]["wall_s"] / report["pool"]["wall_s"]
    for key in [k for k in report if k == "pool" or k.startswith("serial_")]:
        report[key]["cpu_s_total"] = sum(m["cpu_s"] for m in report[key]["models"])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
