"""Where files are: the data shipped inside the package (supernets, latency tables, predictors),
the runs folder of the working directory, and how a path written in a spec is resolved."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["assets_root", "resolve", "runs_root"]


def assets_root() -> Path:
    """The package data shipped with nas: ``latency_luts/``, ``checkpoints/``, ``predictors/``."""
    return Path(__file__).resolve().parent / "assets"


def runs_root() -> Path:
    """Job state and the default MLflow store: ``NAS_RUNS_DIR`` if set, else ``./runs`` of the
    working directory."""
    return Path(os.environ.get("NAS_RUNS_DIR") or Path.cwd() / "runs").absolute()


def resolve(path: str | Path, base: str | Path | None = None) -> Path:
    """A path as a user wrote it: absolute as given; else relative to ``base`` (a spec's folder;
    default the working directory) when that exists; else the shipped file of the same relative
    path (``latency_luts/note10`` is the shipped Note10 table) when that exists; else
    ``base/path``, so that an error names the place the user meant."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    local = (Path(base) if base is not None else Path.cwd()).absolute() / p
    if local.exists():
        return local
    shipped = assets_root() / p
    return shipped if shipped.exists() else local
