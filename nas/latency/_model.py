"""``layer_table``: a config's latency summed from per-layer table entries (OFA's tables and
format), each layer at its own precision."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nas.errors import LatencyTableError
from nas.latency._base import Estimate, LatencyPredictor
from nas.latency._table import LatencyTable, dtype_key, load_table
from nas.registry import LATENCY_KINDS

__all__ = ["LayerTableLatency"]


@LATENCY_KINDS.register("layer_table")
class LayerTableLatency(LatencyPredictor):
    """Tables at ``<lut_dir>/<space>/<resolution>.yaml``, one per input resolution; a layer at
    precision ``p`` is the key ``dtype_key(layer.key, p)`` (``-dtype:int8`` suffix)."""

    kind = "layer_table"

    def _load(self) -> None:
        space = self.space
        folder = self.lut_dir / space.name
        if not folder.is_dir():
            raise LatencyTableError(
                f"{self.lut_dir} has no tables for space {space.name!r} (expected "
                f"{folder}/<resolution>.yaml)"
            )
        self.tables: dict[int, LatencyTable] = {
            int(path.stem): load_table(path)
            for path in sorted(folder.glob("*.yaml"))
            if path.stem.isdigit()
        }
        if not self.tables:
            raise LatencyTableError(f"no <resolution>.yaml tables in {folder}")

    def relocate(self, lut_dir: Path) -> None:
        """Read the tables from ``lut_dir`` instead (a copy of the same tables)."""
        self.lut_dir = Path(lut_dir)
        self._load()

    def reload(self, resolution: int | None = None) -> None:
        """Read the table of ``resolution`` (default: every table) again."""
        for r in [resolution] if resolution is not None else list(self.tables):
            self.tables[r] = load_table(self.table(r).path)

    def table(self, resolution: int) -> LatencyTable:
        try:
            return self.tables[resolution]
        except KeyError:
            raise LatencyTableError(
                f"{self.lut_dir / self.space.name} has no table for resolution {resolution} "
                f"(has {sorted(self.tables)})"
            ) from None

    def check_complete(self) -> None:
        """A table for every resolution of the space, with every layer it can produce (a
        host table measures what it lacks here, on demand, so it passes)."""
        from nas.errors import MissingLatencyKeyError
        from nas.latency._calibrate import measures_here

        if measures_here(self.device):
            return
        for resolution in self.space.resolutions:
            missing = self.missing_keys(resolution, self.space.all_layers(resolution))
            if missing:
                raise MissingLatencyKeyError(
                    f"{len(missing)} layer key(s) of space {self.space.name!r} are not in "
                    f"{self.table(resolution).path}, e.g. {missing[0]!r}: every subnet using "
                    "them would fail; calibrate them on the device (nas lut calibrate --device "
                    "adb:SERIAL)"
                )

    def missing_keys(self, resolution: int, layers: Any, dtype: str | None = None) -> list[str]:
        """The keys of ``layers`` (each at its own precision, else ``dtype``, else this
        predictor's) that the table of ``resolution`` lacks, sorted."""
        keys = {dtype_key(x.key, x.dtype or dtype or self.dtype) for x in layers}
        return sorted(keys - set(self.table(resolution).entries))

    def layer_keys(self, config: Any) -> list[str]:
        """The table key of every layer of ``config``, each at its own precision."""
        return [dtype_key(x.key, x.dtype or self.dtype) for x in self.space.layers(config)]

    def layer_sum(self, config: Any) -> tuple[float, float]:
        """(ms, std): the layers' entries summed, with the interpreter's per-invoke cost counted
        once rather than once per layer (``device.invoke_overhead_ms``; 0 where not measured);
        the spread assumes independent entries."""
        table = self.table(self.space.input_shape(config)[1])
        entries = [table.entry(key) for key in self.layer_keys(config)]
        invoke = self.device.invoke_overhead_ms.get(self.dtype, 0.0)
        ms = sum(e.mean for e in entries) - invoke * (len(entries) - 1)
        return ms, math.sqrt(sum(e.std**2 for e in entries))

    def predict(self, config: Any) -> Estimate:
        """:meth:`layer_sum` times the device's fitted ``scale``, plus its fitted per-model
        overhead, at the default precision (1 and 0 where not fitted, as for OFA's Note10 tables,
        whose prediction is then the plain sum of the published entries).

        Raises:
            MissingLatencyKeyError: a layer is not in the table (names the key and the file).
        """
        ms, std = self.layer_sum(config)
        scale = self.device.scale.get(self.dtype, 1.0)
        return Estimate(
            ms=scale * ms + self.device.overhead_ms.get(self.dtype, 0.0),
            std=scale * std,
            source=f"layer_table {self.lut_dir} ({self.dtype})",
        )
