"""``arch_table``: one measured entry per whole architecture (e.g. HELP's NAS-Bench-201 phone
latencies), looked up by the config's string form; nothing is summed or guessed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.latency._base import Estimate, LatencyPredictor
from nas.latency._table import LatencyTable, dtype_key, load_table
from nas.registry import LATENCY_KINDS

__all__ = ["ArchTableLatency", "arch_table_path"]


def arch_table_path(lut_dir: Path, space: str) -> Path:
    """``<lut_dir>/<space>/arch.yaml.gz`` where it exists, else ``.../arch.yaml``."""
    packed = lut_dir / space / "arch.yaml.gz"
    return packed if packed.is_file() else lut_dir / space / "arch.yaml"


@LATENCY_KINDS.register("arch_table")
class ArchTableLatency(LatencyPredictor):
    """The table ``<lut_dir>/<space>/arch.yaml`` (or ``arch.yaml.gz``, gzip-compressed: a table
    of thousands of architectures) maps ``str(config)`` (with a ``-dtype:`` suffix for
    fp16/int8, as layer keys) to ``{mean, std, count}`` in ms. A whole-architecture entry has
    one precision: a config whose layers carry precisions of their own is not in it."""

    kind = "arch_table"

    def _load(self) -> None:
        self.table: LatencyTable = load_table(arch_table_path(self.lut_dir, self.space.name))

    def reload(self) -> None:
        self.table = load_table(self.table.path)

    def predict(self, config: Any) -> Estimate:
        entry = self.table.entry(dtype_key(str(config), self.dtype))
        return Estimate(
            ms=entry.mean + self.device.overhead_ms.get(self.dtype, 0.0),
            std=entry.std,
            source=f"arch_table {self.lut_dir} ({self.dtype})",
        )
