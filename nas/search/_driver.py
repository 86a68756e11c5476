"""The search job: the driver alone owns the Optuna study (ask/tell), keeps N trials in flight on
Ray actors, prices latency from the lookup tables, and logs the study to MLflow. Re-running the
same spec resumes the study."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from nas.cluster import init_ray, spec_to_dict, wait_ready
from nas.errors import NASError
from nas.latency import build_latency
from nas.search._pareto import hypervolume_2d, pareto_front
from nas.search._samplers import make_proposer, make_sampler
from nas.search._workers import make_worker_class
from nas.spec import RunSpec
from search_spaces import SearchSpace

__all__ = ["SearchJob", "SearchResult", "make_sampler", "open_study"]

logger = logging.getLogger(__name__)
DIRECTIONS = {
    "accuracy": "maximize",
    "latency": "minimize",
    "params": "minimize",
    "macs": "minimize",
}


@dataclasses.dataclass
class SearchResult:
    experiment: str
    parent_run_id: str | None
    n_complete: int
    hypervolume: float
    pareto: list[dict[str, Any]]
    fronts: dict[str, list[dict[str, Any]]]
    timing: dict[str, float]
    #: device -> {"model", "versions", "aliases"} of the registered Pareto models (when exported)
    registered: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out = {
            "experiment": self.experiment,
            "parent_run_id": self.parent_run_id,
            "n_complete": self.n_complete,
            "hypervolume": self.hypervolume,
            "pareto": self.pareto,
        }
        if self.registered:
            out["registered"] = self.registered
        return out


def open_study(spec: RunSpec) -> optuna.Study:
    """Create or load the spec's study (journal file in runs/<name>/ unless ``search.storage``)."""
    if spec.search.storage:
        storage: Any = spec.search.storage
    else:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        spec.run_dir().mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(spec.run_dir() / "study.journal")))
    return optuna.create_study(
        study_name=spec.name,
        storage=storage,
        directions=[DIRECTIONS[o] for o in spec.search.objectives],
        sampler=make_sampler(spec.search.sampler, spec.seed),
        load_if_exists=True,
    )


def seed_extremes(study: optuna.Study, space: SearchSpace) -> None:
    """A new study evaluates the smallest and the largest subnet first: the two ends of every
    front, which random draws almost never reach."""
    if not study.trials:
        for config in (space.smallest(), space.largest()):
            study.enqueue_trial(space.trial_params(config))


def recover_interrupted(study: optuna.Study) -> int:
    """Trials left RUNNING by a killed driver: mark them FAIL and queue their parameters again."""
    n = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(
            trial._trial_id, "error", "interrupted: the driver stopped mid-trial"
        )
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(
            trial.params, user_attrs={"requeued_from": trial.number}, skip_if_exists=False
        )
        n += 1
    if n:
        logger.info("re-queued %d trial(s) left running by an interrupted driver", n)
    return n


class SearchJob:
    def __init__(
        self,
        spec: RunSpec,
        *,
        track: bool = True,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not spec.devices:
            from nas.errors import SpecError

            raise SpecError(
                "devices: a search needs at least one latency table (devices: [{lut: DIR}])"
            )
        self.spec = spec
        self.track = track
        self.progress = progress
        self.space = self._space()
        self.devices = [
            build_latency(spec.resolve_path(d.lut), self.space, dtype=d.dtype) for d in spec.devices
        ]
        # the same table priced at two precisions is two devices: name, name-int8, ...
        self.device_names = [m.name for m in self.devices]
        if len(set(self.device_names)) != len(self.device_names):
            raise ValueError(f"devices must be distinct, got {self.device_names}")
        ref = spec.search.reference_latency_ms
        self.reference = (
            ref if ref is not None else self.devices[0].predict(self.space.largest()).ms,
            spec.search.reference_accuracy,
        )

    def _space(self) -> SearchSpace:
        from search_spaces import get_space

        if self.spec.evaluator.kind == "supernet":
            from nas.supernet import load_weights

            blob = load_weights(self.spec.resolve_path(self.spec.supernet.checkpoint))
            return get_space(self.spec.space, **blob["space_options"])
        return get_space(self.spec.space)

    # ---- pricing -------------------------------------------------------------------------
    def _price(self, config: Any) -> dict[str, Any]:
        latency = {m.name: m.predict(config).ms for m in self.devices}
        return {
            "latency_ms": latency,
            "macs": float(self.space.macs(config)),
            "params": float(self.space.params(config)),
        }

    def _values(self, accuracy: float, priced: dict[str, Any]) -> list[float]:
        target = priced["latency_ms"][self.device_names[0]]
        table = {
            "accuracy": accuracy,
            "latency": target,
            "params": priced["params"],
            "macs": priced["macs"],
        }
        return [table[o] for o in self.spec.search.objectives]

    # ---- the job -------------------------------------------------------------------------
    def run(
        self, trials: int | None = None, workers: int | None = None, export: bool = True
    ) -> SearchResult:
        """Run the study to ``trials`` complete trials; then (``export`` and the spec's
        ``export.enabled``, with MLflow tracking and a supernet evaluator) export, verify and
        register each device's Pareto models."""
        import ray

        spec = self.spec
        trials = trials or spec.search.trials
        workers = workers or spec.search.workers
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = open_study(spec)
        seed_extremes(study, self.space)
        recover_interrupted(study)
        tracker = _Tracker(spec, self) if self.track else None
        start = time.perf_counter()
        deadline = start + 60 * spec.search.timeout_minutes if spec.search.timeout_minutes else None

        init_ray(workers * spec.search.threads_per_worker)
        worker_cls = make_worker_class(spec.search.threads_per_worker)
        spec_dict = spec_to_dict(spec)
        actors = [
            worker_cls.remote(spec_dict, spec.search.threads_per_worker) for _ in range(workers)
        ]
        wait_ready(actors, "a search worker")
        idle = list(actors)
        inflight: dict[Any, tuple[optuna.trial.Trial, Any, dict, Any, float]] = {}
        cache = {
            t.user_attrs.get("config"): t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        }
        stats = {"eval_seconds": 0.0, "dispatched": 0, "cached": 0, "failed": 0}
        max_failures = max(10, trials)  # a bound, so that a broken evaluator cannot loop forever
        last_error = ""

        done_count = len(
            study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        )
        proposer = self._proposer()
        proposals: list = []
        try:
            while True:
                if stats["failed"] >= max_failures:
                    raise NASError(
                        f"{stats['failed']} trials failed, giving up; last error: {last_error}"
                    )
                while (
                    idle
                    and stats["failed"] < max_failures
                    and done_count + len(inflight) < trials
                    and (deadline is None or time.perf_counter() < deadline)
                ):
                    if proposer is not None and not proposals:
                        proposals.extend(self._propose(study, proposer, done_count))
                    if proposals:
                        study.enqueue_trial(self.space.trial_params(proposals.pop(0)))
                    trial = study.ask()
                    config = self.space.suggest(trial)
                    priced = self._price(config)
                    trial.set_user_attr("config", str(config))
                    trial.set_user_attr("latency_ms", priced["latency_ms"])
                    if spec.search.max_latency_ms is not None:
                        trial.set_constraint(
                            "latency",
                            priced["latency_ms"][self.device_names[0]] - spec.search.max_latency_ms,
                        )
                    hit = cache.get(str(config))
                    if hit is not None:  # the same subnet again (inactive-block params differ)
                        accuracy = hit.user_attrs["accuracy"]
                        trial.set_user_attr("accuracy", accuracy)
                        trial.set_user_attr("duplicate_of", hit.number)
                        study.tell(trial, self._values(accuracy, priced))
                        stats["cached"] += 1
                        done_count += 1
                        continue
                    actor = idle.pop()
                    ref = actor.evaluate.remote(str(config))
                    inflight[ref] = (trial, config, priced, actor, time.perf_counter())
                    stats["dispatched"] += 1
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1)
                ref = ready[0]
                trial, config, priced, actor, sent = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    logger.warning(
                        "worker died on trial %d (%s): replacing it and re-queuing the trial",
                        trial.number,
                        e,
                    )
                    last_error = f"worker died: {e}"
                    trial.set_user_attr("error", last_error[:2000])
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
                    stats["failed"] += 1
                    replacement = worker_cls.remote(spec_dict, spec.search.threads_per_worker)
                    actors.append(replacement)
                    idle.append(replacement)
                    continue
                except ray.exceptions.RayTaskError as e:
                    logger.warning(
                        "trial %d failed: %s", trial.number, e.cause if hasattr(e, "cause") else e
                    )
                    last_error = str(getattr(e, "cause", e))
                    trial.set_user_attr("error", last_error[:2000])
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    stats["failed"] += 1
                    idle.append(actor)
                    continue
                idle.append(actor)
                accuracy = result["accuracy"]
                trial.set_user_attr("accuracy", accuracy)
                trial.set_user_attr("eval_seconds", result["eval_seconds"])
                stats["eval_seconds"] += result["eval_seconds"]
                if tracker is not None:
                    trial.set_user_attr(
                        "mlflow_run_id", tracker.log_trial(trial.number, config, accuracy, priced)
                    )
                frozen = study.tell(trial, self._values(accuracy, priced))
                cache[str(config)] = frozen
                done_count += 1
                if self.progress is not None:
                    self.progress(
                        {
                            "done": done_count,
                            "total": trials,
                            "trial": trial.number,
                            **self._front_stats(study),
                        }
                    )
        finally:
            for actor in actors + idle:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - best-effort cleanup of already-dead actors
                    pass
        wall = time.perf_counter() - start
        result = self._result(study, tracker)
        result.timing = {"wall_seconds": wall, **stats}
        if tracker is not None:
            tracker.finish(study, result)
            if export and spec.export.enabled:
                result.registered = self._register(study, result.fronts)
        return result

    def _register(
        self, study: optuna.Study, fronts: dict[str, list[dict[str, Any]]]
    ) -> dict[str, dict[str, Any]]:
        if self.spec.evaluator.kind != "supernet":
            logger.info("export skipped: the %s evaluator has no weights", self.spec.evaluator.kind)
            return {}
        from nas.tracking.registry import register_fronts

        start = time.perf_counter()
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        run_ids = {
            t.user_attrs["config"]: t.user_attrs["mlflow_run_id"]
            for t in sorted(complete, key=lambda t: -t.number)  # the first trial of a config wins
            if t.user_attrs.get("mlflow_run_id")
        }
        registered = register_fronts(
            self.spec, self, fronts, run_ids, self.spec.run_dir() / "export", progress=logger.info
        )
        logger.info("export and registration took %.0f s", time.perf_counter() - start)
        return registered

    # ---- the surrogate sampler -------------------------------------------------------------
    def _proposer(self) -> Any:
        """The sampler's proposer (``nas.search._samplers``), or None when it has none."""
        model = self.devices[0]
        return make_proposer(
            self.spec.search.sampler,
            self.space,
            lambda c: model.predict(c).ms,
            self.reference[0],
            seed=self.spec.seed,
        )

    def _propose(self, study: optuna.Study, proposer: Any, done: int) -> list:
        s = self.spec.search
        if done < s.surrogate_warmup:
            return []
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        evaluated = {t.user_attrs["config"]: t.user_attrs["accuracy"] for t in complete}
        return proposer.propose(
            [(self.space.parse(c), a) for c, a in evaluated.items()], s.surrogate_batch
        )

    # ---- fronts --------------------------------------------------------------------------
    def _complete(self, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if self.spec.search.max_latency_ms is not None:
            trials = [
                t
                for t in trials
                if t.user_attrs["latency_ms"][self.device_names[0]]
                <= self.spec.search.max_latency_ms
            ]
        return trials

    def _front_stats(self, study: optuna.Study) -> dict[str, Any]:
        trials = self._complete(study)
        points = [
            (t.user_attrs["latency_ms"][self.device_names[0]], t.user_attrs["accuracy"])
            for t in trials
        ]
        return {
            "pareto_size": len(pareto_front(points)),
            "hypervolume": hypervolume_2d(points, *self.reference),
        }

    def fronts(self, study: optuna.Study) -> dict[str, list[optuna.trial.FrozenTrial]]:
        """The Pareto front on every device (same accuracies, that device's latencies)."""
        trials = self._complete(study)
        unique = {
            t.user_attrs["config"]: t for t in sorted(trials, key=lambda t: t.number)
        }  # one per subnet
        trials = list(unique.values())
        out = {}
        for name in self.device_names:
            points = [(t.user_attrs["latency_ms"][name], t.user_attrs["accuracy"]) for t in trials]
            out[name] = sorted(
                (trials[i] for i in pareto_front(points)),
                key=lambda t: t.user_attrs["latency_ms"][name],
            )
        return out

    def _result(self, study: optuna.Study, tracker: _Tracker | None) -> SearchResult:
        fronts = self.fronts(study)
        stats = self._front_stats(study)

        def row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
            return {
                "config": t.user_attrs["config"],
                "accuracy": t.user_attrs["accuracy"],
                "latency_ms": t.user_attrs["latency_ms"],
            }

        return SearchResult(
            experiment=self.spec.name,
            parent_run_id=tracker.parent_id if tracker else None,
            n_complete=len(
                study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            ),
            hypervolume=stats["hypervolume"],
            pareto=[row(t) for t in fronts[self.device_names[0]]],
            fronts={name: [row(t) for t in front] for name, front in fronts.items()},
            timing={},
        )


class _Tracker:
    """MLflow: one parent run per study (found again on resume), one child run per trial."""

    def __init__(self, spec: RunSpec, job: SearchJob) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        from nas.tracking import artifact_location, tracking_uri

        uri = tracking_uri(spec.tracking_uri)
        mlflow.set_tracking_uri(uri)
        self.client = MlflowClient()
        self.spec, self.job = spec, job
        experiment = self.client.get_experiment_by_name(spec.name)
        self.experiment_id = (
            experiment.experiment_id
            if experiment
            else self.client.create_experiment(spec.name, artifact_location=artifact_location(uri))
        )
        existing = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`nas.role` = 'study' and tags.`nas.study` = '{spec.name}'",
            max_results=1,
        )
        if existing:
            self.parent_id = existing[0].info.run_id
            self.client.set_terminated(self.parent_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"study-{spec.name}",
                tags={"nas.role": "study", "nas.study": spec.name},
            )
            self.parent_id = run.info.run_id
            self._log_setup()

    def _log_setup(self) -> None:
        from mlflow.entities import Param

        s = self.spec
        params = {
            "space": s.space,
            "sampler": s.search.sampler,
            "objectives": ",".join(s.search.objectives),
            "evaluator": s.evaluator.kind,
            "devices": ",".join(self.job.device_names),
            "seed": s.seed,
            "max_latency_ms": s.search.max_latency_ms,
            "workers": s.search.workers,
        }
        self.client.log_batch(self.parent_id, params=[Param(k, str(v)) for k, v in params.items()])
        if s.source:
            self.client.log_artifact(self.parent_id, s.source, artifact_path="spec")
        for d in s.devices:
            self.client.log_artifacts(
                self.parent_id, str(s.resolve_path(d.lut)), artifact_path=f"luts/{Path(d.lut).name}"
            )

    def log_trial(self, number: int, config: Any, accuracy: float, priced: dict[str, Any]) -> str:
        from mlflow.entities import Metric, Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number}",
            tags={
                "mlflow.parentRunId": self.parent_id,
                "nas.role": "trial",
                "nas.trial": str(number),
                "config": str(config),
            },
        )
        now = int(time.time() * 1000)
        params = [Param("config", str(config))] + [
            Param(k, str(v)) for k, v in config.fields().items()
        ]
        metrics = [
            Metric("accuracy", accuracy, now, 0),
            Metric("macs", priced["macs"], now, 0),
            Metric("params", priced["params"], now, 0),
        ]
        metrics += [
            Metric(f"latency_ms.{name}", ms, now, 0) for name, ms in priced["latency_ms"].items()
        ]
        self.client.log_batch(run.info.run_id, metrics=metrics, params=params)
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def finish(self, study: optuna.Study, result: SearchResult) -> None:
        import tempfile

        from nas.search._report import write_reports

        fronts = self.job.fronts(study)
        target = self.job.device_names[0]
        for name, front in fronts.items():
            for t in front:
                run_id = t.user_attrs.get("mlflow_run_id")
                if run_id:
                    self.client.set_tag(run_id, f"pareto.{name}", "true")
                    if name == target:
                        self.client.set_tag(run_id, "pareto", "true")
        self.client.log_metric(self.parent_id, "hypervolume", result.hypervolume)
        self.client.log_metric(self.parent_id, "n_complete", result.n_complete)
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_reports(self.job, study, fronts, Path(tmp)):
                self.client.log_artifact(self.parent_id, str(path), artifact_path="report")
        self.client.set_terminated(self.parent_id)
