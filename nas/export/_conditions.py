"""Whether this machine was quiet while something was timed on it.

A timing on a busy machine describes the load, not the model. Two signs are checked, around
every measured latency nas stores (exported files, NetAdapt's models, table entries measured on
demand, ``nas lut calibrate`` and ``validate`` on this host):

- the timing thread waited for a CPU (``CpuWatch``: other processes wanted every core);
- reference layers of a host table, timed with it, ran slower than the table says
  (``Reference``: a slow spell that the scheduler does not show, such as another tenant of a
  virtual machine's cores).

``timed_quietly`` repeats a busy timing a few times and keeps the quietest attempt; what is
still busy then is returned flagged (``Conditions.busy`` says why), never as a clean figure.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = [
    "ATTEMPTS",
    "REFERENCE_TOLERANCE",
    "WAITED_MAX",
    "Conditions",
    "CpuWatch",
    "Reference",
    "machine_busy",
    "timed_quietly",
]

logger = logging.getLogger(__name__)

#: a timing whose thread, when it wanted to run, waited for a CPU more than this share of the
#: time was taken on a machine busier than its cores (2 busy loops beside it on 2 cores: 0.35;
#: quiet, or one busy loop: 0.000)
WAITED_MAX = 0.10
#: reference layers timed more than this much slower than their table: the machine is not in
#: the state the table was timed in
REFERENCE_TOLERANCE = 0.10
#: how many times a busy timing is taken before it is kept, flagged
ATTEMPTS = 3
#: seconds between two attempts (a slow spell of a shared host lasts seconds)
PAUSE_S = 1.0

T = TypeVar("T")


def machine_busy() -> bool:
    """Other processes keep the cores busy (1-minute load above the core count, this process
    counted in): timings taken now would describe the load, not the machine."""
    return os.getloadavg()[0] > (os.cpu_count() or 1)


class CpuWatch:
    """Between ``__enter__`` and ``__exit__``, the share of the time this thread wanted a CPU
    that it spent waiting for one (``waited`` = run-queue wait / (wait + running), from the
    scheduler's own count in ``/proc/thread-self/schedstat``; ``nan`` where that is not
    there). 0 on a machine with a core free for it, whatever the thread's sleeps; other
    processes wanting every core make it wait."""

    def __enter__(self) -> CpuWatch:
        self.waited = math.nan
        self._start = _schedstat()
        return self

    def __exit__(self, *exc: object) -> None:
        ran, waited = (b - a for a, b in zip(self._start, _schedstat(), strict=True))
        if not math.isnan(waited) and ran + waited > 0:
            self.waited = waited / (ran + waited)


def _schedstat() -> tuple[float, float]:
    """(seconds running, seconds waiting on a run queue) of this thread so far."""
    try:
        ran, waited = Path("/proc/thread-self/schedstat").read_text().split()[:2]
        return int(ran) / 1e9, int(waited) / 1e9
    except (OSError, ValueError):
        return math.nan, math.nan


@dataclasses.dataclass(frozen=True)
class Reference:
    """Layer files of a host table and their entries (ms): timed again now, their ratio to the
    table says whether the machine runs at the speed the table was timed at."""

    files: tuple[bytes | str, ...] = dataclasses.field(repr=False)
    table_ms: tuple[float, ...]
    threads: int = 1
    table: str = ""  # the table file they come from
    keys: tuple[str, ...] = ()  # their keys in it

    def ratio_of(self, measured_ms: Sequence[float]) -> float:
        """The median of measured / table over the reference layers."""
        return statistics.median(m / t for m, t in zip(measured_ms, self.table_ms, strict=True))

    def ratio(self, runs: int = 200, rounds: int = 20) -> float:
        """The layers timed now (the host protocol's round-robin: ``runs`` each in ``rounds``
        rounds, about 0.1 s), against the table."""
        from nas.export._litert import time_round_robin

        timings = time_round_robin(list(self.files), threads=self.threads, runs=runs, rounds=rounds)
        return self.ratio_of([t.mean for t in timings])


@dataclasses.dataclass(frozen=True)
class Conditions:
    """The state of this machine while something was timed: ``waited`` (the timing thread's
    share of its runnable time spent waiting for a CPU; nan: unknown), ``reference_ratio``
    (reference layers timed with it, against their table; None: none were), ``attempts``
    (timings taken to get it)."""

    waited: float
    reference_ratio: float | None = None
    attempts: int = 1

    @property
    def busy(self) -> str | None:
        """Why the timing describes the load rather than the machine; None: the machine was
        quiet."""
        reasons = []
        if self.waited > WAITED_MAX:
            reasons.append(f"the timing waited for a CPU {self.waited:.0%} of its time")
        if self.reference_ratio is not None and self.reference_ratio > 1 + REFERENCE_TOLERANCE:
            reasons.append(f"reference layers ran {self.reference_ratio:.2f}x their table")
        return "; ".join(reasons) or None

    def severity(self) -> float:
        """How far past the limits (<= 1: quiet); attempts are compared by it."""
        waited = 0.0 if math.isnan(self.waited) else self.waited / WAITED_MAX
        ratio = 0.0
        if self.reference_ratio is not None:
            ratio = max(0.0, self.reference_ratio - 1) / REFERENCE_TOLERANCE
        return max(waited, ratio)

    def describe(self) -> str:
        waited = "unknown" if math.isnan(self.waited) else f"{self.waited:.0%}"
        ref = "" if self.reference_ratio is None else f", reference {self.reference_ratio:.2f}x"
        state = f"busy ({self.busy})" if self.busy else "quiet"
        return f"{state}: waited for a CPU {waited}{ref}, {self.attempts} attempt(s)"


def timed_quietly(
    timing: Callable[[], T],
    *,
    reference: Reference | None = None,
    ratio: Callable[[T], float] | None = None,
    attempts: int = ATTEMPTS,
    pause_s: float = PAUSE_S,
    what: str = "a timing",
) -> tuple[T, Conditions]:
    """``timing()`` and the conditions it ran under, watched by :class:`CpuWatch` and, with a
    ``reference``, followed by the reference layers (or, with ``ratio``, the reference ratio
    read from the result: the layers were timed with it). While the machine is busy it is
    taken again (up to ``attempts`` in all, ``pause_s`` apart); the quietest attempt is
    returned, and one still busy is logged (its ``Conditions.busy`` says why). A ``timing()``
    that returns None timed nothing: it is returned at once, without the reference."""
    best: tuple[T, Conditions] | None = None
    for attempt in range(1, attempts + 1):
        with CpuWatch() as watch:
            result = timing()
            if result is None:  # nothing was timed (a format this host does not time)
                return result, Conditions(watch.waited, None, attempt)
            if ratio is not None:
                ref_ratio: float | None = ratio(result)
            else:
                ref_ratio = reference.ratio() if reference is not None else None
        conditions = Conditions(watch.waited, ref_ratio, attempt)
        if conditions.busy is None:
            return result, conditions
        if best is None or conditions.severity() < best[1].severity():
            best = (result, conditions)
        if attempt < attempts:
            time.sleep(pause_s)
    assert best is not None
    result, conditions = best
    conditions = dataclasses.replace(conditions, attempts=attempts)
    logger.warning("%s was timed on a busy machine (%s): flagged", what, conditions.describe())
    return result, conditions
