"""Which MLflow tracking store a job uses (ARCHITECTURE.md): ``MLFLOW_TRACKING_URI``, else the
spec's ``tracking_uri``, else ``runs/mlflow.db`` of the working directory (``runs_root()``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["artifact_location", "check_tracking_uri", "redact_urls", "tracking_uri"]

#: the user (and password) part of a URL: ``scheme://user:password@``
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s'\"]*@")


def redact_urls(text: str) -> str:
    """``text`` with the user and password of every URL in it left out
    (``postgresql://me:secret@db/x`` -> ``postgresql://…@db/x``): what a message, a log line or
    an artifact may show of a storage or tracking URL."""
    return _USERINFO.sub(r"\1…@", text)


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


def check_tracking_uri(spec_uri: str | None = None) -> None:
    """The store :func:`tracking_uri` picks can be written (a SQLite file's folder, or a local
    folder store) or answers (a tracking server: any HTTP answer from its ``/health``), checked
    before a job writes anything.

    Raises:
        SpecError: naming where the URI came from (``MLFLOW_TRACKING_URI``, ``tracking_uri`` or
            ``NAS_RUNS_DIR``) and the folder.
    """
    from nas.paths import check_writable, runs_root

    if os.environ.get("MLFLOW_TRACKING_URI"):
        uri, what = os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    elif spec_uri:
        uri, what = spec_uri, "tracking_uri"
    else:
        check_writable(runs_root(), "NAS_RUNS_DIR (the runs folder)")
        return
    if uri.startswith("sqlite:///"):
        check_writable(Path(uri[len("sqlite:///") :]).parent, f"{what} ({uri}): its folder")
    elif uri.startswith("file:") or "://" not in uri:
        check_writable(Path(uri.removeprefix("file://").removeprefix("file:")), what)
    elif uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        from nas.errors import SpecError

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10).close()
        except urllib.error.HTTPError:
            pass  # it answered (a proxy or an auth layer may refuse /health itself)
        except (OSError, ValueError) as e:
            why = getattr(e, "reason", None) or e
            raise SpecError(
                f"{what} = {redact_urls(uri)!r}: the MLflow tracking server does not answer "
                f"({why}); start it, or point {what} at one that runs"
            ) from None
