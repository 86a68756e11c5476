"""The one place where the torchvision/ofa import trap is handled (see ARCHITECTURE.md).

PyPI's torchvision 0.28.0 is a CUDA build: its C extension does not load beside the CPU
wheel of torch, and ``import torchvision`` (which ``ofa`` needs) then fails with
``operator torchvision::nms does not exist``. Defining the two operators its Python side
registers fake kernels for makes the import work; nothing here ever calls them.
Every process (CLI, Ray workers, pytest) imports ``nas``, whose ``__init__`` imports this.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402

_LIBRARY: torch.library.Library | None = None
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def _missing_op(*args: object, **kwargs: object) -> torch.Tensor:
    raise NotImplementedError(
        "torchvision's compiled operators are not available with the CPU build of torch; "
        "nas never calls them."
    )


def install_torchvision_ops() -> None:
    """Define ``torchvision::nms``/``qnms`` unless torchvision's own extension did."""
    global _LIBRARY
    if _LIBRARY is not None:
        return
    missing = [
        name for name in _SCHEMAS if not torch._C._dispatch_has_kernel(f"torchvision::{name}")
    ]
    if not missing:
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        lib.define(_SCHEMAS[name])
        lib.impl(name, _missing_op, "CompositeExplicitAutograd")
    _LIBRARY = lib


install_torchvision_ops()
