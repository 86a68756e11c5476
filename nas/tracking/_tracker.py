"""A job's MLflow run, through one small API over ``MlflowClient``: open or resume the parent run,
log params, metrics, artifacts and tags, add child runs (buffered, written in batches so that
tracking never holds up the job's dispatch loop), and end with a status."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nas.tracking._uri import artifact_location, tracking_uri

__all__ = ["JobRun"]

#: MLflow's HTTP client settings for a flush, unless the environment sets them: one try, no
#: retries (MLflow's own retries of one request last minutes, and the job would wait on them)
_TRY_ONCE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
#: while MLflow is failing, the tries are spaced further apart (``flush_seconds`` doubled per
#: failed try, up to this): a server that hangs costs the study one request timeout per try
MAX_RETRY_SECONDS = 60.0


@contextlib.contextmanager
def _try_once() -> Iterator[None]:
    added = [k for k in _TRY_ONCE if k not in os.environ]
    os.environ.update({k: _TRY_ONCE[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


logger = logging.getLogger(__name__)

#: the statuses a job run can end with (MLflow's terminal ``RunStatus`` names)
END_STATUSES = ("FINISHED", "FAILED", "KILLED")


class JobRun:
    """One job's parent run in experiment ``experiment`` (one experiment per job spec).

    Child runs added with :meth:`add_child` are kept in memory and written by :meth:`flush`
    (also when :meth:`flush_due` says so: every ``flush_every`` children or ``flush_seconds``),
    and always by :meth:`end`. Not thread safe: the job's driver thread calls it.
    """

    def __init__(
        self,
        client: Any,
        experiment_id: str,
        run_id: str,
        *,
        resumed: bool,
        flush_every: int = 20,
        flush_seconds: float = 5.0,
    ) -> None:
        self.client, self.experiment_id, self.run_id = client, experiment_id, run_id
        self.resumed = resumed
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self._buffer: list[tuple[Any, str, dict, dict, dict]] = []
        #: every child run :meth:`flush` has written: its key -> run id
        self.written: dict[Any, str] = {}
        self._failures = 0  # failed flushes in a row
        #: child runs created by a write that failed half-way: deleted before writing again
        self._partial: list[str] = []
        self._last_flush = time.monotonic()

    @classmethod
    def open(
        cls,
        experiment: str,
        run_name: str,
        *,
        tags: Mapping[str, str] | None = None,
        spec_uri: str | None = None,
        run_id: str | None = None,
        resume_by_tags: bool = False,
    ) -> JobRun:
        """Resume ``run_id`` when given; else, with ``resume_by_tags``, the experiment's run that
        carries all of ``tags``; else start a new run with ``tags``. The tracking URI is
        ``MLFLOW_TRACKING_URI``, else ``spec_uri``, else ``runs/mlflow.db`` (also set as MLflow's
        current URI, for the model registry)."""
        import mlflow
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(spec_uri)
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found
            else client.create_experiment(experiment, artifact_location=artifact_location(uri))
        )
        tags = dict(tags or {})
        if run_id is None and resume_by_tags and tags:
            query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
            existing = client.search_runs([experiment_id], filter_string=query, max_results=1)
            run_id = existing[0].info.run_id if existing else None
        if run_id is not None:
            logger.info("resuming MLflow run %s", run_id)
            client.update_run(run_id, status="RUNNING")
            return cls(client, experiment_id, run_id, resumed=True)
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        return cls(client, experiment_id, run.info.run_id, resumed=False)

    # ---- the parent run ------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: Mapping[str, Any], run_id: str | None = None) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self.client.log_batch(run_id or self.run_id, tags=batch)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_spec(self, source: str | Path) -> None:
        """The job's spec file under ``spec/``, as written but without the user and password
        of any URL in it (``redact_urls``: a storage or tracking URL)."""
        import tempfile

        from nas.tracking._uri import redact_urls

        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / Path(source).name
            copy.write_text(redact_urls(Path(source).read_text()))
            self.log_artifact(copy, artifact_path="spec")

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path=artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def end(self, status: str = "FINISHED") -> None:
        """Write the buffered children, then end the parent run with ``status``."""
        if status not in END_STATUSES:
            raise ValueError(f"status must be one of {END_STATUSES}, got {status!r}")
        try:
            self.flush()
        finally:
            self.client.set_terminated(self.run_id, status=status)

    # ---- child runs ----------------------------------------------------------------------
    def add_child(
        self,
        key: Any,
        run_name: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue a finished child run; :meth:`flush` writes it and maps ``key`` to its id."""
        self._buffer.append(
            (key, run_name, dict(params or {}), dict(metrics or {}), dict(tags or {}))
        )

    def flush_due(self) -> bool:
        """Children are queued, and ``flush_every`` of them or ``flush_seconds`` since the last
        flush (only the time while MLflow is failing: ``flush_seconds`` after the first failed
        try, doubled after each further one, up to :data:`MAX_RETRY_SECONDS`)."""
        if not self._buffer:
            return False
        waited = time.monotonic() - self._last_flush >= self.retry_seconds
        return waited or (not self.failing and len(self._buffer) >= self.flush_every)

    @property
    def failing(self) -> bool:
        """The last flush failed (MLflow unreachable): its children are still queued."""
        return self._failures > 0

    @property
    def retry_seconds(self) -> float:
        """How long :meth:`flush_due` waits after the last flush before the next one is due."""
        backoff = 2.0 ** max(self._failures - 1, 0)
        return min(self.flush_seconds * backoff, max(MAX_RETRY_SECONDS, self.flush_seconds))

    def flush(self) -> dict[Any, str]:
        """Write every queued child run; their keys -> run ids. A write that fails (MLflow
        unreachable) raises, with that run and every later one still queued (those written
        before it are in :attr:`written`)."""
        self._last_flush = time.monotonic()
        out = {}
        with _try_once():
            try:
                while self._partial:  # never two runs of one child
                    self.client.delete_run(self._partial[-1])
                    self._partial.pop()
                while self._buffer:
                    key, name, *record = self._buffer[0]
                    out[key] = self.written[key] = self._write_child(name, *record)
                    self._buffer.pop(0)
            except Exception:
                self._failures += 1
                raise
        self._failures = 0
        return out

    def child(
        self,
        run_name: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Write one finished child run now; its id."""
        return self._write_child(
            run_name, dict(params or {}), dict(metrics or {}), dict(tags or {})
        )

    def _write_child(self, run_name: str, params: dict, metrics: dict, tags: dict) -> str:
        from mlflow.entities import Metric, Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={"mlflow.parentRunId": self.run_id, **{k: str(v) for k, v in tags.items()}},
        )
        now = int(time.time() * 1000)
        try:
            self.client.log_batch(
                run.info.run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, str(v)) for k, v in params.items()],
            )
            self.client.set_terminated(run.info.run_id)
        except Exception:
            self._partial.append(run.info.run_id)
            raise
        return run.info.run_id

    def children(self, tag: str) -> dict[str, str]:
        """This run's child runs already written: their ``tag`` value -> run id. A child left
        unfinished (its process killed while writing it) is deleted, to be written again by
        the caller: called while this job alone writes the run (its lock held)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.run_id}'",
            max_results=50000,  # the store's page limit; a study has fewer evaluated trials
        )
        out = {}
        for r in runs:
            if r.info.status != "FINISHED":
                self.client.delete_run(r.info.run_id)
            elif tag in r.data.tags:
                out[r.data.tags[tag]] = r.info.run_id
        return out
