"""Where files are: the data shipped inside the package (supernets, latency tables, predictors),
the runs folder of the working directory, and how a path written in a spec is resolved."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["assets_root", "atomic_write", "cache_root", "is_shipped", "resolve", "runs_root"]


def assets_root() -> Path:
    """The package data shipped with nas: ``latency_luts/``, ``checkpoints/``, ``predictors/``."""
    return Path(__file__).resolve().parent / "assets"


def runs_root() -> Path:
    """Job state and the default MLflow store: ``NAS_RUNS_DIR`` if set, else ``./runs`` of the
    working directory."""
    return Path(os.environ.get("NAS_RUNS_DIR") or Path.cwd() / "runs").absolute()


def check_writable(path: str | Path, what: str) -> None:
    """``path`` is a folder this process can write into, or one it can create: its nearest
    existing folder takes a file (made and removed at once, so nothing stays).

    Raises:
        SpecError: naming ``what`` (the field or variable that gave ``path``) and why.
    """
    import tempfile

    from nas.errors import SpecError

    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        why = e.strerror or str(e)
        raise SpecError(f"{what} = {str(path)!r} cannot be written ({why}: {existing})") from None


def cache_root() -> Path:
    """What nas derives once per machine and reuses across jobs (converted layer files, host
    tables re-timed on this machine): ``NAS_CACHE_DIR`` if set, else ``<runs>/cache``."""
    return Path(os.environ.get("NAS_CACHE_DIR") or runs_root() / "cache").absolute()


def resolve(path: str | Path, base: str | Path | None = None, *, shipped: bool = True) -> Path:
    """A path as a user wrote it: absolute as given; else relative to ``base`` (a spec's folder;
    default the working directory) when that exists; else the shipped file of the same relative
    path (``latency_luts/note10`` is the shipped Note10 table) when that exists; else
    ``base/path``, so that an error names the place the user meant.

    ``shipped=False`` for a file a job writes (a trained checkpoint, measured table entries): it
    goes to ``base/path``, never into the installed package's data."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    local = (Path(base) if base is not None else Path.cwd()).absolute() / p
    if local.exists() or not shipped:
        return local
    data = assets_root() / p
    return data if data.exists() else local


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is (inside) the package data: read-only for jobs (an installed package
    may not be writable, and its data is shared by every user of the environment)."""
    return Path(path).resolve().is_relative_to(assets_root())


def atomic_write(path: str | Path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Write ``path`` whole or not at all: into a temporary file of its own (unique per process
    and call, so that processes writing the same file never collide), then renamed over
    ``path``. ``data``: bytes, text, or a function that writes the temporary file it is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        elif isinstance(data, str):
            tmp.write_text(data)
        else:
            data(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_safe(text: str, default: str = "config") -> str:
    """``text`` as part of a file or folder name: what shells and other systems treat
    specially (``|``, ``~``, ``/``, parentheses, spaces, ...) becomes ``_`` (``nb201``'s
    ``|op~0|+...`` strings, ``apq(ofa_mbv3_small)``); ``default`` when nothing is left."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or default
