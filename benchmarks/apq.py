"""APQ: the joint search (architecture, pruned widths, per-layer precision) against a sequential
pipeline and architecture-only searches, with the same number of accuracy evaluations each,
compared on the files they export (verified, timed side by side).

Every search arm is a real ``nas search`` study (Optuna, Ray workers, the shipped Fashion-MNIST
supernet scoring each config on ``--val-images`` validation images, the host table pricing it;
objectives top-1, latency and predicted file size, ``runs/fashion_mnist_apq.yaml`` otherwise):

- ``joint``: ``apq(ofa_mbv3_small)`` searched by the ``apq`` sampler (an evolution over
  architectures and widths, each layer's precision chosen from the table and the size model for
  a trade-off drawn per proposal: ``nas/search/_apq.py``), exported as ``tflite-mixed`` (each
  layer at its precision);
- ``joint-nsga2``: the same space searched by NSGA-II (per-layer precisions drawn like any
  other parameter), exported the same way;
- ``arch-fp32``: ``ofa_mbv3_small``, exported as ``tflite-fp32``;
- ``arch-int8``: ``int8(ofa_mbv3_small)`` (every layer int8: scored by the quantization
  simulation, priced at the int8 entries), exported as ``tflite-int8`` (the converter's
  full-integer post-training quantization);
- ``sequential``: an fp32 architecture search, then NetAdapt (as ``nas netadapt`` ships: L2
  filters, short-term fine-tuning of each proposal, ``--long-term-epochs`` of fine-tuning at the
  end) of its most accurate front member of the slower half (the smallest leave NetAdapt nothing
  to remove) to ``--netadapt-ratio`` of its latency, then uniform int8
  post-training quantization (``tflite-int8``). NetAdapt's proposals count as evaluations: the
  architecture search gets what they leave of the budget.

Each search arm exports the ``--k`` members of its front that cover the most of its hypervolume
as the search saw it (predicted latency and size, validation top-1; greedily). Each file: its
own top-1 on the 10,000 test images (never seen by the supernet, its BN recalibration or a
search), its size, its latency on this host (LiteRT, 1 thread, batch 1: all files timed again
side by side at the end) next to the prediction the search priced it at. Reported: hypervolume
over (measured latency, size, test top-1) per arm on one reference box; for every other arm's
file, the joint file with the highest top-1 at or under its latency and size, and the gap;
whether the joint front dominates the sequential one; and how long each search and export took.

    .venv/bin/python benchmarks/apq.py [--evaluations 60] [--k 4] [--val-images 2000] \
        [--netadapt-ratio 0.7] [--netadapt-iterations 2] [--long-term-epochs 1] [--seed 0] \
        [--finetune-epochs 0]

Re-running resumes: the studies continue from their journals, NetAdapt from its state, and an
arm whose files were exported already (``<runs>/benchmarks/apq/<arm>.json``) is not redone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nas  # noqa: E402,F401  (the torchvision/ofa import trap)

REPO = Path(__file__).resolve().parents[1]

#: arm -> (space, export format, sampler: None for ``--sampler``)
SEARCH_ARMS = {
    "joint": ("apq(ofa_mbv3_small)", "tflite-mixed", "apq"),
    "joint-nsga2": ("apq(ofa_mbv3_small)", "tflite-mixed", "nsga2"),
    "arch-fp32": ("ofa_mbv3_small", "tflite-fp32", None),
    "arch-int8": ("int8(ofa_mbv3_small)", "tflite-int8", None),
}


def _search_spec(
    args: argparse.Namespace, name: str, space: str, evaluations: int, sampler: str | None = None
) -> Any:
    from nas.spec import load_spec

    spec = load_spec(REPO / "runs" / "fashion_mnist_apq.yaml")
    sampler = sampler or args.sampler
    return dataclasses.replace(
        spec,
        name=f"apq-bench-{name}-s{args.seed}",
        space=space,
        seed=args.seed,
        evaluator=dataclasses.replace(spec.evaluator, val_images=args.val_images),
        search=dataclasses.replace(
            spec.search, trials=evaluations, workers=args.workers, sampler=sampler
        ),
        export=dataclasses.replace(spec.export, enabled=False),
    )


def _search(spec: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Run (or resume) the study; its job, result and timing."""
    from nas.search import SearchJob

    start = time.perf_counter()
    job = SearchJob(spec, track=False)
    result = job.run(export=False)
    seconds = time.perf_counter() - start
    print(
        f"{spec.name}: {result.n_complete} trials, {result.timing.get('dispatched', 0)} "
        f"evaluated this run, front of {len(result.pareto)} ({seconds:.0f} s)",
        flush=True,
    )
    return job, result, {"search_seconds": round(seconds, 1), **result.timing}


def _select(front: list[dict], k: int) -> list[dict]:
    """``k`` members of a front, chosen as the search saw them: greedily, each adding the most
    hypervolume over (predicted latency, predicted size, validation top-1) to those chosen
    before, in a box 5% beyond the front's largest latency and size and 0.5 pt below its
    lowest top-1 (the report's box, drawn around this front alone)."""
    from nas.search import hypervolume

    if len(front) <= k:
        return front

    def point(m: dict) -> tuple[float, float, float]:
        return (next(iter(m["latency_ms"].values())), m["size_kb"], 1 - m["accuracy"])

    points = [point(m) for m in front]
    ref = (
        1.05 * max(p[0] for p in points),
        1.05 * max(p[1] for p in points),
        max(p[2] for p in points) + 0.005,
    )
    chosen: list[int] = []
    for _ in range(k):
        best = max(
            (i for i in range(len(front)) if i not in chosen),
            key=lambda i: hypervolume([points[j] for j in [*chosen, i]], ref),
        )
        chosen.append(best)
    return [front[i] for i in sorted(chosen, key=lambda i: points[i][0])]


def _export(
    arm: str,
    spec: Any,
    job: Any,
    configs: list[Any],
    fmt: str,
    out: Path,
    extra: dict,
    finetune_epochs: int,
    finetune_lr: float,
) -> list[dict]:
    """Each config exported in ``fmt`` and verified (test top-1 on all test images); untimed.
    With ``finetune_epochs``, each subnet is first fine-tuned as the sequential arm's NetAdapt
    fine-tunes its final model (fp32, on the training split, then quantized by the export)."""
    from nas.export import export_subnet
    from nas.jobs import subnet_evaluator
    from nas.supernet import finetune

    space, evaluator = subnet_evaluator(spec)
    rows = []
    for config in configs:
        start = time.perf_counter()
        model = evaluator.subnet(config)
        if finetune_epochs:
            resolution = space.input_shape(config)[1]
            finetune(
                model,
                evaluator.dataset,
                resolution,
                finetune_epochs,
                lr=finetune_lr,
                seed=spec.seed,
            )
        (f,) = export_subnet(
            space,
            config,
            model,
            evaluator.dataset,
            out / arm,
            formats=[fmt],
            latency_model=job.devices[0],
            measure_latency=False,
        )
        rows.append(_row(arm, config, f, time.perf_counter() - start, extra.get(str(config))))
        print(f"  {arm}: exported {config} ({rows[-1]['export_seconds']:.0f} s)", flush=True)
    return rows


def _row(arm: str, config: Any, f: Any, seconds: float, val: float | None) -> dict:
    return {
        "arm": arm,
        "config": str(config),
        "format": f.format,
        "path": str(f.path),
        "val_top1": val,
        "test_top1": f.test_accuracy,
        "size_bytes": f.size_bytes,
        "size_predicted_bytes": f.size_predicted_bytes,
        "predicted_ms": f.latency_predicted_ms,
        "export_seconds": round(seconds, 1),
    }


def _search_arm(args: argparse.Namespace, arm: str, out: Path) -> dict:
    ft = args.finetune_epochs
    name = f"{arm}-ft{ft}" if ft else arm  # its files and report row
    cached = out / f"{name}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    space, fmt, sampler = SEARCH_ARMS[arm]
    spec = _search_spec(args, arm, space, args.evaluations, sampler)
    job, result, timing = _search(spec)
    members = _select(result.pareto, args.k)
    start = time.perf_counter()
    val = {m["config"]: m["accuracy"] for m in members}
    configs = [job.space.parse(m["config"]) for m in members]
    rows = _export(name, spec, job, configs, fmt, out, val, ft, args.long_term_lr)
    done = {
        "arm": name,
        "evaluations": timing.get("dispatched", 0),
        "timing": {**timing, "export_seconds": round(time.perf_counter() - start, 1)},
        "rows": rows,
    }
    cached.write_text(json.dumps(done, indent=1))
    return done


def _sequential_arm(args: argparse.Namespace, out: Path) -> dict:
    """Architecture search, NetAdapt of its most accurate front member, int8 PTQ."""
    from nas.errors import NASError
    from nas.prune import NetAdaptJob
    from nas.spec import load_spec
    from search_spaces import get_space

    cached = out / f"sequential-r{args.netadapt_ratio:g}-i{args.netadapt_iterations}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    na_base = load_spec(REPO / "runs" / "fashion_mnist_netadapt_mid.yaml")
    # the proposals NetAdapt will score: one per prunable unit per iteration (the largest
    # subnet has the most units, so this is an upper bound)
    pruned = get_space("pruned(ofa_mbv3_small)")
    units = len(pruned.units(pruned.base.largest()))
    proposals = units * args.netadapt_iterations
    arch_evaluations = max(2, args.evaluations - proposals)
    spec = _search_spec(args, "seq-arch", "ofa_mbv3_small", arch_evaluations)
    _, result, timing = _search(spec)
    # its most accurate front member among the slower half (the smallest subnets leave
    # NetAdapt nothing to remove)
    device = next(iter(result.pareto[0]["latency_ms"]))
    slow = float(np.median([m["latency_ms"][device] for m in result.pareto]))
    best = max(
        (m for m in result.pareto if m["latency_ms"][device] >= slow),
        key=lambda m: m["accuracy"],
    )
    iterations = args.netadapt_iterations
    na_spec = dataclasses.replace(
        na_base,
        name=f"apq-bench-seq-netadapt-r{args.netadapt_ratio:g}-i{iterations}-s{args.seed}",
        seed=args.seed,
        netadapt=dataclasses.replace(
            na_base.netadapt,
            start=best["config"],
            budget_ratio=args.netadapt_ratio,
            initial_ratio=(1 - args.netadapt_ratio) / iterations,
            decay=1.0,
            max_iterations=iterations,
            long_term_epochs=args.long_term_epochs,
            long_term_lr=args.long_term_lr,
            workers=args.workers,
        ),
        export=dataclasses.replace(na_base.export, formats=("tflite-int8",)),
    )
    start = time.perf_counter()
    try:
        summary = NetAdaptJob(na_spec, progress=lambda line: print("  " + line, flush=True)).run()
    except NASError as e:  # a budget it cannot reach in these iterations: said, not hidden
        print(f"sequential: NetAdapt stopped: {e}", flush=True)
        failed = {"arm": "sequential", "evaluations": 0, "timing": timing, "rows": []}
        return {**failed, "error": str(e)}
    netadapt_seconds = time.perf_counter() - start
    (f,) = summary["exported"]
    row = {
        "arm": "sequential",
        "config": summary["config"],
        "format": f["format"],
        "path": f["path"],
        "val_top1": summary["val_accuracy"],
        "test_top1": f["test_accuracy"],
        "size_bytes": f["size_bytes"],
        "size_predicted_bytes": f.get("size_predicted_bytes"),
        "predicted_ms": f["latency_predicted_ms"],
        "start": best["config"],
        "reached_latency_ms": summary["latency_ms"],
        "iterations": summary["iterations"],
    }
    done = {
        "arm": "sequential",
        "evaluations": timing.get("dispatched", 0) + units * summary["iterations"],
        "evaluations_note": f"{timing.get('dispatched', 0)} in the architecture search, at most "
        f"{units} NetAdapt proposals per iteration x {summary['iterations']}",
        "timing": {**timing, "netadapt_seconds": round(netadapt_seconds, 1)},
        "rows": [row],
    }
    cached.write_text(json.dumps(done, indent=1))
    return done


def _time_side_by_side(rows: list[dict]) -> None:
    from nas.export import time_round_robin

    timings = time_round_robin([r["path"] for r in rows], threads=1, runs=1000, rounds=20)
    for r, timing in zip(rows, timings, strict=True):
        r["measured_ms"] = timing.mean


def _report(arms: list[dict], out: Path) -> None:
    from nas.search import hypervolume

    rows = [r for a in arms for r in a["rows"]]
    ref_ms = 1.05 * max(r["measured_ms"] for r in rows)
    ref_kb = 1.05 * max(r["size_bytes"] for r in rows) / 1024
    ref_top1 = min(r["test_top1"] for r in rows) - 0.005

    def point(r: dict) -> tuple[float, float, float]:  # every objective minimized, in [0, 1]
        return (
            r["measured_ms"] / ref_ms,
            r["size_bytes"] / 1024 / ref_kb,
            (1 - r["test_top1"]) / (1 - ref_top1),
        )

    print(
        "\n| arm | config | format | test top-1 | search val top-1 | measured ms | predicted ms "
        "| size KiB | predicted KiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pred_ms = "n/a" if r["predicted_ms"] is None else f"{r['predicted_ms']:.3f}"
        pred_kb = (
            "n/a"
            if r["size_predicted_bytes"] is None
            else f"{r['size_predicted_bytes'] / 1024:.0f}"
        )
        val = "n/a" if r["val_top1"] is None else f"{r['val_top1']:.2%}"
        print(
            f"| {r['arm']} | {r['config']} | {r['format']} | {r['test_top1']:.2%} | {val} | "
            f"{r['measured_ms']:.3f} | {pred_ms} | {r['size_bytes'] / 1024:.0f} | {pred_kb} |"
        )
    print(
        f"\nhypervolume over (measured ms, KiB, test top-1), reference ({ref_ms:.3f} ms, "
        f"{ref_kb:.0f} KiB, {ref_top1:.2%}), normalized to that box:"
    )
    hv = {}
    for a in arms:
        hv[a["arm"]] = hypervolume([point(r) for r in a["rows"]], (1.0, 1.0, 1.0))
        t = a["timing"]
        took = ", ".join(f"{k} {v:.0f} s" for k, v in t.items() if k.endswith("seconds"))
        print(
            f"  {a['arm']:10s} HV {hv[a['arm']]:.4f}  ({a['evaluations']} accuracy evaluations; "
            f"{took})"
        )
    joint_arm = next(a["arm"] for a in arms if a["arm"].split("-ft")[0] == "joint")
    joint = next(a for a in arms if a["arm"] == joint_arm)["rows"]
    print(
        f"\nmatched: for each other file, the best {joint_arm} file at or under its latency, size"
    )
    matched = []
    for r in rows:
        if r["arm"] == joint_arm:
            continue
        inside = [
            j
            for j in joint
            if j["measured_ms"] <= r["measured_ms"] and j["size_bytes"] <= r["size_bytes"]
        ]
        if not inside:
            print(f"  {r['arm']} {r['config']}: no joint file at or under it")
            matched.append({**r, "gap_pt": None})
            continue
        j = max(inside, key=lambda j: j["test_top1"])
        gap = (j["test_top1"] - r["test_top1"]) * 100
        matched.append({**r, "gap_pt": gap, "joint": j["config"]})
        print(
            f"  {r['arm']} {r['test_top1']:.2%} {r['measured_ms']:.3f} ms "
            f"{r['size_bytes'] / 1024:.0f} KiB <- joint {j['test_top1']:.2%} "
            f"{j['measured_ms']:.3f} ms {j['size_bytes'] / 1024:.0f} KiB: {gap:+.2f} pt"
        )
    seq = [r for r in rows if r["arm"] == "sequential"]

    def dominated(r: dict) -> bool:
        return any(
            j["measured_ms"] <= r["measured_ms"]
            and j["size_bytes"] <= r["size_bytes"]
            and j["test_top1"] >= r["test_top1"]
            for j in joint
        )

    if seq:
        print(
            f"\njoint dominates sequential: {all(dominated(r) for r in seq)} "
            f"({sum(dominated(r) for r in seq)}/{len(seq)} sequential files dominated)"
        )
    errors_ms = [
        (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"]
        for r in rows
        if r["predicted_ms"] is not None
    ]
    errors_kb = [
        (r["size_predicted_bytes"] - r["size_bytes"]) / r["size_bytes"]
        for r in rows
        if r["size_predicted_bytes"] is not None
    ]
    print(
        f"predicted vs measured: latency {np.mean(np.abs(errors_ms) <= 0.1):.0%} within ±10% "
        f"(mean {np.mean(errors_ms):+.1%}, {len(errors_ms)} files); size max "
        f"|error| {np.max(np.abs(errors_kb)):.2%} ({len(errors_kb)} files)"
    )
    (out / "apq.json").write_text(
        json.dumps({"arms": arms, "hypervolume": hv, "matched": matched}, indent=1)
    )


def main() -> int:
    from nas.paths import runs_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluations", type=int, default=60, help="accuracy evaluations per arm")
    parser.add_argument("--k", type=int, default=4, help="front members exported per search arm")
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--sampler", default="nsga2", help="the architecture-only arms' (and sequential's)"
    )
    parser.add_argument("--netadapt-ratio", type=float, default=0.7)
    parser.add_argument("--netadapt-iterations", type=int, default=2)
    parser.add_argument("--long-term-epochs", type=int, default=1)
    parser.add_argument(
        "--long-term-lr", type=float, default=0.005, help="NetAdapt's final fine-tune's"
    )
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="fine-tune each search arm's exported subnets this many epochs at --long-term-lr "
        "first, as sequential's NetAdapt fine-tunes its final model (its arms and files are "
        "named <arm>-ft<epochs>)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--arms",
        default="joint,joint-nsga2,arch-fp32,arch-int8,sequential",
        help="comma-separated",
    )
    args = parser.parse_args()
    out = runs_root() / "benchmarks" / "apq"
    out.mkdir(parents=True, exist_ok=True)
    arms = []
    for arm in args.arms.split(","):
        print(f"== {arm}", flush=True)
        arms.append(
            _sequential_arm(args, out) if arm == "sequential" else _search_arm(args, arm, out)
        )
    rows = [r for a in arms for r in a["rows"]]
    print(f"timing {len(rows)} files side by side", flush=True)
    _time_side_by_side(rows)
    _report(arms, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
