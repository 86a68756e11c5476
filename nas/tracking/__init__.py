"""MLflow tracking: where runs go and how jobs log to it (:class:`JobRun`: every MLflow call of a
job goes through it). The model registry and ``nas pick`` live in ``nas.tracking.registry`` (it
imports mlflow's pyfunc on import)."""

from nas.tracking._tracker import JobRun
from nas.tracking._uri import artifact_location, check_tracking_uri, redact_urls, tracking_uri

__all__ = [
    "JobRun",
    "artifact_location",
    "check_tracking_uri",
    "redact_urls",
    "tracking_uri",
]
