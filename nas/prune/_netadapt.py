"""NetAdapt (Yang et al., ECCV 2018): latency-driven filter pruning of one trained subnet.

Each iteration must remove ``ΔR`` ms of predicted latency (the first device's table). For every
prunable layer the driver finds the largest width whose table latency is at least ``ΔR`` below
the current model's (entries for new widths measured on demand on a host table, never guessed);
Ray workers prune those proposals (the filters kept are the most important by
``netadapt.criterion``: L2 norm, APoZ or first-order Taylor, scored once per iteration on the
current model), fine-tune each briefly and score it on the validation split; the most accurate
one is kept. When the budget is met the kept model is
fine-tuned long, exported, verified and registered like a Pareto model.

State after every iteration (``runs/<job>/netadapt/``): ``state.json`` and the kept model's
checkpoint, so an interrupted run resumes from its last finished iteration.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nas.errors import NASError, SpecError
from nas.job import Job
from nas.paths import atomic_write, cache_root
from nas.spec import RunSpec
from nas.tracking import JobRun
from search_spaces import PrunedConfig, PrunedSpace, pruned

__all__ = ["NetAdaptJob", "PruneWorker", "load_pruned", "save_pruned"]

logger = logging.getLogger(__name__)


def save_pruned(path: Path, config: PrunedConfig, model: torch.nn.Module) -> None:
    from nas.supernet import atomic_save

    atomic_save({"config": str(config), "state_dict": model.state_dict()}, path)


def load_pruned(path: Path, space: PrunedSpace) -> tuple[PrunedConfig, torch.nn.Module]:
    """A checkpoint written by :func:`save_pruned`: the structure is rebuilt from the config."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    config = space.parse(blob["config"])
    model = space.prune_to(space.base.build(config.base), config)
    model.load_state_dict(blob["state_dict"])
    return config, model.eval()


class PruneWorker:
    """Ray actor: holds the dataset (the driver's, sent through Ray; read from the spec's
    files when not given); prunes, briefly fine-tunes and scores proposals."""

    def __init__(self, spec_dict: dict[str, Any], threads: int, dataset: Any = None) -> None:
        import nas  # noqa: F401  (torchvision/ofa import trap inside the worker process)
        from nas.jobs import load_job, space_for
        from nas.spec import spec_from_dict

        torch.set_num_threads(threads)
        self.error: str | None = None
        try:
            self.spec = spec_from_dict(spec_dict)
            if dataset is None:
                self.dataset, base = load_job(self.spec)
            else:  # the driver's, through Ray's object store: no file of its machine read here
                self.dataset, base = dataset, space_for(self.spec, dataset)
            self.space = pruned(base, self.spec.netadapt.channel_step)
        except NASError as e:
            self.error = str(e)
            return
        self.val = _val_split(self.spec, self.dataset)

    def ping(self) -> str | None:
        return self.error

    def short_term(
        self,
        model: torch.nn.Module,
        unit: str,
        width: int,
        resolution: int,
        seed: int,
        scores: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        from nas.supernet import train_steps

        start = time.perf_counter()
        na = self.spec.netadapt
        model = copy.deepcopy(model)
        self.space.prune_unit(model, unit, width, scores)
        train_steps(
            model,
            self.dataset,
            resolution,
            na.short_term_steps,
            lr=na.short_term_lr,
            batch_size=na.short_term_batch,
            seed=seed,
        )
        accuracy = _val_accuracy(model, self.dataset, self.val, resolution)
        return {"accuracy": accuracy, "model": model, "seconds": time.perf_counter() - start}


def _val_split(spec: RunSpec, dataset):
    """The validation images that score the start, every proposal and the final model."""
    return dataset.val.subset(spec.netadapt.val_images, seed=spec.seed)


def _val_accuracy(model, dataset, split, resolution: int) -> float:
    from nas.data import batches
    from nas.supernet import top1

    return top1(model, batches(split, 500, dataset.preprocessing, resolution=resolution))[0]


@dataclasses.dataclass(frozen=True)
class Proposal:
    index: int
    unit: str
    width: int
    config: PrunedConfig
    latency_ms: float


class NetAdaptJob(Job):
    """One ``nas netadapt`` job (see the module docstring). State (``state_dict()``): the
    ``state.json`` row of the last finished iteration, with its MLflow run id; the kept model
    is its checkpoint."""

    kind = "netadapt"

    def __init__(
        self, spec: RunSpec, *, track: bool = True, progress: Callable[[str], None] = logger.info
    ) -> None:
        from nas.jobs import load_job
        from nas.latency import build_latency

        super().__init__(spec, track=track)
        if spec.netadapt is None:
            raise SpecError(f"{spec.source or spec.name}: nas netadapt needs a `netadapt:` section")
        if not spec.devices:
            raise SpecError("devices: nas netadapt prunes for the first device; none is given")
        self.na, self.progress = spec.netadapt, progress
        self.dataset, space = load_job(spec)
        self.space = pruned(space, self.na.channel_step)
        self.device_spec = spec.devices[0]
        self.dtype = self.device_spec.dtype
        self.latency = build_latency(
            spec.resolve_path(self.device_spec.lut), self.space, dtype=self.dtype
        )
        self.device_name = self.latency.name
        self.work = spec.run_dir() / "netadapt"
        self.start = self.space.unpruned(space.resolve(self.na.start))
        self.state: dict[str, Any] = {}
        self.model: torch.nn.Module | None = None

    # ---- latency -------------------------------------------------------------------------
    def price(self, config: PrunedConfig) -> float:
        """Predicted latency (ms); missing entries are measured first when allowed."""
        return self.price_all([config])[0]

    def price_all(self, configs: list[PrunedConfig]) -> list[float]:
        """Predicted latencies (ms) of ``configs``. When allowed, the entries they miss are
        measured first, all of them in one timing (one round-robin beside the table's reference
        layers per resolution), not one timing per config."""
        if self.na.measure_missing:
            from nas.latency import fill_missing

            layers: dict[int, list] = {}
            for config in configs:
                layers.setdefault(self.space.input_shape(config)[1], []).extend(
                    self.space.layers(config)
                )
            for resolution, group in layers.items():
                n = fill_missing(
                    self.latency,
                    group,
                    resolution,
                    dtype=self.dtype,
                    cache_dir=cache_root() / "layers",
                )
                if n:
                    logger.info("measured %d new table entries on this host", n)
        return [self.latency.predict(config).ms for config in configs]

    def measure(self, configs: list[PrunedConfig]) -> list[dict[str, Any]]:
        """Measured host LiteRT latency of each of ``configs`` at the table's precision and
        threads, timed together in one round-robin and again while the machine is busy
        (``nas.export.timed_quietly``; with the table's reference layers when it is this
        host's): ``{"measured_ms", "measured_std_ms", "measured_busy"}`` each, ``busy`` saying
        why the timing is flagged (None: the machine was quiet)."""
        from nas.export import time_round_robin, timed_quietly
        from nas.latency import reference_for, subnet_tflite

        threads = self.latency.device.threads or 1
        files = [subnet_tflite(self.space, c, self.dtype) for c in configs]
        timings, conditions = timed_quietly(
            lambda: time_round_robin(files, threads=threads, runs=200),
            reference=reference_for(self.latency),
            what=f"NetAdapt's {len(files)} model(s)",
        )
        return [
            {"measured_ms": t.mean, "measured_std_ms": t.std, "measured_busy": conditions.busy}
            for t in timings
        ]

    def proposals(self, current: PrunedConfig, latency: float, reduction: float) -> list[Proposal]:
        """Per unit, the fewest filters to remove for the table latency to drop by ``reduction``
        (none for a unit that cannot drop that much even at its smallest width).

        The width is found by bisection over the unit's smaller widths, on the premise that
        fewer filters never cost more: about log2(n) widths priced instead of up to n. The units
        are bisected in step: each step prices one width of every unit still open together
        (``price_all``: entries missing from the table are measured in one timing per step, not
        one per width). Where a table breaks the premise (timing noise between neighbouring
        widths), the width found still removes ``reduction``; a slightly wider one might have
        too."""
        units = self.space.units(current.base)
        widths = {i: self.space.smaller_widths(current, i) for i in range(len(units))}
        widths = {i: w for i, w in widths.items() if w}  # widest first
        found: dict[int, tuple[PrunedConfig, float]] = {}
        bounds: dict[int, list[int]] = {}  # widths[i][hi] removes enough; the widest in [lo, hi]
        smallest = self._priced_all(current, {i: w[-1] for i, w in widths.items()})
        for i, (candidate, ms) in smallest.items():
            if latency - ms >= reduction:
                found[i], bounds[i] = (candidate, ms), [0, len(widths[i]) - 1]
        while step := {i: (lo + hi) // 2 for i, (lo, hi) in bounds.items() if lo < hi}:
            priced = self._priced_all(current, {i: widths[i][mid] for i, mid in step.items()})
            for i, mid in step.items():
                if latency - priced[i][1] >= reduction:
                    bounds[i][1], found[i] = mid, priced[i]
                else:
                    bounds[i][0] = mid + 1
        return [
            Proposal(i, units[i].name, widths[i][bounds[i][1]], *found[i]) for i in sorted(found)
        ]

    def _priced_all(
        self, current: PrunedConfig, width_of: dict[int, int]
    ) -> dict[int, tuple[PrunedConfig, float]]:
        """``current`` with unit ``i`` at ``width_of[i]``, and its price, for each ``i``."""
        candidates = {i: self.space.with_width(current, i, w) for i, w in width_of.items()}
        prices = self.price_all(list(candidates.values()))
        return {i: (c, ms) for (i, c), ms in zip(candidates.items(), prices, strict=True)}

    def target_ms(self, start_ms: float) -> float:
        na = self.na
        return na.budget_ms if na.budget_ms is not None else na.budget_ratio * start_ms

    # ---- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state
        self.tracking_run_id = state["run_id"]
        if self.model is None:  # a fresh start holds its model already
            _, self.model = load_pruned(self.work / state["checkpoint"], self.space)

    def _state_path(self) -> Path:
        return self.work / "state.json"

    def _save_state(self) -> None:
        atomic_write(self._state_path(), json.dumps(self.state, indent=1))

    def load_checkpoint(self) -> dict[str, Any]:
        """The last finished iteration's state, or a fresh start's (the start model scored and
        saved as iteration 0).

        Raises:
            NASError: the stored state is another start or device's.
            SpecError: the budget is not below the start's latency.
        """
        self.work.mkdir(parents=True, exist_ok=True)
        path = self._state_path()
        if path.is_file():
            state = json.loads(path.read_text())
            if state["start"] != str(self.start) or state["device"] != self.device_name:
                raise NASError(
                    f"{path} is a NetAdapt run from {state['start']} for {state['device']}; this "
                    f"spec starts from {self.start} for {self.device_name}: delete {self.work} "
                    "or rename the job"
                )
            criterion = state.get("criterion", "l2")  # runs from before the criterion field
            if criterion != self.na.criterion:
                raise NASError(
                    f"{path} is a NetAdapt run with netadapt.criterion = {criterion}; this spec "
                    f"has {self.na.criterion}: delete {self.work} or rename the job"
                )
            self.progress(
                f"resuming after iteration {state['iteration']}: {state['config']} "
                f"({state['latency_ms']:.3f} ms predicted)"
            )
        else:
            state = self._start_state()
        self.target = self.target_ms(state["start_latency_ms"])
        if self.target >= state["start_latency_ms"]:
            raise SpecError(
                f"netadapt.budget_ms = {self.target:g} is not below the start's predicted latency "
                f"({state['start_latency_ms']:.3f} ms on {self.device_name}): nothing to prune"
            )
        return state

    def _distillation(self) -> Any:
        """``netadapt.distill``'s teacher (a subnet of the spec's supernet, or a file), or None."""
        if self.na.distill is None:
            return None
        from nas.jobs import distillation, subnet_evaluator

        _, evaluator = subnet_evaluator(self.spec, dataset=self.dataset)
        return distillation(self.spec, "netadapt", evaluator)

    def _start_state(self) -> dict[str, Any]:
        from nas.jobs import subnet_evaluator

        _, evaluator = subnet_evaluator(self.spec, dataset=self.dataset)
        self.model = evaluator.subnet(self.start.base)
        start_ms = self.price(self.start)
        val = _val_accuracy(
            self.model,
            self.dataset,
            _val_split(self.spec, self.dataset),
            self.space.input_shape(self.start)[1],
        )
        save_pruned(self.work / "iter_000.pt", self.start, self.model)
        self.state = {
            "start": str(self.start),
            "device": self.device_name,
            "dtype": self.dtype,
            "criterion": self.na.criterion,
            "start_latency_ms": start_ms,
            **{f"start_{k}": v for k, v in self.measure([self.start])[0].items()},
            "start_val_accuracy": val,
            "iteration": 0,
            "config": str(self.start),
            "latency_ms": start_ms,
            "val_accuracy": val,
            "checkpoint": "iter_000.pt",
            "short_term_steps_total": 0,
            "history": [],
            "run_id": None,
        }
        self._save_state()
        return self.state

    # ---- the job -------------------------------------------------------------------------
    def run_name(self) -> str:
        return f"netadapt-{self.device_name}"

    def run_tags(self) -> dict[str, str]:
        return {"job": "netadapt", "device": self.device_name, "start": str(self.start)}

    def _setup_tracking(self, tracker: JobRun) -> None:
        if self.state["run_id"] is not None:
            return
        self.state["run_id"] = tracker.run_id
        self._save_state()
        tracker.log_params(
            {
                **{f"netadapt.{k}": v for k, v in dataclasses.asdict(self.na).items()},
                "device": self.device_name,
                "lut": self.device_spec.lut,
                "target_latency_ms": round(self.target, 4),
            }
        )
        tracker.log_metrics(
            {
                "latency_predicted_ms": self.state["start_latency_ms"],
                "latency_measured_ms": self.state["start_measured_ms"],
                "val_accuracy": self.state["start_val_accuracy"],
            },
            step=0,
        )

    def _run(self) -> dict[str, Any]:
        self._iterate()
        return self._finish()

    def _iterate(self) -> None:
        """Iterations until the budget (or ``max_iterations``); the workers start with the first
        one that needs them."""
        na, state, pool = self.na, self.state, None
        while state["latency_ms"] > self.target + 1e-9 and state["iteration"] < na.max_iterations:
            k = state["iteration"]
            current = self.space.parse(state["config"])
            start_ms = state["start_latency_ms"]
            reduction = min(
                na.initial_ratio * na.decay**k * start_ms, state["latency_ms"] - self.target
            )
            began = time.perf_counter()
            proposals = self.proposals(current, state["latency_ms"], reduction)
            if not proposals:
                raise NASError(
                    f"iteration {k + 1}: no single layer of {current} can remove "
                    f"{reduction:.3f} ms (now {state['latency_ms']:.3f} ms, budget "
                    f"{self.target:.3f} ms); lower netadapt.initial_ratio or netadapt.decay, or "
                    "raise the budget"
                )
            self.progress(
                f"iteration {k + 1}: {state['latency_ms']:.3f} -> <= "
                f"{state['latency_ms'] - reduction:.3f} ms, {len(proposals)} proposals"
            )
            scores = self.filter_scores(current, [p.unit for p in proposals], k)
            pool = pool or self._pool()
            results = self._short_term(pool, proposals, k, scores)
            self._keep(k, reduction, results, began)
        if pool is not None:
            pool.close()
        if state["latency_ms"] > self.target + 1e-9:
            logger.warning(
                "stopped after netadapt.max_iterations = %d at %.3f ms (budget %.3f ms)",
                na.max_iterations,
                state["latency_ms"],
                self.target,
            )

    def _pool(self) -> Any:
        import ray

        from nas.cluster import spec_to_dict

        na = self.na
        self.start_ray(na.workers * na.threads_per_worker)
        return self.actor_pool(
            ray.remote(num_cpus=na.threads_per_worker)(PruneWorker),
            (spec_to_dict(self.spec), na.threads_per_worker, ray.put(self.dataset)),
            size=na.workers,
            max_failures=max(10, 2 * na.workers),
            what="a NetAdapt worker",
        )

    def filter_scores(
        self, current: PrunedConfig, units: list[str], k: int
    ) -> dict[str, torch.Tensor]:
        """Importance of every filter of ``units`` in the current model by
        ``netadapt.criterion``, on ``criterion_images`` training images drawn for iteration
        ``k`` (none for ``l2``)."""
        from nas.data import batches
        from nas.prune._criteria import make_criterion

        criterion = make_criterion(self.na.criterion)
        split = self.dataset.train.subset(self.na.criterion_images, seed=self.spec.seed + k)
        resolution = self.space.input_shape(current)[1]
        return criterion.scores(
            self.space,
            self.model,
            units,
            lambda: batches(split, 128, self.dataset.preprocessing, resolution=resolution),
        )

    def _short_term(
        self, pool: Any, proposals: list[Proposal], k: int, scores: dict[str, torch.Tensor]
    ) -> list[tuple[Proposal, dict[str, Any]]]:
        """Every proposal pruned, briefly fine-tuned and scored on the pool; one that raised is
        dropped with a warning (a worker that died is replaced and its proposal run again)."""
        import ray

        model_ref = ray.put(self.model)
        seed = self.spec.seed * 1000 + k
        for p in proposals:
            pool.submit(
                p,
                "short_term",
                model_ref,
                p.unit,
                p.width,
                self.space.input_shape(p.config)[1],
                seed,
                scores[p.unit],
            )
        results, errors = [], []
        for done in pool.as_completed():
            p = done.item
            if not done.ok:
                errors.append(f"{p.unit} -> {p.width}: {done.error}")
                logger.warning("iteration %d: proposal %s", k + 1, errors[-1])
                continue
            results.append((p, done.value))
            self.progress(
                f"  {p.unit} -> {p.width}: {p.latency_ms:.3f} ms, val "
                f"{done.value['accuracy']:.4f} ({len(results)}/{len(proposals)})"
            )
        if not results:
            raise NASError(
                f"iteration {k + 1}: every proposal failed ({errors[-1]}); run the same command "
                f"again to resume after iteration {k}"
            )
        return results

    def _keep(
        self,
        k: int,
        reduction: float,
        results: list[tuple[Proposal, dict[str, Any]]],
        began: float,
    ) -> None:
        """Keep the most accurate proposal: checkpoint, state row, MLflow."""
        state = self.state
        best, out = max(results, key=lambda r: (r[1]["accuracy"], -r[0].latency_ms))
        # measured once every worker is idle: the host is quiet
        timed = self.measure([p.config for p, _ in results])
        measured = {str(p.config): m for (p, _), m in zip(results, timed, strict=True)}
        self.model = out["model"].eval()
        name = f"iter_{k + 1:03d}.pt"
        save_pruned(self.work / name, best.config, self.model)
        row = {
            "iteration": k + 1,
            "reduction_ms": reduction,
            "kept": best.unit,
            "width": best.width,
            "config": str(best.config),
            "latency_ms": best.latency_ms,
            **measured[str(best.config)],
            "val_accuracy": out["accuracy"],
            "seconds": time.perf_counter() - began,
            "proposals": [
                {
                    "unit": p.unit,
                    "width": p.width,
                    "latency_ms": p.latency_ms,
                    **measured[str(p.config)],
                    "val_accuracy": o["accuracy"],
                }
                for p, o in results
            ],
        }
        if self.tracker is not None:
            self._log_iteration(row, results, best)
        state.update(
            iteration=k + 1,
            config=str(best.config),
            latency_ms=best.latency_ms,
            val_accuracy=out["accuracy"],
            checkpoint=name,
            short_term_steps_total=state["short_term_steps_total"] + self.na.short_term_steps,
        )
        state["history"].append(row)
        for stale in ("finetuned", "exported", "final_val_accuracy"):  # a longer re-run
            state.pop(stale, None)
        self._save_state()
        (self.work / f"iter_{k:03d}.pt").unlink(missing_ok=True)  # keep the last one only
        self.progress(
            f"iteration {k + 1}: kept {best.unit} -> {best.width}: "
            f"{best.latency_ms:.3f} ms predicted, {row['measured_ms']:.3f} measured"
            f"{' (machine busy: flagged)' if row['measured_busy'] else ''}, "
            f"val {out['accuracy']:.4f} ({row['seconds']:.0f} s)"
        )

    def _log_iteration(self, row: dict[str, Any], results: list, best: Proposal) -> None:
        k = row["iteration"]
        for (p, out), logged in zip(results, row["proposals"], strict=True):
            self.tracker.add_child(
                (k, p.unit),
                f"iter{k:02d}-{p.unit}",
                params={"iteration": k, "unit": p.unit, "width": p.width, "config": str(p.config)},
                metrics={
                    "latency_predicted_ms": p.latency_ms,
                    "latency_measured_ms": logged["measured_ms"],
                    "latency_measured_std_ms": logged["measured_std_ms"],
                    "val_accuracy": out["accuracy"],
                    "short_term_seconds": out["seconds"],
                },
                tags={
                    "kept": str(p is best).lower(),
                    "latency_measured_busy": logged["measured_busy"] or "",
                },
            )
        self.tracker.flush()
        self.tracker.log_metrics(
            {
                "latency_predicted_ms": row["latency_ms"],
                "latency_measured_ms": row["measured_ms"],
                "val_accuracy": row["val_accuracy"],
                "iteration_seconds": row["seconds"],
            },
            step=k,
        )

    def _finish(self) -> dict[str, Any]:
        from nas.supernet import finetune

        state, model = self.state, self.model
        config = self.space.parse(state["config"])
        if not state.get("finetuned"):
            distill = self._distillation()
            self.progress(
                f"long-term fine-tuning: {self.na.long_term_epochs} epoch(s)"
                + (f", distilled from {self.na.distill.teacher}" if distill else "")
            )
            began = time.perf_counter()
            finetune(
                model,
                self.dataset,
                self.space.input_shape(config)[1],
                self.na.long_term_epochs,
                lr=self.na.long_term_lr,
                seed=self.spec.seed,
                distill=distill,
            )
            save_pruned(self.work / "final.pt", config, model)
            val = _val_accuracy(
                model,
                self.dataset,
                _val_split(self.spec, self.dataset),
                self.space.input_shape(config)[1],
            )
            state.update(
                finetuned=True,
                checkpoint="final.pt",
                final_val_accuracy=val,
                long_term_seconds=time.perf_counter() - began,
            )
            self._save_state()
        summary = {
            "start": state["start"],
            "config": str(config),
            "device": self.device_name,
            "iterations": state["iteration"],
            "target_latency_ms": self.target,
            "start_latency_ms": state["start_latency_ms"],
            "start_measured_ms": state["start_measured_ms"],
            "start_val_accuracy": state["start_val_accuracy"],
            "latency_ms": state["latency_ms"],
            "val_accuracy": state["final_val_accuracy"],
            "short_term_steps_total": state["short_term_steps_total"],
            "checkpoint": str(self.work / "final.pt"),
            "run_id": state["run_id"],
        }
        if self.tracker is not None:
            self.tracker.log_metrics({"final_val_accuracy": state["final_val_accuracy"]})
        if self.spec.export.enabled:
            summary["exported"] = self._export(config)
        if self.tracker is not None:
            self.tracker.log_dict(state, "netadapt_state.json")
        return summary

    def _export(self, config: PrunedConfig) -> list[dict[str, Any]]:
        """The final model exported and verified (parity, test accuracy of each file, measured
        latency next to the prediction), then registered as ``<job>-<device>`` when tracked."""
        from nas.export import export_subnet
        from nas.latency import reference_for
        from nas.tracking.registry import DEFAULT_FORMAT

        state = self.state
        if state.get("exported"):
            return state["exported"]
        formats = list(self.spec.export.formats) or [DEFAULT_FORMAT[self.dtype]]
        self.progress(f"exporting {config} as {', '.join(formats)}")
        files = export_subnet(
            self.space,
            config,
            self.model,
            self.dataset,
            self.work / "export",
            formats=formats,
            latency_model=self.latency,
            threads=self.latency.device.threads or 1,
            qat_epochs=self.spec.export.qat_epochs,
            reference=reference_for(self.latency),
        )
        if self.tracker is not None:
            self._register(config, files, formats)
        state["exported"] = [f.summary() for f in files]
        self._save_state()
        return state["exported"]

    def _register(self, config: PrunedConfig, files: list, formats: list[str]) -> None:
        from nas.tracking.registry import (
            ensure_registered_model,
            register_files,
            registered_name,
            set_aliases,
        )

        client = self.tracker.client
        name = registered_name(self.spec.name, self.device_name)
        ensure_registered_model(
            client,
            name,
            self.device_name,
            self.spec.name,
            f"NetAdapt-pruned models of {self.spec.name} for {self.device_name}",
        )
        row = {"config": str(config), "accuracy": self.state["final_val_accuracy"]}
        register_files(
            client,
            name,
            self.tracker.run_id,
            row,
            self.device_name,
            files,
            self.na.long_term_epochs,
        )
        set_aliases(client, name, formats[0], [])
