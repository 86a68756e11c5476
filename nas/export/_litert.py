"""Timing a ``.tflite`` model with the LiteRT interpreter on this host."""

from __future__ import annotations

import statistics
import time
from typing import NamedTuple

import numpy as np

__all__ = ["Timing", "litert_version", "time_tflite"]


class Timing(NamedTuple):
    """A timed model: the median (``mean``, the name latency tables use) and the spread of
    ``count`` invocations, in ms."""

    mean: float
    std: float
    count: int


def litert_version() -> str:
    from importlib.metadata import version

    return f"ai-edge-litert {version('ai-edge-litert')}"


def time_tflite(
    model: bytes | str, *, threads: int = 1, warmup: int = 10, runs: int = 50, seed: int = 0
) -> Timing:
    """Median and std of ``runs`` timed invocations (ms) after ``warmup`` untimed ones, batch 1,
    on random input of the model's dtype. LiteRT's default CPU path (XNNPACK) is used."""
    from ai_edge_litert.interpreter import Interpreter

    from nas._compat import native_logs

    if runs < 1:
        raise ValueError(f"`runs >= 1` must hold, but got {runs=}")
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
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return Timing(mean=statistics.median(samples), std=statistics.pstdev(samples), count=runs)
