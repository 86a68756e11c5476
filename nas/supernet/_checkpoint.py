"""The supernet weights file: the state dict plus what it was trained for, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.errors import CheckpointError, unreadable
from nas.paths import atomic_write

__all__ = ["save_weights", "load_weights", "atomic_save"]

FORMAT = "nas-supernet/1"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a file."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_weights(
    path: Path,
    state_dict: dict[str, torch.Tensor],
    *,
    space: str,
    space_options: dict,
    meta: dict,
    fp16: bool,
) -> None:
    if fp16:
        state_dict = {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}
    atomic_save(
        {
            "format": FORMAT,
            "space": space,
            "space_options": space_options,
            "meta": meta,
            "state_dict": state_dict,
        },
        path,
    )


def load_weights(path: str | Path) -> dict[str, Any]:
    """Load a supernet weights file (tensors back as float32).

    Raises:
        CheckpointError: missing file, or not a nas supernet file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"supernet checkpoint not found: {path} (train one with `nas train-supernet SPEC`)"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise CheckpointError(f"cannot read supernet checkpoint {path}: {unreadable(e)}") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a nas supernet checkpoint (expected format {FORMAT})")
    blob["state_dict"] = {
        k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()
    }
    return blob
