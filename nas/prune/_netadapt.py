"""NetAdapt (Yang et al., ECCV 2018): latency-driven filter pruning of one trained subnet.

Each iteration must remove ``ΔR`` ms of predicted latency (the first device's table). For every
prunable layer the driver finds the largest width whose table latency is at least ``ΔR`` below
the current model's (entries for new widths measured on demand on a host table, never guessed);
Ray workers prune those proposals (largest-L2 filters kept), fine-tune each briefly and score it
on the validation split; the most accurate one is kept. When the budget is met the kept model is
fine-tuned long, exported, verified and registered like a Pareto model.

State after every iteration (``runs/<job>/netadapt/``): ``state.json`` and the kept model's
checkpoint, so an interrupted run resumes from its last finished iteration.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nas.errors import NASError, SpecError
from nas.paths import runs_root
from nas.spec import RunSpec
from search_spaces import PrunedConfig, PrunedSpace, pruned

__all__ = ["NetAdaptJob", "PruneWorker", "load_pruned", "save_pruned"]

logger = logging.getLogger(__name__)


def save_pruned(path: Path, config: PrunedConfig, model: torch.nn.Module) -> None:
    from nas.supernet._checkpoint import atomic_save

    atomic_save({"config": str(config), "state_dict": model.state_dict()}, path)


def load_pruned(path: Path, space: PrunedSpace) -> tuple[PrunedConfig, torch.nn.Module]:
    """A checkpoint written by :func:`save_pruned`: the structure is rebuilt from the config."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    config = space.parse(blob["config"])
    model = space.prune_to(space.base.build(config.base), config)
    model.load_state_dict(blob["state_dict"])
    return config, model.eval()


class PruneWorker:
    """Ray actor: holds the dataset; prunes, briefly fine-tunes and scores proposals."""

    def __init__(self, spec_dict: dict[str, Any], threads: int) -> None:
        import nas  # noqa: F401  (torchvision/ofa import trap inside the worker process)
        from nas.jobs import load_job
        from nas.spec import spec_from_dict

        torch.set_num_threads(threads)
        self.error: str | None = None
        try:
            self.spec = spec_from_dict(spec_dict)
            self.dataset, base = load_job(self.spec)
            self.space = pruned(base, self.spec.netadapt.channel_step)
        except NASError as e:
            self.error = str(e)
            return
        self.val = _val_split(self.spec, self.dataset)

    def ping(self) -> str | None:
        return self.error

    def short_term(
        self, model: torch.nn.Module, unit: str, width: int, resolution: int, seed: int
    ) -> dict[str, Any]:
        from nas.supernet import train_steps

        start = time.perf_counter()
        na = self.spec.netadapt
        model = copy.deepcopy(model)
        self.space.prune_unit(model, unit, width)
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


class NetAdaptJob:
    """One ``nas netadapt`` job (see the module docstring)."""

    def __init__(
        self, spec: RunSpec, *, track: bool = True, progress: Callable[[str], None] = logger.info
    ) -> None:
        from nas.jobs import load_job
        from nas.latency import LatencyModel

        if spec.netadapt is None:
            raise SpecError(f"{spec.source or spec.name}: nas netadapt needs a `netadapt:` section")
        if not spec.devices:
            raise SpecError("devices: nas netadapt prunes for the first device; none is given")
        self.spec, self.na, self.track, self.progress = spec, spec.netadapt, track, progress
        self.dataset, space = load_job(spec)
        self.space = pruned(space, self.na.channel_step)
        self.device_spec = spec.devices[0]
        self.dtype = self.device_spec.dtype
        self.latency = LatencyModel(spec.resolve_path(self.device_spec.lut), self.space)
        self.device_name = self.latency.name_at(self.dtype)
        self.work = spec.run_dir() / "netadapt"
        self.start = self.space.unpruned(space.resolve(self.na.start))

    # ---- latency -------------------------------------------------------------------------
    def price(self, config: PrunedConfig) -> float:
        """Predicted latency (ms); missing entries are measured first when allowed."""
        if self.na.measure_missing:
            from nas.latency._calibrate import fill_missing

            n = fill_missing(
                self.latency,
                self.space.layers(config),
                self.space.input_shape(config)[1],
                dtype=self.dtype,
                cache_dir=runs_root() / "lut_cache",
            )
            if n:
                logger.info("measured %d new table entries on this host", n)
        return self.latency.predict(config, self.dtype)

    def measure(self, config: PrunedConfig) -> float:
        """Measured host LiteRT latency (ms) of ``config`` at the table's precision and threads."""
        from nas.latency._litert import time_tflite
        from nas.latency._validate import subnet_tflite

        threads = self.latency.device.threads or 1
        return time_tflite(subnet_tflite(self.space, config, self.dtype), threads=threads).mean

    def proposals(self, current: PrunedConfig, latency: float, reduction: float) -> list[Proposal]:
        """Per unit, the fewest filters to remove for the table latency to drop by ``reduction``
        (none for a unit that cannot drop that much even at its smallest width)."""
        out = []
        for index, unit in enumerate(self.space.units(current.base)):
            widths = self.space.smaller_widths(current, index)
            if not widths:
                continue
            smallest = self.space.with_width(current, index, widths[-1])
            if latency - self.price(smallest) < reduction:
                continue
            for width in widths:
                candidate = self.space.with_width(current, index, width)
                ms = self.price(candidate)
                if latency - ms >= reduction:
                    out.append(Proposal(index, unit.name, width, candidate, ms))
                    break
        return out

    def target_ms(self, start_ms: float) -> float:
        na = self.na
        return na.budget_ms if na.budget_ms is not None else na.budget_ratio * start_ms

    # ---- state ---------------------------------------------------------------------------
    def _state_path(self) -> Path:
        return self.work / "state.json"

    def _save_state(self, state: dict[str, Any]) -> None:
        path = self._state_path()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, path)

    def _load_or_start(self) -> tuple[dict[str, Any], torch.nn.Module]:
        from nas.jobs import subnet_evaluator

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
            config, model = load_pruned(self.work / state["checkpoint"], self.space)
            self.progress(
                f"resuming after iteration {state['iteration']}: {config} "
                f"({state['latency_ms']:.3f} ms predicted)"
            )
            return state, model
        _, evaluator = subnet_evaluator(self.spec, dataset=self.dataset)
        model = evaluator.subnet(self.start.base)
        start_ms = self.price(self.start)
        val = _val_accuracy(
            model,
            self.dataset,
            _val_split(self.spec, self.dataset),
            self.space.input_shape(self.start)[1],
        )
        save_pruned(self.work / "iter_000.pt", self.start, model)
        state = {
            "start": str(self.start),
            "device": self.device_name,
            "dtype": self.dtype,
            "start_latency_ms": start_ms,
            "start_measured_ms": self.measure(self.start),
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
        self._save_state(state)
        return state, model

    # ---- the job -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        state, model = self._load_or_start()
        target = self.target_ms(state["start_latency_ms"])
        if target >= state["start_latency_ms"]:
            raise SpecError(
                f"netadapt.budget_ms = {target:g} is not below the start's predicted latency "
                f"({state['start_latency_ms']:.3f} ms on {self.device_name}): nothing to prune"
            )
        run = self._open_run(state, target)
        try:
            state, model = self._iterate(state, model, target, run)
            return self._finish(state, model, run, target)
        finally:
            if run is not None:
                import mlflow

                mlflow.end_run()

    def _open_run(self, state: dict[str, Any], target: float) -> Any:
        if not self.track:
            return None
        import mlflow

        from nas.tracking import start_job_run

        run = start_job_run(
            self.spec.name,
            f"netadapt-{self.device_name}",
            spec_uri=self.spec.tracking_uri,
            run_id=state["run_id"],
        )
        if state["run_id"] is None:
            state["run_id"] = run.info.run_id
            self._save_state(state)
            mlflow.set_tags(
                {"job": "netadapt", "device": self.device_name, "start": state["start"]}
            )
            mlflow.log_params(
                {
                    **{f"netadapt.{k}": v for k, v in dataclasses.asdict(self.na).items()},
                    "device": self.device_name,
                    "lut": self.device_spec.lut,
                    "target_latency_ms": round(target, 4),
                }
            )
            mlflow.log_metrics(
                {
                    "latency_predicted_ms": state["start_latency_ms"],
                    "latency_measured_ms": state["start_measured_ms"],
                    "val_accuracy": state["start_val_accuracy"],
                },
                step=0,
            )
        return run

    def _workers(self) -> list:
        import ray

        from nas.cluster import init_ray, spec_to_dict, wait_ready

        na = self.na
        init_ray(na.workers * na.threads_per_worker)
        cls = ray.remote(num_cpus=na.threads_per_worker)(PruneWorker)
        spec_dict = spec_to_dict(self.spec)
        actors = [cls.remote(spec_dict, na.threads_per_worker) for _ in range(na.workers)]
        wait_ready(actors, "a NetAdapt worker")
        return actors

    def _iterate(
        self, state: dict[str, Any], model: torch.nn.Module, target: float, run: Any
    ) -> tuple[dict[str, Any], torch.nn.Module]:
        import ray

        na = self.na
        start_ms = state["start_latency_ms"]
        actors = None
        while state["latency_ms"] > target + 1e-9 and state["iteration"] < na.max_iterations:
            k = state["iteration"]
            current = self.space.parse(state["config"])
            reduction = min(na.initial_ratio * na.decay**k * start_ms, state["latency_ms"] - target)
            began = time.perf_counter()
            proposals = self.proposals(current, state["latency_ms"], reduction)
            if not proposals:
                raise NASError(
                    f"iteration {k + 1}: no single layer of {current} can remove "
                    f"{reduction:.3f} ms "
                    f"(now {state['latency_ms']:.3f} ms, budget {target:.3f} ms); lower "
                    "netadapt.initial_ratio or netadapt.decay, or raise the budget"
                )
            self.progress(
                f"iteration {k + 1}: {state['latency_ms']:.3f} -> <= "
                f"{state['latency_ms'] - reduction:.3f} ms, {len(proposals)} proposals"
            )
            if actors is None:
                actors = self._workers()
            model_ref = ray.put(model)
            seed = self.spec.seed * 1000 + k
            refs = {
                actors[i % len(actors)].short_term.remote(
                    model_ref, p.unit, p.width, self.space.input_shape(p.config)[1], seed
                ): p
                for i, p in enumerate(proposals)
            }
            results: list[tuple[Proposal, dict[str, Any]]] = []
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    out = ray.get(done[0])
                except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
                    raise NASError(
                        f"iteration {k + 1}: a NetAdapt worker failed ({e}); run the same command "
                        f"again to resume after iteration {k}"
                    ) from e
                p = refs[done[0]]
                results.append((p, out))
                self.progress(
                    f"  {p.unit} -> {p.width}: {p.latency_ms:.3f} ms, val {out['accuracy']:.4f} "
                    f"({len(results)}/{len(proposals)})"
                )
            best, out = max(results, key=lambda r: (r[1]["accuracy"], -r[0].latency_ms))
            measured = {
                str(p.config): self.measure(p.config) for p, _ in results
            }  # every worker idle: the host is quiet
            model = out["model"].eval()
            name = f"iter_{k + 1:03d}.pt"
            save_pruned(self.work / name, best.config, model)
            row = {
                "iteration": k + 1,
                "reduction_ms": reduction,
                "kept": best.unit,
                "width": best.width,
                "config": str(best.config),
                "latency_ms": best.latency_ms,
                "measured_ms": measured[str(best.config)],
                "val_accuracy": out["accuracy"],
                "seconds": time.perf_counter() - began,
                "proposals": [
                    {
                        "unit": p.unit,
                        "width": p.width,
                        "latency_ms": p.latency_ms,
                        "measured_ms": measured[str(p.config)],
                        "val_accuracy": o["accuracy"],
                    }
                    for p, o in results
                ],
            }
            if run is not None:
                self._log_iteration(row, results, best)
            state.update(
                iteration=k + 1,
                config=str(best.config),
                latency_ms=best.latency_ms,
                val_accuracy=out["accuracy"],
                checkpoint=name,
                short_term_steps_total=state["short_term_steps_total"] + na.short_term_steps,
            )
            state["history"].append(row)
            for stale in ("finetuned", "exported", "final_val_accuracy"):  # a longer re-run
                state.pop(stale, None)
            self._save_state(state)
            (self.work / f"iter_{k:03d}.pt").unlink(missing_ok=True)  # keep the last one only
            self.progress(
                f"iteration {k + 1}: kept {best.unit} -> {best.width}: "
                f"{best.latency_ms:.3f} ms predicted, {row['measured_ms']:.3f} measured, "
                f"val {out['accuracy']:.4f} ({row['seconds']:.0f} s)"
            )
        if actors is not None:
            for a in actors:
                ray.kill(a)
        if state["latency_ms"] > target + 1e-9:
            logger.warning(
                "stopped after netadapt.max_iterations = %d at %.3f ms (budget %.3f ms)",
                na.max_iterations,
                state["latency_ms"],
                target,
            )
        return state, model

    def _log_iteration(self, row: dict[str, Any], results: list, best: Proposal) -> None:
        import mlflow

        k = row["iteration"]
        for (p, out), logged in zip(results, row["proposals"], strict=True):
            with mlflow.start_run(run_name=f"iter{k:02d}-{p.unit}", nested=True):
                mlflow.log_params(
                    {"iteration": k, "unit": p.unit, "width": p.width, "config": str(p.config)}
                )
                mlflow.log_metrics(
                    {
                        "latency_predicted_ms": p.latency_ms,
                        "latency_measured_ms": logged["measured_ms"],
                        "val_accuracy": out["accuracy"],
                        "short_term_seconds": out["seconds"],
                    }
                )
                mlflow.set_tag("kept", str(p is best).lower())
        mlflow.log_metrics(
            {
                "latency_predicted_ms": row["latency_ms"],
                "latency_measured_ms": row["measured_ms"],
                "val_accuracy": row["val_accuracy"],
                "iteration_seconds": row["seconds"],
            },
            step=k,
        )

    def _finish(
        self, state: dict[str, Any], model: torch.nn.Module, run: Any, target: float
    ) -> dict[str, Any]:
        from nas.supernet import finetune

        config = self.space.parse(state["config"])
        if not state.get("finetuned"):
            self.progress(f"long-term fine-tuning: {self.na.long_term_epochs} epoch(s)")
            began = time.perf_counter()
            finetune(
                model,
                self.dataset,
                self.space.input_shape(config)[1],
                self.na.long_term_epochs,
                lr=self.na.long_term_lr,
                seed=self.spec.seed,
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
            self._save_state(state)
        summary = {
            "start": state["start"],
            "config": str(config),
            "device": self.device_name,
            "iterations": state["iteration"],
            "target_latency_ms": target,
            "start_latency_ms": state["start_latency_ms"],
            "start_measured_ms": state["start_measured_ms"],
            "start_val_accuracy": state["start_val_accuracy"],
            "latency_ms": state["latency_ms"],
            "val_accuracy": state["final_val_accuracy"],
            "short_term_steps_total": state["short_term_steps_total"],
            "checkpoint": str(self.work / "final.pt"),
            "run_id": state["run_id"],
        }
        if run is not None:
            import mlflow

            mlflow.log_metric("final_val_accuracy", state["final_val_accuracy"])
            mlflow.end_run()  # registration reopens the run by id
        if self.spec.export.enabled:
            summary["exported"] = self._export(state, config, model, run)
        if run is not None:
            from mlflow.tracking import MlflowClient

            MlflowClient().log_dict(run.info.run_id, state, "netadapt_state.json")
        return summary

    def _export(
        self, state: dict[str, Any], config: PrunedConfig, model: torch.nn.Module, run: Any
    ) -> list[dict[str, Any]]:
        """The final model exported and verified (parity, test accuracy of each file, measured
        latency next to the prediction), then registered as ``<job>-<device>`` when tracked."""
        from nas.export import export_subnet
        from nas.tracking.registry import DEFAULT_FORMAT

        if state.get("exported"):
            return state["exported"]
        formats = list(self.spec.export.formats) or [DEFAULT_FORMAT[self.dtype]]
        self.progress(f"exporting {config} as {', '.join(formats)}")
        files = export_subnet(
            self.space,
            config,
            model,
            self.dataset,
            self.work / "export",
            formats=formats,
            latency_model=self.latency,
            threads=self.latency.device.threads or 1,
            qat_epochs=self.spec.export.qat_epochs,
        )
        if run is not None:
            from mlflow.tracking import MlflowClient

            from nas.tracking.registry import (
                ensure_registered_model,
                register_files,
                registered_name,
                set_aliases,
            )

            client = MlflowClient()
            name = registered_name(self.spec.name, self.device_name)
            ensure_registered_model(
                client,
                name,
                self.device_name,
                self.spec.name,
                f"NetAdapt-pruned models of {self.spec.name} for {self.device_name}",
            )
            row = {"config": str(config), "accuracy": state["final_val_accuracy"]}
            register_files(
                client,
                name,
                run.info.run_id,
                row,
                self.device_name,
                files,
                self.na.long_term_epochs,
            )
            set_aliases(client, name, formats[0], [])
        state["exported"] = [f.summary() for f in files]
        self._save_state(state)
        return state["exported"]
