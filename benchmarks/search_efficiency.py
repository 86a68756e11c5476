"""Search efficiency on ofa_mbv3 (OFA's predictor, Note10 tables): `nas search` after 1,000
predictor queries vs random search with the same budget vs EfficientNet's compound scaling of the
smallest subnet (the ``compound`` sampler's grid at phi = 1, then its best point's family; as many
queries as configs it proposes) vs OFA's own EvolutionFinder (default budget, one run per latency
constraint, 10 constraints spanning 15-60 ms, results pooled). nas is told the same ten
constraints (``export.budgets_ms``; ``--budgets none``: not told, the sampler's default budgets).

    .venv/bin/python benchmarks/search_efficiency.py [--queries 1000] [--seed 0] \
        [--evolution-seeds 5]

Hypervolume in the (latency, top-1) plane over the window 15-60 ms with reference point
(60 ms, 0.70): points outside the window or below 0.70 add nothing. Per budget: the best top-1
each method found within each of EvolutionFinder's ten latency constraints (15, 20, ..., 60 ms),
and each method's gap to EvolutionFinder's (points; >= 0: as good or better). Latency is Note10,
predicted from OFA's published per-layer table (fp32); top-1 is OFA's predictor (ImageNet), not
measured. EvolutionFinder is itself random: ``--evolution-seeds K`` runs it K times and prints
its per-budget spread and each method's gap to its mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import nas  # noqa: F401
from nas.latency import build_latency
from nas.search import SearchJob, hypervolume_2d, load_ofa_predictor, pareto_front
from nas.spec import load_spec
from search_spaces import MBV3Config, get_space

REPO = Path(__file__).resolve().parents[1]

WINDOW = (15.0, 60.0)
REF_ACC = 0.70
BUDGETS = [float(b) for b in np.linspace(*WINDOW, 10)]  # EvolutionFinder's constraints


def best_within(points, budget: float) -> float:
    """The best top-1 among ``points`` (latency, top-1) within ``budget`` ms (nan: none)."""
    inside = [a for lat, a in points if lat <= budget]
    return max(inside) if inside else float("nan")


def per_budget(points) -> list[float]:
    return [best_within(points, b) for b in BUDGETS]


def hv(points):
    return hypervolume_2d(points, WINDOW[1], REF_ACC, min_latency=WINDOW[0])


def to_config(sample: dict) -> MBV3Config:
    ks, es, ds = [], [], sample["d"]
    for s, d in enumerate(ds):
        ks += sample["ks"][s * 4 : s * 4 + d]
        es += sample["e"][s * 4 : s * 4 + d]
    return MBV3Config(sample["image_size"], tuple(ds), tuple(ks), tuple(es))


def run_nas(spec_path: Path, queries: int, seed: int, sampler: str, budgets: bool) -> dict:
    """A ``nas search`` study; ``budgets``: told EvolutionFinder's ten constraints
    (``export.budgets_ms``), as EvolutionFinder is, else none (the sampler's default)."""
    spec = load_spec(spec_path)
    # a fresh study each run, in the default journal storage (runs/bench_search_<seed>/)
    spec = dataclasses.replace(
        spec,
        name=f"bench_search_{sampler}_{seed}_{'ef' if budgets else 'default'}",
        seed=seed,
        search=dataclasses.replace(spec.search, trials=queries, workers=1, sampler=sampler),
        export=dataclasses.replace(spec.export, budgets_ms=tuple(BUDGETS) if budgets else ()),
    )
    shutil.rmtree(spec.run_dir(), ignore_errors=True)
    start = time.perf_counter()
    # a repeated subnet is answered from the study without a predictor query
    result = SearchJob(spec, track=False).run()
    points = [(r["latency_ms"]["note10"], r["accuracy"]) for r in result.pareto]
    told = "EF's budgets" if budgets else "no budgets"
    return {
        "method": f"nas search ({spec.search.sampler}, {told})",
        "queries": result.timing["dispatched"],
        "trials": result.n_complete,
        "hypervolume": hv(points),
        "per_budget": per_budget(points),
        "seconds": time.perf_counter() - start,
    }


def run_random(space, latency, predictor, queries: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(queries)]
    with torch.no_grad():
        accs = (
            predictor(torch.from_numpy(np.stack([space.encode(c) for c in configs])))
            .squeeze(1)
            .tolist()
        )
    points = [(latency.predict(c).ms, a) for c, a in zip(configs, accs, strict=True)]
    front = [points[i] for i in pareto_front(points)]
    return {
        "method": "random search",
        "queries": queries,
        "hypervolume": hv(front),
        "per_budget": per_budget(front),
    }


def run_compound(space, latency, predictor) -> dict:
    """EfficientNet's compound scaling from the smallest subnet, as the ``compound`` sampler
    runs it (its proposer, driven here until it has nothing more to propose)."""
    from nas.search._compound import CompoundProposer

    proposer = CompoundProposer(space, lambda c: latency.predict(c).ms, WINDOW[1])
    evaluated: list = []
    while batch := proposer.propose(evaluated, 100):
        with torch.no_grad():
            x = torch.from_numpy(np.stack([space.encode(c) for c in batch]))
            evaluated += list(zip(batch, predictor(x).squeeze(1).tolist(), strict=True))
    points = [(latency.predict(c).ms, a) for c, a in evaluated]
    front = [points[i] for i in pareto_front(points)]
    return {
        "method": f"compound scaling (grid {len(proposer.grid)} multipliers, best {proposer.best})",
        "queries": len(evaluated),
        "hypervolume": hv(front),
        "per_budget": per_budget(front),
        "points": sorted(points),
    }


def run_evolution(space, latency, predictor, seed: int) -> dict:
    from ofa.nas.accuracy_predictor.arch_encoder import MobileNetArchEncoder
    from ofa.nas.search_algorithm import EvolutionFinder

    random.seed(seed)  # EvolutionFinder draws from the global generators
    np.random.seed(seed)
    counter = {"queries": 0}

    class Accuracy:
        arch_encoder = MobileNetArchEncoder(
            image_size_list=list(space.resolutions),
            ks_list=[3, 5, 7],
            expand_list=[3, 4, 6],
            depth_list=[2, 3, 4],
            n_stage=5,
        )

        @torch.no_grad()
        def predict_acc(self, samples):
            counter["queries"] += len(samples)
            x = torch.from_numpy(np.stack([space.encode(to_config(s)) for s in samples]))
            return predictor(x).squeeze(1)

    class Efficiency:
        def get_efficiency(self, sample):
            return latency.predict(to_config(sample)).ms

    finder = EvolutionFinder(
        Efficiency(), Accuracy()
    )  # default budget: population 100, 500 generations
    best = []
    start = time.perf_counter()
    for constraint in BUDGETS:
        _, info = finder.run_evolution_search(constraint, verbose=False)
        best.append((info[2], info[0]))
    front = [best[i] for i in pareto_front(best)]
    return {
        "method": "OFA EvolutionFinder (10 constraints, pooled)",
        "queries": counter["queries"],
        "hypervolume": hv(front),
        "per_budget": per_budget(best),
        "seconds": time.perf_counter() - start,
    }


def _print_gaps(rows: list[dict], reference: np.ndarray) -> None:
    """Each method's best top-1 minus ``reference`` (top-1 %, one per budget), in points."""
    for row in rows:
        gaps = 100 * np.array(row["per_budget"]) - reference
        print(
            f"  {row['method'][:46]:<46}"
            + "".join(f"{g:>+7.2f}" for g in gaps)
            + f"   mean {np.nanmean(gaps):+.2f}, worst {np.nanmin(gaps):+.2f}"
        )


def _print_evolution_spread(runs: list[dict], rows: list[dict]) -> None:
    """EvolutionFinder's per-budget best over several seeds (its own run-to-run spread), and each
    nas method's gap to the seeds' mean."""
    table = 100 * np.array([r["per_budget"] for r in runs])
    print(f"EvolutionFinder over {len(runs)} seeds (best top-1 % per budget):")
    for name, row in (("min", table.min(0)), ("mean", table.mean(0)), ("max", table.max(0))):
        print(f"  {name:<46}" + "".join(f"{a:>7.2f}" for a in row))
    print("gap to EvolutionFinder's mean over its seeds (points):")
    _print_gaps(rows, table.mean(0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spec", default=str(REPO / "runs" / "ofa_imagenet_note10.yaml"))
    parser.add_argument("--skip-evolution", action="store_true")
    parser.add_argument(
        "--evolution-seeds",
        type=int,
        default=1,
        help="run EvolutionFinder with this many seeds (seed, seed+1, ...) and print the spread "
        "of its per-budget best; the first seed's run is the reference",
    )
    parser.add_argument(
        "--samplers", default="surrogate,nsga2", help="nas samplers to run (one study each)"
    )
    parser.add_argument(
        "--budgets",
        choices=("ef", "none", "both"),
        default="ef",
        help="what nas is told of the budgets: EvolutionFinder's ten constraints "
        "(export.budgets_ms, as EvolutionFinder is told them), none, or both (one study each)",
    )
    args = parser.parse_args()
    os.environ.setdefault("NAS_RUNS_DIR", tempfile.mkdtemp(prefix="nas-efficiency-"))
    torch.set_num_threads(1)
    spec = load_spec(args.spec)
    space = get_space("ofa_mbv3")
    latency = build_latency(spec.resolve_path(spec.devices[0].lut), space)
    from nas.search._evaluators import predictor_path

    predictor = load_ofa_predictor(predictor_path(spec))
    told = {"ef": [True], "none": [False], "both": [True, False]}[args.budgets]
    rows = [
        run_nas(Path(args.spec), args.queries, args.seed, s, b)
        for s in args.samplers.split(",")
        for b in told
    ]
    rows.append(run_random(space, latency, predictor, args.queries, args.seed))
    rows.append(run_compound(space, latency, predictor))
    if not args.skip_evolution:
        runs = [
            run_evolution(space, latency, predictor, args.seed + i)
            for i in range(max(args.evolution_seeds, 1))
        ]
        rows.append(runs[0])
    ref = rows[-1] if not args.skip_evolution else None
    for row in rows:
        share = (
            f", {row['hypervolume'] / ref['hypervolume']:.1%} of EvolutionFinder's" if ref else ""
        )
        print(
            f"{row['method']}: hypervolume {row['hypervolume']:.4f} with {row['queries']} "
            f"predictor queries{share}"
        )
    print("best top-1 (%) within each latency budget (ms, Note10 predicted):")
    print(f"  {'method':<46}" + "".join(f"{b:>7.0f}" for b in BUDGETS))
    for row in rows:
        print(
            f"  {row['method'][:46]:<46}" + "".join(f"{100 * a:>7.2f}" for a in row["per_budget"])
        )
    if ref:
        print("gap to EvolutionFinder (points; >= 0: as good or better):")
        _print_gaps(rows[:-1], 100 * np.array(ref["per_budget"]))
        if len(runs) > 1:
            _print_evolution_spread(runs, rows[:-1])
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
