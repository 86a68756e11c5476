"""Latency lookup tables per device: the file format, ``LatencyModel``, calibration, validation."""

from nas.latency._model import LatencyModel
from nas.latency._table import (
    DeviceInfo,
    Entry,
    LatencyTable,
    dtype_key,
    load_device,
    load_table,
    write_device,
    write_table,
)

__all__ = [
    "DeviceInfo",
    "Entry",
    "LatencyModel",
    "LatencyTable",
    "dtype_key",
    "load_device",
    "load_table",
    "write_device",
    "write_table",
]
