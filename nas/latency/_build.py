"""``build_latency``: the latency predictor of a device entry, through the registry of latency
kinds, with host tables checked (and re-timed) on this machine first. Above both the protocol
(``_base``) and the host re-timing (``_host``), which prices with the predictors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nas.latency._base import LatencyPredictor
from nas.latency._table import load_device
from nas.registry import LATENCY_KINDS

if TYPE_CHECKING:
    from search_spaces import SearchSpace

__all__ = ["build_latency"]


def build_latency(
    lut_dir: str | Path, space: SearchSpace, *, dtype: str = "fp32"
) -> LatencyPredictor:
    """The latency predictor of a device entry: ``lut_dir/device.yaml``'s ``kind`` (default
    ``layer_table``) picks the implementation from ``nas.registry.LATENCY_KINDS``. A host table
    timed on another machine is re-timed on this one first (``nas.latency._host``).

    Raises:
        LatencyTableError: the folder, its device.yaml or its tables are missing or malformed.
        RegistryError: device.yaml names an unknown kind.
    """
    from nas.latency._host import host_table, is_host_table, retime_enabled

    device = load_device(Path(lut_dir) / "device.yaml")
    # a host table timed on another machine is priced with this machine's re-timing
    if is_host_table(device) and retime_enabled():
        lut_dir = host_table(lut_dir, space)
        device = load_device(Path(lut_dir) / "device.yaml")
    return LATENCY_KINDS.get(device.kind)(lut_dir, space, dtype=dtype, device=device)
