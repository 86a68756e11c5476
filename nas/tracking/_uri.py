"""Which MLflow tracking store a job uses (ARCHITECTURE.md): ``MLFLOW_TRACKING_URI``, else the
spec's ``tracking_uri``, else ``runs/mlflow.db`` of the working directory (``runs_root()``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tracking_uri", "artifact_location"]


def tracking_uri(spec_uri: str | None = None) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if spec_uri:
        return spec_uri
    from nas.paths import runs_root

    runs = runs_root()
    runs.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{runs / 'mlflow.db'}"


def artifact_location(uri: str | None = None) -> str | None:
    """Artifacts of a SQLite store go beside its file (``<dir>/mlartifacts``), never into the
    working directory's ``./mlruns``; other stores (a tracking server) choose for themselves."""
    uri = uri or tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts").as_uri()
