"""The job template: whatever happens in a job's steps, its MLflow run ends with a terminal status
(never left RUNNING), a stored run is resumed, and buffered child runs are written."""

from __future__ import annotations

import os
import signal
from typing import Any

import mlflow
import pytest

from nas.job import Job, JobTerminated
from nas.spec import load_spec
from tests.conftest import REPO


class _Job(Job):
    kind = "toy"

    def __init__(self, spec, action, **kw) -> None:
        super().__init__(spec, **kw)
        self.action = action

    def state_dict(self) -> dict[str, Any]:
        return {"tracking_run_id": self.tracking_run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracking_run_id = state["tracking_run_id"]

    def _run(self) -> str:
        for i in range(3):
            self.tracker.add_child(i, f"step-{i}", params={"i": i}, metrics={"square": i * i})
        return self.action()


@pytest.fixture
def spec():
    return load_spec(REPO / "runs" / "ofa_imagenet_note10.yaml")


def _status(run_id: str) -> str:
    return mlflow.tracking.MlflowClient().get_run(run_id).info.status


def _fail() -> str:
    raise RuntimeError("boom")


def _interrupt() -> str:
    raise KeyboardInterrupt


def _sigterm() -> str:
    os.kill(os.getpid(), signal.SIGTERM)
    return "not reached"


def test_a_job_that_succeeds_ends_finished_with_its_buffered_children(spec):
    job = _Job(spec, lambda: "done")
    assert job.run() == "done" and job.status == "finished"
    assert _status(job.tracking_run_id) == "FINISHED"
    children = job.tracker.children("mlflow.runName")
    assert sorted(children) == ["step-0", "step-1", "step-2"]
    run = mlflow.tracking.MlflowClient().get_run(children["step-2"])
    assert run.data.metrics["square"] == 4.0 and run.data.params["i"] == "2"


def test_a_job_that_raises_leaves_its_mlflow_run_failed_not_running(spec):
    job = _Job(spec, _fail)
    with pytest.raises(RuntimeError, match="boom"):
        job.run()
    assert job.status == "failed" and _status(job.tracking_run_id) == "FAILED"
    assert len(job.tracker.children("mlflow.runName")) == 3  # logged before the error, kept


@pytest.mark.parametrize("action", [_interrupt, _sigterm], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_or_terminated_job_ends_killed(spec, action):
    job = _Job(spec, action)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as caught:
        job.run()
    assert job.status == "killed" and _status(job.tracking_run_id) == "KILLED"
    if action is _sigterm:
        assert isinstance(caught.value, JobTerminated)
    assert signal.getsignal(signal.SIGTERM) is before  # the job's handler is gone again


def test_a_resumed_job_reopens_its_stored_run(spec):
    first = _Job(spec, _fail)
    with pytest.raises(RuntimeError):
        first.run()
    again = _Job(spec, lambda: "done")
    again.load_checkpoint = first.state_dict  # what a restarted process would read back
    again.run()
    assert again.tracking_run_id == first.tracking_run_id and again.tracker.resumed
    assert _status(first.tracking_run_id) == "FINISHED"


def test_without_tracking_a_job_runs_and_has_no_run(spec):
    job = _Job(spec, lambda: "done", track=False)
    job._run = lambda: "plain"  # no tracker to log children to
    assert job.run() == "plain" and job.tracker is None and job.status == "finished"
