"""Opening (or resuming) an MLflow run for a job."""

from __future__ import annotations

import logging
from typing import Any

from nas.tracking._uri import artifact_location, tracking_uri

__all__ = ["start_job_run"]

logger = logging.getLogger(__name__)


def start_job_run(
    experiment: str, run_name: str, *, spec_uri: str | None = None, run_id: str | None = None
) -> Any:
    """Start a new run (or reopen ``run_id``) in ``experiment``; returns the active mlflow run."""
    import mlflow

    uri = tracking_uri(spec_uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_location(uri))
    mlflow.set_experiment(experiment)
    if run_id is not None:
        logger.info("resuming MLflow run %s", run_id)
        return mlflow.start_run(run_id=run_id)
    return mlflow.start_run(run_name=run_name)
