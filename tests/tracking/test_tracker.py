"""The job run's queued child runs while MLflow is down, against a real MLflow client."""

from __future__ import annotations

import time

import mlflow
import pytest

from nas.tracking._tracker import MAX_RETRY_SECONDS, JobRun
from tests.servers import free_port


def test_tries_while_mlflow_is_down_are_spaced_further_apart_and_reset_once_it_answers(tmp_path):
    """A tracking server nobody listens on: every failed flush doubles the wait before the next
    one is due (a server that hangs costs the study one request timeout per try, not one per
    ``flush_seconds``), up to MAX_RETRY_SECONDS; the queued run is written once MLflow answers,
    and the waits start again from ``flush_seconds``."""
    down = mlflow.tracking.MlflowClient(f"http://127.0.0.1:{free_port()}")
    run = JobRun(down, "0", "parent", resumed=False, flush_seconds=5.0)
    run.add_child(7, "trial-7", params={"config": "c"}, metrics={"accuracy": 0.5})
    assert run.retry_seconds == 5.0 and run.flush_due() is False  # 1 queued, 5 s not over
    for expected in (5.0, 10.0, 20.0, 40.0, MAX_RETRY_SECONDS, MAX_RETRY_SECONDS):
        with pytest.raises(Exception, match="127.0.0.1"):
            run.flush()
        assert run.failing and run.retry_seconds == expected
        assert not run.flush_due()  # just tried
        run._last_flush = time.monotonic() - (expected - 1)  # the last try, that long ago
        assert not run.flush_due()
        run._last_flush = time.monotonic() - (expected + 1)
        assert run.flush_due()

    store = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # MLflow answers
    experiment = store.create_experiment("back")
    parent = store.create_run(experiment)
    run.client, run.experiment_id, run.run_id = store, experiment, parent.info.run_id
    written = run.flush()
    assert list(written) == [7] and not run.failing and run.retry_seconds == 5.0
    child = store.get_run(written[7])
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.params == {"config": "c"} and child.data.metrics == {"accuracy": 0.5}
