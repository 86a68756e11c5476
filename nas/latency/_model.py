"""``LatencyModel``: a subnet's latency on one device, summed from its layer table entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.errors import LatencyTableError
from nas.latency._table import DeviceInfo, LatencyTable, dtype_key, load_device, load_table
from search_spaces import SearchSpace

__all__ = ["LatencyModel"]


class LatencyModel:
    """Built once per (device folder, space); :meth:`predict` is then a few dict look-ups.

    Tables live at ``<lut_dir>/<space>/<resolution>.yaml`` beside ``<lut_dir>/device.yaml``.
    """

    def __init__(self, lut_dir: str | Path, space: SearchSpace) -> None:
        self.lut_dir = Path(lut_dir)
        self.space = space
        self.device: DeviceInfo = load_device(self.lut_dir / "device.yaml")
        folder = self.lut_dir / space.name
        if not folder.is_dir():
            raise LatencyTableError(
                f"{self.lut_dir} has no tables for space {space.name!r} (expected "
                f"{folder}/<resolution>.yaml)"
            )
        self.tables: dict[int, LatencyTable] = {}
        for path in sorted(folder.glob("*.yaml")):
            if path.stem.isdigit():
                self.tables[int(path.stem)] = load_table(path)
        if not self.tables:
            raise LatencyTableError(f"no <resolution>.yaml tables in {folder}")

    def reload(self, resolution: int) -> None:
        """Read the table of ``resolution`` again (after entries were added to its file)."""
        self.tables[resolution] = load_table(self.table(resolution).path)

    @property
    def name(self) -> str:
        return self.device.name

    def name_at(self, dtype: str) -> str:
        """The device's name at a precision: the same table priced at int8 is another device
        (``host-x86-litert``, ``host-x86-litert-int8``)."""
        return self.device.name if dtype == "fp32" else f"{self.device.name}-{dtype}"

    def table(self, resolution: int) -> LatencyTable:
        try:
            return self.tables[resolution]
        except KeyError:
            raise LatencyTableError(
                f"{self.lut_dir / self.space.name} has no table for resolution {resolution} "
                f"(has {sorted(self.tables)})"
            ) from None

    def layer_latencies(self, config: Any, dtype: str = "fp32") -> list[tuple[str, float]]:
        table = self.table(config.resolution)
        return [
            (key, table.mean(key))
            for key in (dtype_key(layer.key, dtype) for layer in self.space.layers(config))
        ]

    def layer_sum(self, config: Any, dtype: str = "fp32") -> float:
        """The layers' entries summed, with the interpreter's per-invoke cost counted once
        rather than once per layer (``device.invoke_overhead_ms``; 0 where not measured)."""
        latencies = [ms for _, ms in self.layer_latencies(config, dtype)]
        invoke = self.device.invoke_overhead_ms.get(dtype, 0.0)
        return sum(latencies) - invoke * (len(latencies) - 1)

    def predict(self, config: Any, dtype: str = "fp32") -> float:
        """Predicted latency in ms: :meth:`layer_sum` plus the device's fitted per-model
        overhead for ``dtype`` (both 0 where not measured, as for OFA's Note10 tables, whose
        prediction is then the plain sum of the published entries).

        Raises:
            MissingLatencyKeyError: a layer is not in the table (names the key and the file).
        """
        return self.layer_sum(config, dtype) + self.device.overhead_ms.get(dtype, 0.0)
