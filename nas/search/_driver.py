"""The search job: the driver alone owns the Optuna study (ask/tell), keeps N trials in flight on
Ray actors, prices latency from the lookup tables, and logs the study to MLflow. Re-running the
same spec resumes the study."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna

from nas.cluster import spec_to_dict
from nas.errors import SpecError, first_line
from nas.job import Job
from nas.latency import build_latency
from nas.registry import EVALUATORS
from nas.search._objectives import make_objective
from nas.search._pareto import hypervolume_2d, nondominated, pareto_front
from nas.search._samplers import make_sampler
from nas.search._storage import (
    Heartbeat,
    batched_writes,
    check_storage,
    open_storage,
    recover_interrupted,
    storage_label,
    study_lock,
    tell,
)
from nas.search._workers import FAULTS_ENV, make_worker_class, parse_faults
from nas.spec import RunSpec
from nas.tracking import JobRun, redact_urls
from search_spaces import SearchSpace

__all__ = ["SearchJob", "SearchResult", "make_sampler", "open_study"]

#: the trial attribute holding each objective beyond accuracy and latency
_ATTR = {"params": "params", "macs": "macs", "size": "size_kb"}

logger = logging.getLogger(__name__)


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
    """Create or load the spec's study (``nas.search._storage``: a journal file in
    ``runs/<name>/`` unless ``search.storage``)."""
    directions = make_objective(spec.search).directions
    study = optuna.create_study(
        study_name=spec.name,
        storage=open_storage(spec),
        directions=directions,
        sampler=make_sampler(spec.search.sampler, spec.seed),
        load_if_exists=True,
    )
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise SpecError(
            f"search.objective: the study {spec.name!r} in {storage_label(spec)} was created "
            f"with directions {found}, but objective {spec.search.objective!r} "
            f"(objectives {list(spec.search.objectives)}) needs {directions}: give the run a new "
            "name, or go back to the objective it was started with"
        )
    return study


def seed_extremes(study: optuna.Study, space: SearchSpace) -> None:
    """A new study evaluates the smallest and the largest subnet first: the two ends of every
    front, which random draws almost never reach."""
    if not study.trials:
        for config in (space.smallest(), space.largest()):
            study.enqueue_trial(space.trial_params(config))


class SearchJob(Job):
    """One ``nas search`` job: the study in its journal (resumed by re-running the spec), one
    MLflow parent run per study (found again by its tags), one child run per evaluated trial."""

    kind = "search"
    resume_run_by_tags = True

    def __init__(
        self,
        spec: RunSpec,
        *,
        track: bool = True,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(spec, track=track)
        if not spec.devices:
            raise SpecError(
                "devices: a search needs at least one latency table (devices: [{lut: DIR}])"
            )
        self.progress = progress
        self.objective = make_objective(spec.search)
        #: what the workers' evaluator reads from files, read by ``preflight``
        self._inputs: dict[str, Any] | None = None
        #: trial number -> its MLflow child run
        self.trial_runs: dict[int, str] = {}
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
            ref if ref is not None else self._predict(self.devices[0], self.space.largest()),
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
        latency = {m.name: self._predict(m, config) for m in self.devices}
        return {"latency_ms": latency, **self._size(config)}

    @staticmethod
    def _predict(model: Any, config: Any) -> float:
        """The model's latency of ``config``; a host table of this machine that lacks a layer
        (a pruned width, a precision, a boundary op) measures it here first, once (the entry
        is written to this machine's copy of the table)."""
        from nas.errors import MissingLatencyKeyError

        try:
            return model.predict(config).ms
        except MissingLatencyKeyError:
            if not hasattr(model, "priced_layers"):
                raise
        from nas.latency import fill_for_configs
        from nas.paths import cache_root

        start = time.perf_counter()
        with _quiet_measuring():  # one line per fill below, not the calibration's own
            n = fill_for_configs(model, [config], cache_dir=cache_root() / "layers")
        logger.info(
            "%s: measured %d new table entries on this host (%.0f s)",
            model.name,
            n,
            time.perf_counter() - start,
        )
        return model.predict(config).ms

    def _size(self, config: Any) -> dict[str, float]:
        """MACs, parameters and the predicted KiB of the config's TFLite file (its layers'
        precisions, else the first device's)."""
        from nas.export import predicted_size_bytes

        # a config whose layers have their own precisions: its tflite-mixed file; else the
        # first device's precision throughout
        dtype = None if self.space.layer_dtypes(config) is not None else self._file_dtype
        try:
            size_kb: float | None = predicted_size_bytes(self.space, config, dtype) / 1024
        except ValueError as e:  # a precision without a size model (bf16, int4)
            if "size" in self.spec.search.objectives:
                raise SpecError(f"search.objectives: size: {config}: {e}") from e
            size_kb = None
        return {
            "macs": float(self.space.macs(config)),
            "params": float(self.space.params(config)),
            "size_kb": size_kb,
        }

    @property
    def _file_dtype(self) -> str:
        """The precision of a file exported for the first device (a size model's, else fp32)."""
        from nas.export import WEIGHT_BYTES

        dtype = getattr(self.devices[0], "dtype", "fp32")
        return dtype if dtype in WEIGHT_BYTES else "fp32"

    def _values(self, accuracy: float, priced: dict[str, Any]) -> list[float]:
        return self.objective.values(
            {
                "accuracy": accuracy,
                "latency": priced["latency_ms"][self.device_names[0]],
                "params": priced["params"],
                "macs": priced["macs"],
                "size": priced["size_kb"],
            }
        )

    @property
    def extra_objectives(self) -> tuple[str, ...]:
        """The study's objectives beyond accuracy and latency (a Pareto study's only)."""
        s = self.spec.search
        return tuple(s.objectives[2:]) if s.objective == "pareto" else ()

    def _extra_objectives(self, t: optuna.trial.FrozenTrial) -> tuple[float, ...]:
        """A trial's objectives beyond accuracy and latency (``search.objectives``), as its
        fronts weigh them (minimized); a trial of an older study that lacks one is priced again."""
        extra = self.extra_objectives
        if not extra:
            return ()
        attrs = t.user_attrs
        if any(_ATTR[o] not in attrs for o in extra):
            attrs = {**attrs, **self._size(self.space.parse(attrs["config"]))}
        return tuple(float(attrs[_ATTR[o]]) for o in extra)

    # ---- the job -------------------------------------------------------------------------
    def run(  # type: ignore[override]
        self, trials: int | None = None, workers: int | None = None, export: bool = True
    ) -> SearchResult:
        """Run the study to ``trials`` complete trials; then (``export`` and the spec's
        ``export.enabled``, with MLflow tracking and a supernet evaluator) export, verify and
        register each device's Pareto models. The template (:class:`nas.job.Job`) ends the MLflow
        run FINISHED, FAILED or KILLED and stops the workers whatever happens.

        Raises:
            NASError: the workers could not start, or too many trials failed.
        """
        return super().run(trials=trials, workers=workers, export=export)

    def preflight(self) -> None:
        for model in self.devices:  # a table lacking a layer would fail trials mid-study
            model.check_complete()
        check_storage(self.spec)
        parse_faults(os.environ.get(FAULTS_ENV, ""))  # the workers' fault drill, before Ray
        super().preflight()
        # the workers' files, read once here (a bad one named now, not after Ray starts) and
        # sent to them through Ray's object store: no worker reads a file of this machine
        self._inputs = EVALUATORS.get(self.spec.evaluator.kind).load_inputs(self.spec)

    def lock_path(self) -> Path:
        """One driver per study on this machine (``runs/<name>/driver.lock``)."""
        return self.spec.run_dir() / "driver.lock"

    @contextlib.contextmanager
    def locks(self) -> Iterator[None]:
        """The lock file, then (PostgreSQL storage) the study's advisory lock: one driver per
        study on any machine."""
        with super().locks(), study_lock(self.spec):
            yield

    def state_dict(self) -> dict[str, Any]:
        # the study lives in its journal and the parent run is found by its tags
        return {"tracking_run_id": self.tracking_run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracking_run_id = state.get("tracking_run_id")

    def run_name(self) -> str:
        return f"study-{self.spec.name}"

    def run_tags(self) -> dict[str, str]:
        return {"nas.role": "study", "nas.study": self.spec.name}

    def _run(self, trials: int | None, workers: int | None, export: bool) -> SearchResult:
        spec = self.spec
        trials = trials or spec.search.trials
        workers = workers or spec.search.workers
        threads = spec.search.threads_per_worker
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = open_study(spec)
        if study.trials:  # a resumed study: not the seeded sequence of proposals again
            study.sampler = make_sampler(spec.search.sampler, spec.seed + len(study.trials))
        seed_extremes(study, self.space)
        recover_interrupted(study, at_start=True)
        if self.tracker is not None:
            self._backfill(study)
        start = time.perf_counter()
        self.start_ray(workers * threads)
        import ray

        inputs, self._inputs = ray.put(self._inputs), None  # the object store holds them now
        pool = self.actor_pool(
            make_worker_class(threads),
            (spec_to_dict(spec), threads, inputs),
            size=workers,
            max_failures=max(10, trials),  # a bound, so that a broken evaluator cannot loop forever
            what="a search worker",
            label=lambda item: f"trial {item[0].number} ({item[1]})",
        )
        with Heartbeat(study) as heartbeat:
            stats = _TrialLoop(self, study, pool, trials, heartbeat).run()
        pool.close()
        result = self._result(study)
        result.timing = {"wall_seconds": time.perf_counter() - start, **stats}
        if self.tracker is not None:
            self._log_study(study, result)
            if export and spec.export.enabled:
                result.registered = self._register(study, result.fronts, workers)
        return result

    def _register(
        self, study: optuna.Study, fronts: dict[str, list[dict[str, Any]]], workers: int
    ) -> dict[str, dict[str, Any]]:
        if self.spec.evaluator.kind != "supernet":
            logger.info("export skipped: the %s evaluator has no weights", self.spec.evaluator.kind)
            return {}
        from nas.search._exporting import register_fronts

        start = time.perf_counter()
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        run_ids = {
            t.user_attrs["config"]: self.trial_runs[t.number]
            for t in sorted(complete, key=lambda t: -t.number)  # the first trial of a config wins
            if t.number in self.trial_runs
        }
        registered = register_fronts(
            self.spec,
            self,
            fronts,
            run_ids,
            self.spec.run_dir() / "export",
            progress=logger.info,
            workers=workers,
            client=self.tracker.client,
        )
        logger.info("export and registration took %.0f s", time.perf_counter() - start)
        return registered

    # ---- the surrogate sampler -------------------------------------------------------------
    def _proposer(self) -> Any:
        """The sampler's proposer (``nas.search._samplers``), or None when it has none."""
        from nas.registry import SAMPLERS

        sampler = SAMPLERS.create(self.spec.search.sampler)
        model = self.devices[0]

        def priced(config: Any) -> float:
            return model.predict(config).ms

        # chosen once: the proposer prices thousands of candidates through it
        latency = functools.partial(self._predict, model) if sampler.measures_missing else priced
        return sampler.proposer(
            self.space,
            latency,
            self.reference[0],
            seed=self.spec.seed,
            budgets_ms=self.spec.budgets_ms(),
        )

    def _propose(self, study: optuna.Study, proposer: Any, done: int) -> list:
        s = self.spec.search
        warmup = getattr(proposer, "warmup", None)
        if done < (s.surrogate_warmup if warmup is None else warmup):
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
        """The Pareto front on every device (same accuracies, that device's latencies), in all
        of the study's objectives (size too, where ``search.objectives`` has it)."""
        trials = self._complete(study)
        unique = {
            t.user_attrs["config"]: t for t in sorted(trials, key=lambda t: t.number)
        }  # one per subnet
        trials = list(unique.values())
        extra = [self._extra_objectives(t) for t in trials]
        out = {}
        for name in self.device_names:
            points = [
                (t.user_attrs["latency_ms"][name], -t.user_attrs["accuracy"], *e)
                for t, e in zip(trials, extra, strict=True)
            ]
            out[name] = sorted(
                (trials[i] for i in nondominated(points)),
                key=lambda t: t.user_attrs["latency_ms"][name],
            )
        return out

    def _result(self, study: optuna.Study) -> SearchResult:
        fronts = self.fronts(study)
        stats = self._front_stats(study)

        def row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
            return {
                "config": t.user_attrs["config"],
                "accuracy": t.user_attrs["accuracy"],
                "latency_ms": t.user_attrs["latency_ms"],
                "size_kb": t.user_attrs.get("size_kb"),
            }

        return SearchResult(
            experiment=self.spec.name,
            parent_run_id=self.tracking_run_id if self.tracker else None,
            n_complete=len(
                study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            ),
            hypervolume=stats["hypervolume"],
            pareto=[row(t) for t in fronts[self.device_names[0]]],
            fronts={name: [row(t) for t in front] for name, front in fronts.items()},
            timing={},
        )

    # ---- tracking ------------------------------------------------------------------------
    def _setup_tracking(self, tracker: JobRun) -> None:
        """A new parent run records the study's setup, the spec and the tables it prices by."""
        if tracker.resumed:
            self.trial_runs = {int(n): r for n, r in tracker.children("nas.trial").items()}
            return
        s = self.spec
        tracker.log_params(
            {
                "space": s.space,
                "sampler": s.search.sampler,
                "objective": s.search.objective,
                "objectives": ",".join(s.search.objectives),
                "target_latency_ms": s.search.target_latency_ms,
                "evaluator": s.evaluator.kind,
                "devices": ",".join(self.device_names),
                "seed": s.seed,
                "max_latency_ms": s.search.max_latency_ms,
                "workers": s.search.workers,
            }
        )
        if s.source:
            tracker.log_spec(s.source)
        for d in s.devices:
            tracker.log_artifacts(s.resolve_path(d.lut), artifact_path=f"luts/{Path(d.lut).name}")

    def _log_trial(self, trial: optuna.trial.Trial, config: Any, priced: dict[str, Any]) -> None:
        """Queue the trial's child run (written in batches, off the dispatch path)."""
        metrics = {
            "accuracy": trial.user_attrs["accuracy"],
            "macs": priced["macs"],
            "params": priced["params"],
            **({"size_kb": priced["size_kb"]} if priced["size_kb"] is not None else {}),
            **{f"latency_ms.{name}": ms for name, ms in priced["latency_ms"].items()},
        }
        self.tracker.add_child(
            trial.number,
            f"trial-{trial.number}",
            params={"config": str(config), **self.space.fields(config), **self._precisions(config)},
            metrics=metrics,
            tags={"nas.role": "trial", "nas.trial": trial.number, "config": str(config)},
        )

    def _precisions(self, config: Any) -> dict[str, str]:
        """``precision.<module path>`` of every layer, for a config whose layers have their own
        precisions (what its ``tflite-mixed`` file runs each layer at); else nothing."""
        dtypes = self.space.layer_dtypes(config)
        return {f"precision.{path}": dtype for path, dtype in (dtypes or {}).items()}

    def _flush_trials(self) -> None:
        """Write the queued child runs (a finished trial's attributes can no longer change: the
        driver keeps each trial's run id, and a resumed study reads them back from MLflow).
        While MLflow cannot be written the study goes on: the runs stay queued, tried again
        at the next flush (and a later run of the job writes whatever is still missing)."""
        was_failing = self.tracker.failing
        try:
            written = self.tracker.flush()
        except Exception as e:
            if not was_failing:  # once per outage
                logger.warning(
                    "MLflow cannot be written (%s): the study goes on, its trial runs are kept "
                    "and written once MLflow answers again",
                    redact_urls(first_line(e)),
                )
        else:
            if was_failing:
                logger.warning("MLflow answers again: %d trial run(s) written", len(written))
        finally:
            self.trial_runs.update(self.tracker.written)

    def _backfill(self, study: optuna.Study) -> None:
        """Write the child run of every evaluated trial MLflow does not have (the study is the
        source of truth: a driver killed before it wrote its queued runs, MLflow unreachable)."""
        missing = [
            t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if "duplicate_of" not in t.user_attrs and t.number not in self.trial_runs
        ]
        for t in missing:
            config = self.space.parse(t.user_attrs["config"])
            priced = {"latency_ms": t.user_attrs["latency_ms"], **self._size(config)}
            self._log_trial(t, config, priced)
        if missing:
            logger.info("writing %d trial run(s) missing from MLflow", len(missing))
            self._flush_trials()

    def _with_run_id(self, trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
        """A copy of ``trial`` whose ``mlflow_run_id`` attribute names its child run."""
        run_id = self.trial_runs.get(trial.number)
        if run_id is None:
            return trial
        trial = copy.copy(trial)
        trial.user_attrs = {**trial.user_attrs, "mlflow_run_id": run_id}
        return trial

    def _log_study(self, study: optuna.Study, result: SearchResult) -> None:
        """Pareto tags on the trial runs, the study's metrics and report files."""
        import tempfile

        from nas.search._report import write_reports

        fronts = {
            name: [self._with_run_id(t) for t in front]
            for name, front in self.fronts(study).items()
        }
        target = self.device_names[0]
        for name, front in fronts.items():
            for t in front:
                run_id = t.user_attrs.get("mlflow_run_id")
                if run_id:
                    tags = {
                        f"pareto.{name}": "true",
                        **({"pareto": "true"} if name == target else {}),
                    }
                    self.tracker.set_tags(tags, run_id=run_id)
        self.tracker.log_metrics(
            {"hypervolume": result.hypervolume, "n_complete": result.n_complete}
        )
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_reports(self, study, fronts, Path(tmp)):
                self.tracker.log_artifact(path, artifact_path="report")


@contextlib.contextmanager
def _quiet_measuring() -> Iterator[None]:
    """The calibration's per-table lines and busy-machine warnings held back while a search
    measures table entries on demand (its workers keep the machine busy by design; the entries
    are scaled by the table's reference layers timed with them)."""
    names = ("nas.latency._calibrate", "nas.export._conditions")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


class _TrialLoop:
    """The driver's dispatch loop: ask a trial whenever a worker is free, answer repeats of an
    evaluated subnet from the cache, tell every result back; MLflow child runs are written
    after dispatching, in batches."""

    def __init__(
        self, job: SearchJob, study: optuna.Study, pool: Any, trials: int, heartbeat: Heartbeat
    ) -> None:
        s = job.spec.search
        self.job, self.study, self.pool, self.trials = job, study, pool, trials
        self.heartbeat = heartbeat
        self.deadline = time.perf_counter() + 60 * s.timeout_minutes if s.timeout_minutes else None
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        self.cache = {t.user_attrs.get("config"): t for t in complete}
        #: config being evaluated -> the trials asked for it meanwhile, told its result then
        self.in_flight: dict[str, list[tuple[optuna.trial.Trial, dict[str, Any]]]] = {}
        self.done = len(complete)
        self.stats = {"eval_seconds": 0.0, "dispatched": 0, "cached": 0, "failed": 0}
        self.proposer = job._proposer()
        self.proposals: list = []

    def run(self) -> dict[str, Any]:
        tracker = self.job.tracker
        while True:
            # a dead driver's trials, once their grace is over
            if self.heartbeat.recover_due() and recover_interrupted(self.study):
                self.heartbeat.queued()
            self._dispatch()
            if tracker is not None and tracker.flush_due():
                self._flush()
            if not self.pool.pending:
                break
            wait = tracker.flush_seconds if tracker is not None else None
            done = self.pool.next_completed(timeout=wait)
            if done is not None:
                self._collect(done)
        if tracker is not None:
            self._flush()
        self.stats["worker_failures"] = self.pool.failures
        return self.stats

    def _flush(self) -> None:
        self.job._flush_trials()

    def _wanted(self) -> bool:
        parked = sum(len(v) for v in self.in_flight.values())
        return self.done + self.pool.pending + parked < self.trials and (
            self.deadline is None or time.perf_counter() < self.deadline
        )

    def _dispatch(self) -> None:
        while self.pool.free and self._wanted():
            trial, config, priced = self._ask()
            hit = self.cache.get(str(config))
            if hit is not None:  # the same subnet again (inactive-block params differ)
                self._tell_duplicate(trial, priced, hit)
                continue
            if str(config) in self.in_flight:  # being evaluated: never twice at once
                self.in_flight[str(config)].append((trial, priced))
                continue
            self.in_flight[str(config)] = []
            self.pool.submit((trial, config, priced), "evaluate", str(config))
            self.stats["dispatched"] += 1

    def _tell_duplicate(
        self, trial: optuna.trial.Trial, priced: dict[str, Any], hit: optuna.trial.FrozenTrial
    ) -> None:
        accuracy = hit.user_attrs["accuracy"]
        values = self.job._values(accuracy, priced)
        tell(self.study, trial, values, accuracy=accuracy, duplicate_of=hit.number)
        self.heartbeat.remove(trial)
        self.stats["cached"] += 1
        self.done += 1

    def _ask(self) -> tuple[optuna.trial.Trial, Any, dict[str, Any]]:
        job, study = self.job, self.study
        if self.proposer is not None and not self.proposals:
            self.proposals.extend(job._propose(study, self.proposer, self.done))
        if self.proposals:
            study.enqueue_trial(job.space.trial_params(self.proposals.pop(0)))
            self.heartbeat.queued()
        trial = self.heartbeat.ask(study)
        # one write for the subnet's parameters and attributes, and the trial's first heartbeat
        with batched_writes(trial, heartbeat=True):
            config = job.space.suggest(trial)
            priced = job._price(config)
            trial.set_user_attr("config", str(config))
            trial.set_user_attr("latency_ms", priced["latency_ms"])
            trial.set_user_attr("size_kb", priced["size_kb"])
            limit = job.spec.search.max_latency_ms
            if limit is not None:
                trial.set_constraint("latency", priced["latency_ms"][job.device_names[0]] - limit)
        self.heartbeat.add(trial)  # beaten every interval from now on
        return trial, config, priced

    def _collect(self, done: Any) -> None:
        trial, config, priced = done.item
        parked = self.in_flight.pop(str(config), [])
        attrs = {}
        if done.worker_deaths:  # another worker ran it again
            attrs["worker_died"] = "; ".join(done.worker_deaths)[:2000]
        if not done.ok:
            failed = optuna.trial.TrialState.FAIL
            for other, _ in [(trial, priced), *parked]:
                tell(self.study, other, state=failed, **attrs, error=done.error[:2000])
                self.heartbeat.remove(other)
                self.stats["failed"] += 1
                attrs = {}
            return
        accuracy = done.value["accuracy"]
        attrs.update(accuracy=accuracy, eval_seconds=done.value["eval_seconds"])
        attrs["node"] = done.value["node"]
        self.stats["eval_seconds"] += done.value["eval_seconds"]
        values = self.job._values(accuracy, priced)
        self.cache[str(config)] = tell(self.study, trial, values, **attrs)
        if self.job.tracker is not None:
            self.job._log_trial(trial, config, priced)
        self.heartbeat.remove(trial)
        self.done += 1
        for other, other_priced in parked:
            self._tell_duplicate(other, other_priced, self.cache[str(config)])
        if self.job.progress is not None:
            self.job.progress(
                {
                    "done": self.done,
                    "total": self.trials,
                    "trial": trial.number,
                    **self.job._front_stats(self.study),
                }
            )
