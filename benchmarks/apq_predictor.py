"""APQ's quantization-aware accuracy predictor by transfer, measured on real scores of the shipped
Fashion-MNIST supernet (``apq(ofa_mbv3_small)``):

- source: an fp32 predictor (``pruned(ofa_mbv3_small)``'s encoding) fitted on fp32 samples
  (every layer fp32, scored as the search scores them);
- transferred: the source widened to the joint encoding (the precision one-hots appended, zero
  weights) and fine-tuned on N quantized samples (random per-layer precisions, scored by the
  quantization simulation the search uses);
- scratch: the same MLP trained from scratch on the same N quantized samples.

Both are scored on held-out quantized samples (the first ``--held-out`` of the quantized stream,
never trained on): RMSE (top-1 points) and Kendall tau, at N = 100, 300, 1000 (those the samples
collected so far allow, and all collected so far when that is short of the next).

Scoring a sample takes seconds, so collection is resumable: samples are appended to
``<runs>/benchmarks/apq_predictor/samples.jsonl`` as they are scored, and a re-run continues the
same seeded streams. ``--collect-only`` scores and stops (at ``--fp32`` fp32 and
``--held-out + 1000`` quantized samples); ``--report-only`` fits and prints from what is there.

    .venv/bin/python benchmarks/apq_predictor.py [--fp32 1000] [--held-out 200] \
        [--val-images 2000] [--bn-images 500] [--collect-only | --report-only]
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

SIZES = (100, 300, 1000)


def _streams(space, n_fp32: int, n_quant: int):
    """The two seeded config streams: fp32 (every layer fp32) and quantized (random precisions);
    the same on every run, so a resumed collection continues them."""
    fp32_rng, quant_rng = np.random.default_rng(1), np.random.default_rng(2)
    fp32 = [space.parse(str(space.base.sample(fp32_rng))) for _ in range(n_fp32)]
    quant = [space.sample(quant_rng) for _ in range(n_quant)]
    return fp32, quant


def _load(path: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"fp32": [], "quantized": []}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["kind"]].append(row)
    return rows


def collect(args, space, evaluator, path: Path) -> dict[str, list[dict]]:
    """Score the streams' next configs (fp32 and quantized alternately) until both are full."""
    fp32, quant = _streams(space, args.fp32, args.held_out + max(SIZES))
    rows = _load(path)
    todo = {"fp32": fp32, "quantized": quant}
    path.parent.mkdir(parents=True, exist_ok=True)
    start, scored = time.perf_counter(), 0
    with path.open("a") as f:
        while any(len(rows[k]) < len(todo[k]) for k in todo):
            for kind, configs in todo.items():
                i = len(rows[kind])
                if i >= len(configs):
                    continue
                config = configs[i]
                accuracy = evaluator.evaluate(config, "val", args.val_images)["accuracy"]
                row = {"kind": kind, "i": i, "config": str(config), "accuracy": accuracy}
                rows[kind].append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
                scored += 1
            if scored and scored % 20 < 2:
                rate = (time.perf_counter() - start) / scored
                print(
                    f"fp32 {len(rows['fp32'])}/{len(fp32)}, quantized "
                    f"{len(rows['quantized'])}/{len(quant)} ({rate:.1f} s per sample)",
                    flush=True,
                )
    return rows


def report(args, space, rows: dict[str, list[dict]]) -> None:
    from nas.search import fit_predictor, score_predictor

    fp32 = rows["fp32"]
    quant = rows["quantized"]
    if len(fp32) < 50 or len(quant) < args.held_out + min(SIZES):
        print(
            f"too few samples for a report: fp32 {len(fp32)} (need 50), quantized {len(quant)} "
            f"(need {args.held_out + min(SIZES)})"
        )
        return

    def xy(part):
        return [space.parse(r["config"]) for r in part], [r["accuracy"] for r in part]

    src_configs, src_acc = xy(fp32)
    source = fit_predictor(
        space.base, [c.base for c in src_configs], src_acc, epochs=args.epochs, seed=0
    )
    held_configs, held_acc = xy(quant[: args.held_out])
    rmse0, tau0 = score_predictor(source, space.base, [c.base for c in held_configs], held_acc)
    spread = float(np.std(held_acc)) * 100
    print(
        f"\nsource: fp32 predictor on {len(fp32)} fp32 samples; held-out: {len(held_acc)} "
        f"quantized samples (top-1 std {spread:.2f} pt); the source alone on them (precisions "
        f"unseen): RMSE {rmse0 * 100:.2f} pt, tau {tau0:.3f}"
    )
    print("\n| quantized samples | transferred RMSE (pt) | tau | scratch RMSE (pt) | tau |")
    print("|---|---|---|---|---|")
    out = []
    collected = len(quant) - args.held_out
    sizes = [n for n in SIZES if n <= collected]
    if collected < max(SIZES) and collected > sizes[-1]:
        sizes.append(collected)  # all collected so far, short of the next size
    for n in sizes:
        configs, acc = xy(quant[args.held_out : args.held_out + n])
        fine = fit_predictor(space, configs, acc, init=source, epochs=args.epochs, lr=3e-4, seed=0)
        scratch = fit_predictor(space, configs, acc, epochs=args.epochs, seed=0)
        rt, tt = score_predictor(fine, space, held_configs, held_acc)
        rs, ts = score_predictor(scratch, space, held_configs, held_acc)
        print(f"| {n} | {rt * 100:.2f} | {tt:.3f} | {rs * 100:.2f} | {ts:.3f} |")
        out.append({"n": n, "transferred": [rt, tt], "scratch": [rs, ts]})
    for n in SIZES:
        if n > collected:
            print(f"| {n} | (only {collected} collected) | | | |")
    (args.out / "report.json").write_text(json.dumps(out, indent=1))


def main() -> int:
    from nas.jobs import subnet_evaluator
    from nas.paths import runs_root
    from nas.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fp32", type=int, default=1000, help="fp32 samples for the source")
    parser.add_argument("--held-out", type=int, default=200)
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--bn-images", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--spec", default="runs/fashion_mnist_host.yaml")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--collect-only", action="store_true")
    mode.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.out = runs_root() / "benchmarks" / "apq_predictor"
    path = args.out / "samples.jsonl"

    import torch

    torch.set_num_threads(1)
    base = load_spec(args.spec)
    spec = dataclasses.replace(
        base,
        space="apq(ofa_mbv3_small)",
        supernet=dataclasses.replace(base.supernet, bn_calibration_images=args.bn_images),
    )
    if args.report_only:
        from nas.jobs import load_job

        _, space = load_job(spec)
        rows = _load(path)
    else:
        space, evaluator = subnet_evaluator(spec)
        rows = collect(args, space, evaluator, path)
    if not args.collect_only:
        report(args, space, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
