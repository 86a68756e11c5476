"""MnasNet's reward as a single-objective study against the Pareto search, on OFA/Note10.

    .venv/bin/python benchmarks/mnasnet_reward.py [--trials 1000] [--targets 15,20,30,40] \
        [--objectives mnasnet-soft,mnasnet-hard] [--seed 0]

For every target T: a study of ``--trials`` trials (TPE, one value: ``accuracy x (latency / T)
** w``, ``search.objective``) and its best top-1 among the trials at or under T, against the
best top-1 at or under T on the front of one Pareto study (``runs/ofa_imagenet_note10.yaml`` as
shipped: the ``surrogate`` sampler, ``--trials`` trials). Each figure comes with the trial at
which the study first reached it (how soon a reward study gets there).

Top-1 is OFA's published ImageNet accuracy predictor (not measured); latency is Note10, fp32,
predicted from OFA's per-layer table. Every study is a real ``nas search`` (journal storage under
a temporary ``NAS_RUNS_DIR``, one Ray worker, a repeated subnet answered from the study).
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
from nas.search import SearchJob, open_study
from nas.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def _study(spec, name: str, trials: int, **search) -> tuple[list[tuple[int, float, float]], float]:
    """Run a fresh study; its trials as (number, latency ms, top-1), and its wall seconds."""
    spec = dataclasses.replace(
        spec, name=name, search=dataclasses.replace(spec.search, trials=trials, workers=1, **search)
    )
    shutil.rmtree(spec.run_dir(), ignore_errors=True)
    start = time.perf_counter()
    SearchJob(spec, track=False).run(export=False)
    seconds = time.perf_counter() - start
    rows = []
    for t in open_study(spec).get_trials(deepcopy=False):
        if t.state.name == "COMPLETE":
            latency = next(iter(t.user_attrs["latency_ms"].values()))
            rows.append((t.number, latency, t.user_attrs["accuracy"]))
    return sorted(rows), seconds


def _best_under(rows: list[tuple[int, float, float]], target: float) -> dict:
    """The best top-1 at or under ``target`` ms, and the first trial that reached it."""
    under = [r for r in rows if r[1] <= target]
    if not under:
        return {"top1": None, "latency_ms": None, "first_trial": None}
    top = max(r[2] for r in under)
    first = min(r for r in under if r[2] == top)
    return {"top1": top, "latency_ms": first[1], "first_trial": first[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--targets", default="15,20,30,40")
    parser.add_argument("--objectives", default="mnasnet-soft,mnasnet-hard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spec", default=str(REPO / "runs" / "ofa_imagenet_note10.yaml"))
    args = parser.parse_args()
    os.environ.setdefault("NAS_RUNS_DIR", tempfile.mkdtemp(prefix="nas-mnasnet-"))
    spec = dataclasses.replace(load_spec(args.spec), seed=args.seed)
    targets = [float(t) for t in args.targets.split(",")]

    pareto, pareto_s = _study(spec, "bench_pareto", args.trials)
    # the front of the whole study (every trial), as the search exports it
    front = [
        r for r in pareto if not any(o[1] <= r[1] and o[2] > r[2] for o in pareto if o is not r)
    ]
    rows = []
    for objective in args.objectives.split(","):
        for target in targets:
            trials, seconds = _study(
                spec,
                f"bench_{objective}_{target:g}",
                args.trials,
                objective=objective,
                target_latency_ms=target,
                sampler="tpe",
            )
            row = {
                "objective": objective,
                "target_ms": target,
                "reward_study": _best_under(trials, target),
                "reward_seconds": round(seconds, 1),
                "pareto_front": _best_under(front, target),
                "pareto_all_trials": _best_under(pareto, target),
            }
            rows.append(row)
            r, p = row["reward_study"], row["pareto_front"]
            print(
                f"{objective} T={target:g} ms: reward study best top-1 under T "
                f"{_pct(r['top1'])} (trial {r['first_trial']}, {seconds:.0f} s) vs Pareto "
                f"front {_pct(p['top1'])} (trial {p['first_trial']})",
                flush=True,
            )
    print(json.dumps({"trials": args.trials, "pareto_seconds": round(pareto_s, 1), "rows": rows}))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


if __name__ == "__main__":
    main()
