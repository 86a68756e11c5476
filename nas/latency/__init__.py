"""Latency per device: the protocol (``LatencyPredictor``, ``Estimate``, ``build_latency``), its
kinds (per-layer tables, whole-architecture tables), the table file format, calibration,
validation, and the few-shot fit of a new device from a few timings (``fit_fewshot``;
``fit_arch_table`` writes it as a table folder: ``nas lut fit``)."""

from nas.latency._android import AdbTarget
from nas.latency._arch import ArchTableLatency
from nas.latency._base import Estimate, LatencyPredictor
from nas.latency._build import build_latency
from nas.latency._calibrate import HostTimer, calibrate, host_device_info, measures_here
from nas.latency._fewshot import FewShotFit, choose_archs, fit_fewshot, smooth
from nas.latency._fit import (
    FitReport,
    fit_arch_table,
    fit_layer_table,
    read_timings,
    suggest_archs,
    suggest_subnets,
    time_here,
)
from nas.latency._host import fill_for_configs, fill_missing, host_reference, reference_for
from nas.latency._model import LayerTableLatency, boundary_layers
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
from nas.latency._validate import (
    measure_subnets,
    scatter_plot,
    subnet_tflite,
    validation_report,
)

__all__ = [
    "HostTimer",
    "AdbTarget",
    "ArchTableLatency",
    "DeviceInfo",
    "Entry",
    "Estimate",
    "FewShotFit",
    "FitReport",
    "LatencyPredictor",
    "LatencyTable",
    "LayerTableLatency",
    "build_latency",
    "calibrate",
    "choose_archs",
    "fit_fewshot",
    "fit_arch_table",
    "fit_layer_table",
    "suggest_subnets",
    "time_here",
    "read_timings",
    "suggest_archs",
    "smooth",
    "boundary_layers",
    "fill_for_configs",
    "fill_missing",
    "host_reference",
    "reference_for",
    "host_device_info",
    "measure_subnets",
    "measures_here",
    "scatter_plot",
    "subnet_tflite",
    "validation_report",
    "dtype_key",
    "load_device",
    "load_table",
    "write_device",
    "write_table",
]
