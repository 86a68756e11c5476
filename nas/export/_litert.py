"""Timing a ``.tflite`` model with the LiteRT interpreter on this host, and which host it is."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "ROUNDS",
    "HostFingerprint",
    "Timing",
    "litert_version",
    "round_robin",
    "time_round_robin",
    "time_tflite",
]


class Timing(NamedTuple):
    """A timed model: the median (``mean``, the name latency tables use) and the spread of
    ``count`` invocations, in ms."""

    mean: float
    std: float
    count: int


def litert_version() -> str:
    from importlib.metadata import version

    return f"ai-edge-litert {version('ai-edge-litert')}"


#: rounds every host timing is split into (see :func:`time_round_robin`)
ROUNDS = 10


def time_tflite(
    model: bytes | str,
    *,
    threads: int = 1,
    warmup: int = 10,
    runs: int = 100,
    seed: int = 0,
    rounds: int = ROUNDS,
) -> Timing:
    """One model's latency (ms) on this machine: ``runs`` timed invocations after ``warmup``
    untimed ones, batch 1, on random input of the model's dtype, in ``rounds`` rounds (the
    fastest round's median counts; see :func:`time_round_robin`). LiteRT's default CPU path
    (XNNPACK) is used."""
    return time_round_robin(
        [model], threads=threads, warmup=warmup, runs=runs, seed=seed, rounds=rounds
    )[0]


def time_round_robin(
    models: Sequence[bytes | str],
    *,
    threads: int = 1,
    warmup: int = 10,
    runs: int = 100,
    seed: int = 0,
    rounds: int = ROUNDS,
    span_s: float = 0.0,
) -> list[Timing]:
    """Each model's latency on this machine, robust to a machine whose speed drifts.

    Every model gets its own interpreter (``warmup`` untimed runs first); then ``rounds``
    rounds each take, for every model in turn, the median of ``runs // rounds`` invocations
    (``runs`` in all per model). A model's figure (``Timing.mean``) is its fastest round's
    median; ``std`` is the spread of its round medians; ``count`` its timed invocations.

    Why the fastest of many short rounds: a shared 2-core host flips between its undisturbed
    speed and slow spells (another tenant on the same cores) many times a second, up to 2x
    slower, for seconds to minutes (measured on this project's hosts, ``benchmarks/host_noise.py``).
    The undisturbed speed is the one figure that repeats (within 1-2% across a minute, where
    medians of 30 runs moved by up to 2x), so tables, the host check and the whole models they
    are checked against are all taken at it; many short rounds reach it where three long ones
    may all fall in one slow spell. ``span_s`` spreads the rounds over at least that many
    seconds (idle pauses between them), so that a slow spell longer than the timing itself
    cannot cover every round.
    """
    interpreters = [_ready_interpreter(m, threads, seed, warmup) for m in models]
    return round_robin([i.invoke for i in interpreters], runs=runs, rounds=rounds, span_s=span_s)


def round_robin(
    invokes: Sequence[Callable[[], Any]],
    *,
    runs: int = 100,
    rounds: int = ROUNDS,
    span_s: float = 0.0,
) -> list[Timing]:
    """The host timing protocol of :func:`time_round_robin` over ready-to-run models of any
    runtime: ``invokes[i]()`` runs model ``i`` once (warmed up already)."""
    if runs < 1 or rounds < 1 or span_s < 0:
        raise ValueError(
            f"`runs >= 1`, `rounds >= 1` and `span_s >= 0` must hold, but got {runs=}, "
            f"{rounds=}, {span_s=}"
        )
    rounds = min(rounds, runs)
    per_round = runs // rounds
    medians: list[list[float]] = [[] for _ in invokes]
    began = time.perf_counter()
    for r in range(rounds):
        if span_s:  # idle until this round's share of the span has passed
            time.sleep(max(0.0, began + span_s * r / rounds - time.perf_counter()))
        for invoke, out in zip(invokes, medians, strict=True):
            samples = []
            for _ in range(per_round):
                start = time.perf_counter_ns()
                invoke()
                samples.append((time.perf_counter_ns() - start) / 1e6)
            out.append(statistics.median(samples))
    return [
        Timing(
            mean=min(m),
            std=statistics.pstdev(m) if len(m) > 1 else 0.0,
            count=per_round * rounds,
        )
        for m in medians
    ]


def _ready_interpreter(model: bytes | str, threads: int, seed: int, warmup: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    from nas._compat import native_logs

    kwargs = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    with native_logs():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" notice
        interpreter = Interpreter(num_threads=threads, **kwargs)
        interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype = detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, size=detail["shape"], dtype=dtype)
        else:
            data = rng.standard_normal(detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], data)
    for _ in range(warmup):
        interpreter.invoke()
    return interpreter


@dataclasses.dataclass(frozen=True)
class HostFingerprint:
    """What makes two hosts time the same model alike: CPU model and flags, cores, runtime."""

    cpu: str
    cores: int
    flags_sha: str
    runtime_version: str

    @classmethod
    def here(cls) -> HostFingerprint:
        info: dict[str, str] = {}
        try:  # the first core's lines
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                name, _, value = line.partition(":")
                info.setdefault(name.strip(), value.strip())
        except OSError:
            pass
        cpu = info.get("model name") or platform.processor() or platform.machine()
        flags = " ".join(sorted(info.get("flags", "").split()))
        return cls(
            cpu=cpu,
            cores=os.cpu_count() or 1,
            flags_sha=hashlib.sha256(flags.encode()).hexdigest()[:16],
            runtime_version=litert_version(),
        )

    def key(self) -> str:
        """A short stable name of the machine kind (the folder its re-timed tables go to)."""
        text = f"{self.cpu}|{self.cores}|{self.flags_sha}|{self.runtime_version}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        return f"{self.cpu}, {self.cores} cores, {self.runtime_version} [{self.key()}]"
