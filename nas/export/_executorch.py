"""ExecuTorch programs (``.pte``): PyTorch's mobile path since PyTorch Lite (``.ptl``,
``optimize_for_mobile``) was deprecated. ``torch.export`` at batch 1, lowered to the XNNPACK
backend (``to_edge_transform_and_lower``), run here by ExecuTorch's own runtime (the pybindings
of the ``executorch`` wheel), as an app runs the same file on a phone."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from nas.export._base import Exporter, ExportInputs, Runner
from nas.export._litert import Timing

__all__ = ["ExecuTorchExporter"]

#: the pip line of the runtime a registered ``.pte`` needs beside nas's own
REQUIREMENT = "executorch==1.5.1"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ExecuTorch 1.5.1's notices that are not the user's to act on: its runtime API marked
    experimental (on import) and torch's ``LeafSpec`` deprecation inside ``torch.export``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This API is experimental")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="executorch")
        yield


class _ExecuTorchRunner:
    """One loaded program: NCHW float32 batch -> logits, one image per call (the program was
    exported at batch 1, as a phone runs it)."""

    def __init__(self, path: Path, threads: int) -> None:
        from nas._compat import native_logs

        with _quiet():
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime
        with native_logs():  # the runtime's cpuinfo notices on first load
            portable_lib._unsafe_reset_threadpool(threads)  # XNNPACK's threads (process-wide)
            self.method = Runtime.get().load_program(str(path)).load_method("forward")

    def invoke(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.execute([x])[0]

    def __call__(self, x_nchw: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(x_nchw, dtype=np.float32))
        return np.concatenate([self.invoke(x[i : i + 1]).numpy() for i in range(len(x))])


@dataclasses.dataclass(frozen=True, repr=False)
class ExecuTorchExporter(Exporter):
    """A ``.pte`` program, fp32, every operator delegated to XNNPACK where it can be (the rest
    runs on ExecuTorch's portable kernels). Latency is measured in ExecuTorch's runtime on this
    host; no table prices it (the host tables are LiteRT's)."""

    precision: str = "fp32"
    runtime: str = dataclasses.field(default="executorch", init=False)
    suffix: str = dataclasses.field(default=".pte", init=False)
    layout: str = dataclasses.field(default="NCHW", init=False)
    parity_atol: float | None = dataclasses.field(default=1e-3, init=False)
    requirements: tuple[str, ...] = dataclasses.field(default=(REQUIREMENT,), init=False)

    def __post_init__(self) -> None:
        if self.precision != "fp32":
            raise ValueError(f"`precision` must be fp32, but got {self.precision!r}")

    def export(self, model: torch.nn.Module, inputs: ExportInputs, path: Path) -> Path:
        from nas._compat import native_logs
        from nas.export._convert import UnsupportedOpError

        with _quiet():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
                XnnpackPartitioner,
            )
            from executorch.exir import to_edge_transform_and_lower

        example = (torch.zeros(1, *inputs.input_shape),)
        try:
            with native_logs(), _quiet():
                exported = torch.export.export(model, example)
                program = to_edge_transform_and_lower(
                    exported, partitioner=[XnnpackPartitioner()]
                ).to_executorch()
        except torch._dynamo.exc.Unsupported as e:  # an operation torch.export cannot trace
            raise UnsupportedOpError(f"ExecuTorch cannot export this model: {e}") from e
        path.write_bytes(program.buffer)
        return path

    def open(self, path: Path, threads: int = 1) -> Runner:
        return _ExecuTorchRunner(Path(path), threads)

    def time(self, path: Path, threads: int = 1) -> Timing | None:
        from nas.export._litert import round_robin

        runner = _ExecuTorchRunner(Path(path), threads)
        shape = runner.method.metadata.input_tensor_meta(0).sizes()
        x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
        for _ in range(10):  # warm-up, as LiteRT files are timed
            runner.invoke(x)
        # 200 runs in the host protocol's rounds, as tables and LiteRT files are timed
        return round_robin([lambda: runner.invoke(x)], runs=200)[0]
