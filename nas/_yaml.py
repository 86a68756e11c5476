"""Reading a YAML file safely, with errors that name the file (one place for every format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nas.errors import NASError

__all__ = ["read_yaml"]


def read_yaml(path: str | Path, error: type[NASError], what: str) -> Any:
    """``yaml.safe_load`` of ``path``; a missing file or bad YAML raises ``error`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise error(f"{path} is not valid YAML: {e}") from e
