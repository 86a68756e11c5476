"""NetAdapt against its start model and the uniform width-multiplier baseline, in one run; or
the filter-importance criteria against each other at the same budget.

    .venv/bin/python benchmarks/netadapt.py [--spec runs/fashion_mnist_netadapt.yaml]
    .venv/bin/python benchmarks/netadapt.py --spec runs/fashion_mnist_netadapt_criteria.yaml \
        --criteria l2,apoz,taylor

1. ``nas netadapt`` on the spec (resumes if it ran before): the start subnet pruned to the budget
   on the first device's table, fine-tuned ``long_term_epochs``, exported and verified. With
   ``--criteria``, one run per criterion (``netadapt.criterion``; job ``<name>-<criterion>``),
   everything else the same: budget, schedule, short-term steps and the long-term fine-tune.
2. The start model exported and verified the same way (BatchNorm recalibrated, no fine-tuning).
3. The baseline (unless ``--no-uniform``; left out by default with several criteria): every
   prunable layer of the start model scaled by one width multiplier (largest
   L2 filters kept, widths on the same channel grid) and fine-tuned with NetAdapt's budget: the
   short-term steps its kept model went through, then ``long_term_epochs``. The multiplier's
   configs move in steps, so two are trained: ``uniform``, the largest multiplier whose predicted
   latency is within NetAdapt's, and ``uniform+``, the next config up (just above NetAdapt's).

Every accuracy is the exported ``.tflite`` file's own top-1 on the 10k test images (never seen by
pruning or fine-tuning); every "measured" latency is LiteRT on this host, 1 thread, fp32, batch 1:
the four files timed again side by side at the end (20 rounds, each file once per round, median of
50 runs each; a file's fastest round); "predicted" is the table's.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nas  # noqa: E402,F401  (the torchvision/ofa import trap)


def _side_by_side(rows: list[dict], threads: int, rounds: int = 20) -> None:
    """Time every file again in this one process, round-robin (``nas.export.time_round_robin``:
    each round times each file once, median of 200 runs; a file's figure is its fastest
    round), so that the files compared were timed under the same conditions (the export-time
    figures stay as ``measured_at_export_ms``)."""
    from nas.export import time_round_robin

    paths = [r["path"] for r in rows]
    timings = time_round_robin(paths, threads=threads, runs=50 * rounds, rounds=rounds)
    for r, timing in zip(rows, timings, strict=True):
        r["measured_at_export_ms"] = r["measured_ms"]
        r["measured_ms"] = timing.mean
        r["measured_round_spread_ms"] = timing.std


def main() -> int:
    from nas.export import export_subnet
    from nas.jobs import subnet_evaluator
    from nas.prune import NetAdaptJob
    from nas.registry import CRITERIA
    from nas.spec import load_spec
    from nas.supernet import finetune, train_steps

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="runs/fashion_mnist_netadapt.yaml")
    ap.add_argument(
        "--criteria",
        default=None,
        help=f"comma-separated filter criteria ({', '.join(CRITERIA.names())}): one NetAdapt run "
        "each at the spec's budget (default: the spec's netadapt.criterion)",
    )
    ap.add_argument(
        "--uniform",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train the uniform width-multiplier baseline (default: with one criterion only)",
    )
    ap.add_argument("--out", default=None, help="result JSON (default runs/<name>/benchmark.json)")
    args = ap.parse_args()
    spec = load_spec(args.spec)
    criteria = args.criteria.split(",") if args.criteria else [spec.netadapt.criterion]
    for name in criteria:
        CRITERIA.get(name)  # a clear error before an hour of work
    uniform_baseline = len(criteria) == 1 if args.uniform is None else args.uniform

    results, netadapt_seconds = {}, {}
    for name in criteria:
        run_spec = spec
        if args.criteria:
            run_spec = dataclasses.replace(
                spec,
                name=f"{spec.name}-{name}",
                netadapt=dataclasses.replace(spec.netadapt, criterion=name),
            )
        print(f"NetAdapt with criterion {name} ({run_spec.name})", flush=True)
        began = time.perf_counter()
        job = NetAdaptJob(run_spec, progress=lambda line: print(line, flush=True))
        results[name] = job.run()
        netadapt_seconds[name] = round(time.perf_counter() - began, 1)
    result = results[criteria[0]]
    na, space, latency = spec.netadapt, job.space, job.latency
    threads = latency.device.threads or 1
    out_dir = spec.run_dir() / "benchmark"

    def row(label: str, config, exported: dict) -> dict:
        """One table row from an exported file's summary (``ExportedFile.summary()``)."""
        return {
            "model": label,
            "config": str(config),
            "test_accuracy": exported["test_accuracy"],
            "predicted_ms": exported["latency_predicted_ms"],
            "measured_ms": exported["latency_measured_ms"],
            "parity_ok": exported["parity_ok"],
            "path": str(exported["path"]),
        }

    def verify(label: str, config, model) -> dict:
        (f,) = export_subnet(
            space,
            config,
            model,
            job.dataset,
            out_dir / label,
            formats=["tflite-fp32"],
            latency_model=latency,
            threads=threads,
        )
        return row(label, config, f.summary())

    _, evaluator = subnet_evaluator(spec, dataset=job.dataset)
    start = job.start
    start_model = evaluator.subnet(start.base)  # BN recalibrated once; export leaves it as it is
    rows = [verify("start", start, start_model)]
    for name in criteria:
        (exported,) = [e for e in results[name]["exported"] if e["format"] == "tflite-fp32"]
        label = f"netadapt-{name}" if args.criteria else "netadapt"
        rows.append(
            {
                **row(label, results[name]["config"], exported),
                "criterion": name,
                "iterations": results[name]["iterations"],
                "val_accuracy": results[name]["val_accuracy"],
            }
        )

    # the uniform baseline at (at most) NetAdapt's predicted latency
    lo, hi = 0.05, 1.0
    for _ in range(14):
        mid = (lo + hi) / 2
        if job.price(space.uniform(start.base, mid)) <= result["latency_ms"]:
            lo = mid
        else:
            hi = mid
    # the multiplier's configs move in steps: the one just within NetAdapt's latency, and the
    # next one up (just above it), both trained with the same budget
    baseline_seconds = {}
    for label, multiplier in (("uniform", lo), ("uniform+", hi)) if uniform_baseline else ():
        uniform = space.uniform(start.base, multiplier)
        print(
            f"{label} baseline: multiplier {multiplier:.3f}, {job.price(uniform):.3f} ms predicted",
            flush=True,
        )
        t0 = time.perf_counter()
        model = space.prune_to(copy.deepcopy(start_model), uniform)
        train_steps(
            model,
            job.dataset,
            space.input_shape(uniform)[1],
            result["short_term_steps_total"],
            lr=na.short_term_lr,
            batch_size=na.short_term_batch,
            seed=spec.seed,
        )
        finetune(
            model,
            job.dataset,
            space.input_shape(uniform)[1],
            na.long_term_epochs,
            lr=na.long_term_lr,
            seed=spec.seed,
        )
        baseline_seconds[label] = round(time.perf_counter() - t0, 1)
        rows.append({**verify(label, uniform, model), "multiplier": multiplier})

    _side_by_side(rows, threads)
    base = rows[0]
    print()
    print(
        f"{'model':16} {'test top-1':>10} {'drop (pt)':>9} {'predicted ms':>12} "
        f"{'measured ms':>11} {'speed-up':>8}  config"
    )
    for r in rows:
        r["drop_points"] = 100 * (base["test_accuracy"] - r["test_accuracy"])
        r["measured_speedup"] = base["measured_ms"] / r["measured_ms"]
        print(
            f"{r['model']:16} {100 * r['test_accuracy']:9.2f}% {r['drop_points']:9.2f} "
            f"{r['predicted_ms']:12.3f} {r['measured_ms']:11.3f} {r['measured_speedup']:7.2f}x  "
            f"{r['config']}"
        )
    summary = {
        "device": result["device"],
        "latency": "host LiteRT fp32, 1 thread, batch 1; predicted by the table, measured here",
        "accuracy": "top-1 of each .tflite on the 10,000 test images",
        "criteria": criteria,
        "iterations": {name: r["iterations"] for name, r in results.items()},
        "short_term_steps_total": result["short_term_steps_total"],
        "long_term_epochs": na.long_term_epochs,
        "netadapt_seconds": netadapt_seconds,
        "baseline_finetune_seconds": baseline_seconds,
        "rows": rows,
    }
    out = Path(args.out) if args.out else spec.run_dir() / "benchmark.json"
    out.write_text(json.dumps(summary, indent=1))
    for name in criteria:
        print(
            f"NetAdapt ({name}) {results[name]['iterations']} iterations in "
            f"{netadapt_seconds[name] / 60:.1f} min"
        )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
