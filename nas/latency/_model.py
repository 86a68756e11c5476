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
from search_spaces import LayerSpec

__all__ = ["LayerTableLatency", "boundary_layers"]


def boundary_layers(layers: list[LayerSpec]) -> list[LayerSpec]:
    """The QUANTIZE (float -> int8) and DEQUANTIZE (int8 -> float) ops a mixed-precision file
    runs between ``layers`` (in order, each with its ``dtype``): at the input of an int8 layer
    after a float one (or the model's float input), at the input of a float layer after an int8
    one, and at the output of a last int8 layer (the model's output is float). Their table keys
    are ``quantize-input:<shape>-output:<shape>`` (no precision suffix)."""
    out, previous_int8 = [], False
    for layer in layers:
        int8 = layer.dtype == "int8"
        if int8 != previous_int8:
            op = "quantize" if int8 else "dequantize"
            out.append(LayerSpec(op, layer.input_shape, layer.input_shape))
        previous_int8 = int8
    if previous_int8:
        out.append(LayerSpec("dequantize", layers[-1].output_shape, layers[-1].output_shape))
    return out


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

    def _precisions(self, layers: list[LayerSpec]) -> set[str]:
        """The precisions ``layers`` run at (each its own, else this predictor's)."""
        return {x.dtype or self.dtype for x in layers}

    def _priced(self, layers: list[LayerSpec]) -> list[LayerSpec]:
        if len(self._precisions(layers)) > 1:
            return layers + boundary_layers(layers)
        return layers

    def priced_layers(self, config: Any) -> list[LayerSpec]:
        """What a config's latency sums: its layers and, where they run at more than one
        precision, the QUANTIZE / DEQUANTIZE ops between them (:func:`boundary_layers`). A
        config whose layers all run at one precision is that precision's model, as a uniform
        file is priced."""
        return self._priced(self.space.layers(config))

    def layer_keys(self, config: Any) -> list[str]:
        """The table key of everything :meth:`priced_layers` lists, each at its own precision."""
        return [dtype_key(x.key, x.dtype or self.dtype) for x in self.priced_layers(config)]

    def layer_sum(self, config: Any) -> tuple[float, float]:
        """(ms, std): the layers' entries summed, with the interpreter's per-invoke cost counted
        once rather than once per layer (``device.invoke_overhead_ms`` at each entry's
        precision; 0 where not measured); the spread assumes independent entries."""
        return self._layer_sum(config, self.space.layers(config))

    def _layer_sum(self, config: Any, layers: list[LayerSpec]) -> tuple[float, float]:
        table = self.table(self.space.input_shape(config)[1])
        invoke = self.device.invoke_overhead_ms
        ms = std2 = 0.0
        for x in self._priced(layers):
            dtype = x.dtype or self.dtype
            entry = table.entry(dtype_key(x.key, dtype))
            ms += entry.mean - invoke.get(dtype, 0.0)
            std2 += entry.std**2
        precisions = self._precisions(layers)  # one invoke, at the model's precision
        model_dtype = next(iter(precisions)) if len(precisions) == 1 else self.dtype
        return ms + invoke.get(model_dtype, 0.0), math.sqrt(std2)

    def whole_model_fit(self, config: Any) -> tuple[float, float]:
        """(scale, overhead_ms) that :meth:`predict` applies to ``config``'s layer sum: the
        device's fitted ones at the precision all its layers run at (1 and 0 where not
        fitted); for a config whose layers run at several precisions, 1 and 0 (the fits are of
        whole models at one precision: on this host kind fp32's 1.11x overshot 50 mixed files
        by 15%, while their layer sums were within 3%)."""
        return self._whole_model_fit(self.space.layers(config))

    def _whole_model_fit(self, layers: list[LayerSpec]) -> tuple[float, float]:
        precisions = self._precisions(layers)
        if len(precisions) > 1:
            return 1.0, 0.0
        (dtype,) = precisions
        return self.device.scale.get(dtype, 1.0), self.device.overhead_ms.get(dtype, 0.0)

    def predict(self, config: Any) -> Estimate:
        """:meth:`layer_sum` times the device's fitted ``scale``, plus its fitted per-model
        overhead, at the default precision (:meth:`whole_model_fit`; 1 and 0 where not fitted,
        as for OFA's Note10 tables, whose prediction is then the plain sum of the published
        entries).

        Raises:
            MissingLatencyKeyError: a layer is not in the table (names the key and the file).
        """
        layers = self.space.layers(config)  # once: the proposers price thousands per round
        ms, std = self._layer_sum(config, layers)
        scale, overhead = self._whole_model_fit(layers)
        return Estimate(
            ms=scale * ms + overhead,
            std=scale * std,
            source=f"layer_table {self.lut_dir} ({self.dtype})",
        )
