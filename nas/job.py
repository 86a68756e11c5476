"""The long-running job as a template method (search, NetAdapt, supernet training): the public
``run()`` owns the status, the MLflow run, cleanup and resume; subclasses write the steps."""

from __future__ import annotations

import abc
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas.spec import RunSpec

__all__ = ["Job", "JobTerminated"]

logger = logging.getLogger(__name__)


class JobTerminated(KeyboardInterrupt):
    """The process received SIGTERM while a job ran (``ray job stop``, a scheduler, ``kill``)."""


class Job(abc.ABC):
    """One job of a run spec.

    :meth:`run` checks its inputs (:meth:`preflight`, before anything is written), resumes
    (:meth:`load_checkpoint` then :meth:`load_state_dict`), opens or resumes
    the MLflow run (``self.tracker``, a :class:`nas.tracking.JobRun`, None without tracking),
    calls :meth:`_run`, and always ends: the MLflow run FINISHED on success, FAILED on an error,
    KILLED on KeyboardInterrupt or SIGTERM (never left RUNNING); every actor pool opened with
    :meth:`actor_pool` is closed, and Ray is shut down when this job started it.

    Subclasses implement :meth:`_run` (the steps), :meth:`state_dict` / :meth:`load_state_dict`
    (what a restarted process needs to go on; ``tracking_run_id`` belongs in it), and may
    override :meth:`load_checkpoint` (where the state is stored), :meth:`run_tags` and
    :meth:`_setup_tracking` (log what a new run records once). ``status`` is one of
    ``created``, ``running``, ``finished``, ``failed``, ``killed``.
    """

    #: the MLflow run name prefix, e.g. ``search``, ``netadapt``, ``train-supernet``
    kind: str = "job"
    #: resume the experiment's run carrying :meth:`run_tags` when no run id is stored
    resume_run_by_tags: bool = False

    def __init__(self, spec: RunSpec, *, track: bool = True) -> None:
        self.spec, self.track = spec, track
        self.status = "created"
        self.tracker: Any = None
        self.tracking_run_id: str | None = None
        self._pools: list[Any] = []
        self._ray_started = False

    # ---- to implement --------------------------------------------------------------------
    @abc.abstractmethod
    def _run(self, **kwargs: Any) -> Any:
        """The job's steps; its return value is :meth:`run`'s."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything a restarted process needs to resume."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def preflight(self) -> None:
        """Check every input the job needs before anything is written or started, each failure
        one :class:`nas.errors.NASError` naming the field, variable or file. The base checks
        that the runs folder and (when tracking) the MLflow store can be written; a subclass
        adds its own inputs and calls ``super().preflight()``."""
        from nas.paths import check_writable, runs_root

        check_writable(runs_root(), "NAS_RUNS_DIR (the runs folder)")
        if self.track:
            from nas.tracking import check_tracking_uri

            check_tracking_uri(self.spec.tracking_uri)

    def lock_path(self) -> Path | None:
        """A file only one process may hold while this job runs (None: no lock): a second
        process of the same job is refused, naming the first, instead of sharing its state."""
        return None

    def locks(self) -> contextlib.AbstractContextManager[Any]:
        """What the job holds while it runs, refused when another process holds it: by default
        :meth:`lock_path`'s file; a subclass adds a lock of its own storage (entered after the
        file's, so a refusal names the process holding it)."""
        return _exclusive(self.lock_path())

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The state saved by an earlier process of this job, or None (a fresh start)."""
        return None

    def run_name(self) -> str:
        return f"{self.kind}-{self.spec.name}"

    def run_tags(self) -> dict[str, str]:
        """Tags of the job's MLflow run (found again by them when ``resume_run_by_tags``)."""
        return {"nas.job": self.kind, "nas.spec": self.spec.name}

    def _setup_tracking(self, tracker: Any) -> None:
        """Called once the run is open (``tracker.resumed`` says whether it is new); by
        default nothing is logged."""
        return None

    # ---- the template --------------------------------------------------------------------
    def run(self, **kwargs: Any) -> Any:
        """Run the job to its end (resuming an interrupted one); see the class docstring.

        Raises:
            JobTerminated: SIGTERM arrived (the MLflow run ends KILLED).
            whatever the steps raise (the MLflow run ends FAILED).
        """
        self.preflight()  # before the status, the MLflow run or any file: nothing to clean up
        with self.locks():
            return self._run_locked(**kwargs)

    def _run_locked(self, **kwargs: Any) -> Any:
        self.status = "running"
        with _sigterm_raises():
            try:
                state = self.load_checkpoint()
                if state is not None:
                    self.load_state_dict(state)
                if self.track:
                    self._open_tracking()
                result = self._run(**kwargs)
            except KeyboardInterrupt:
                self._end("killed", "KILLED")
                raise
            except BaseException:
                self._end("failed", "FAILED")
                raise
            finally:
                self._cleanup()
        self._end("finished", "FINISHED")
        return result

    def _open_tracking(self) -> None:
        from nas.tracking import JobRun

        self.tracker = JobRun.open(
            self.spec.name,
            self.run_name(),
            tags=self.run_tags(),
            spec_uri=self.spec.tracking_uri,
            run_id=self.tracking_run_id,
            resume_by_tags=self.resume_run_by_tags,
        )
        self.tracking_run_id = self.tracker.run_id
        self._setup_tracking(self.tracker)

    def _end(self, status: str, mlflow_status: str) -> None:
        self.status = status
        if self.tracker is None:
            return
        try:
            self.tracker.end(mlflow_status)
        except Exception:  # an error ending the run must not hide the job's own
            if status == "finished":
                raise
            logger.exception("could not end MLflow run %s as %s", self.tracker.run_id, status)

    # ---- resources the template cleans up ------------------------------------------------
    def start_ray(self, cpus: int) -> None:
        """Join or start Ray (see :func:`nas.cluster.init_ray`); shut down at the end if this
        job started it."""
        from nas.cluster import init_ray

        self._ray_started = init_ray(cpus) or self._ray_started

    def actor_pool(self, actor_class: Any, args: Any = (), **options: Any) -> Any:
        """A :class:`nas.pool.ActorPool` closed when the job ends (or earlier with ``close``)."""
        from nas.pool import ActorPool

        pool = ActorPool(actor_class, args, **options)
        self._pools.append(pool)
        return pool

    def _cleanup(self) -> None:
        for pool in self._pools:
            pool.close()
        self._pools = []
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False


@contextlib.contextmanager
def _exclusive(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``flock``: the kernel drops it when the process ends,
    however it ends, so no lock outlives its job); refuse, naming the holder, when another
    process has it."""
    if path is None:
        yield
        return
    import fcntl
    import os
    import socket
    import time

    from nas.errors import SpecError

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise SpecError(
                f"{holder} is running this job ({path}); wait for it to end or stop it, or "
                "give this run another name"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`JobTerminated` in the main thread for the duration, so that the
    job's ``finally`` blocks run and its MLflow run ends KILLED."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise JobTerminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
