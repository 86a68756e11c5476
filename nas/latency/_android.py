"""Per-layer calibration on an Android phone over ``adb`` with TFLite's ``benchmark_model``.

The phone boundary is this module alone: it builds ``adb`` command lines, runs them, and parses
``benchmark_model``'s output. Pin the measurement: fixed ``--num_threads``, a ``taskset`` CPU mask
on the big cores, and (on a rooted phone) the CPU governor set to ``performance``.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tempfile
from pathlib import Path

from nas.errors import NASError
from nas.latency._table import Entry
from search_spaces import LayerSpec

__all__ = ["AdbTarget", "AdbError", "parse_benchmark_output"]

_NUM = r"([0-9.]+(?:e[+-]?\d+)?)"
_STATS_RE = re.compile(
    rf"count=(\d+) first={_NUM} curr={_NUM} min={_NUM} max={_NUM} avg={_NUM} "
    rf"std={_NUM}(?:.*?median={_NUM})?"
)


class AdbError(NASError, RuntimeError):
    """An adb or benchmark_model call failed; the message holds the command and its output."""


def parse_benchmark_output(text: str) -> Entry:
    """Parse ``benchmark_model``'s output: the last ``count=… avg=… std=…`` line is the timed runs
    (the one before it is the warm-up). Microseconds in, milliseconds out; ``mean`` is the median
    where the tool prints one (newer builds), else its average."""
    matches = _STATS_RE.findall(text)
    if not matches:
        raise AdbError(
            f"benchmark_model output has no timing line (count=… avg=… std=…):\n{text[-2000:]}"
        )
    count, _first, _curr, _min, _max, avg, std, median = matches[-1]
    centre = float(median) if median else float(avg)
    return Entry(mean=centre / 1000.0, std=float(std) / 1000.0, count=int(count))


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdbTarget:
    """One phone: ``serial`` (``adb devices``), the local ``benchmark_model`` binary to push,
    threads and CPU affinity mask (hex, e.g. ``f0`` for cores 4-7)."""

    serial: str
    benchmark_model: Path
    threads: int = 1
    cpu_mask: str = "f0"
    warmup_runs: int = 10
    num_runs: int = 50
    adb: str = "adb"
    remote_dir: str = "/data/local/tmp/nas"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-fA-F]+", self.cpu_mask):
            raise ValueError(f"cpu_mask must be hexadecimal, but got {self.cpu_mask!r}")
        if self.num_runs < 50:
            raise ValueError(f"`num_runs >= 50` must hold, but got {self.num_runs}")

    def adb_command(self, *args: str) -> list[str]:
        return [self.adb, "-s", self.serial, *args]

    def benchmark_command(self, remote_model: str) -> list[str]:
        return self.adb_command(
            "shell",
            "taskset",
            self.cpu_mask,
            f"{self.remote_dir}/benchmark_model",
            f"--graph={remote_model}",
            f"--num_threads={self.threads}",
            f"--warmup_runs={self.warmup_runs}",
            f"--num_runs={self.num_runs}",
            "--use_xnnpack=true",
        )

    def _run(self, cmd: list[str], timeout: float = 300) -> str:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as e:
            raise AdbError(
                f"{cmd[0]!r} not found: install Android platform-tools or pass --adb"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise AdbError(f"timed out after {timeout}s: {' '.join(cmd)}") from e
        if proc.returncode != 0:
            raise AdbError(
                f"`{' '.join(cmd)}` exited "
                f"{proc.returncode}:\n{proc.stdout[-1000:]}{proc.stderr[-1000:]}"
            )
        return proc.stdout + proc.stderr

    def setup(self) -> None:
        """Create the remote folder and push ``benchmark_model`` (once per calibration)."""
        if not Path(self.benchmark_model).is_file():
            raise AdbError(f"benchmark_model binary not found: {self.benchmark_model}")
        self._run(self.adb_command("shell", "mkdir", "-p", self.remote_dir))
        self._run(
            self.adb_command(
                "push", str(self.benchmark_model), f"{self.remote_dir}/benchmark_model"
            )
        )
        self._run(self.adb_command("shell", "chmod", "755", f"{self.remote_dir}/benchmark_model"))

    def measure(self, model: bytes, layer: LayerSpec) -> Entry:
        """Push one layer file, benchmark it, parse the result."""
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "layer.tflite"
            local.write_bytes(model)
            remote = f"{self.remote_dir}/layer.tflite"
            self._run(self.adb_command("push", str(local), remote))
            return parse_benchmark_output(self._run(self.benchmark_command(remote)))
