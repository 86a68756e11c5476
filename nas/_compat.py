"""Process set-up every nas process goes through (CLI, Ray workers, pytest): the torchvision/ofa
import trap (see ARCHITECTURE.md) and the settings that keep native libraries quiet.

PyPI's torchvision 0.28.0 is a CUDA build: its C extension does not load beside the CPU
wheel of torch, and ``import torchvision`` (which ``ofa`` needs) then fails with
``operator torchvision::nms does not exist``. Defining the two operators its Python side
registers fake kernels for makes the import work; nothing here ever calls them.
Every process (CLI, Ray workers, pytest) imports ``nas``, whose ``__init__`` imports this;
Ray workers also inherit the environment set here from the driver.

TensorFlow and LiteRT log from C++ through absl, which ignores ``TF_CPP_MIN_LOG_LEVEL`` for what
it logs while loading (oneDNN, CUDA stubs, ``cuInit``) and for the converter; ``native_logs()``
is the one way nas quiets them: around the few calls that load or run those libraries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import TextIO

_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TF_USE_LEGACY_KERAS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # MLflow's own INFO lines (database set-up) and its artifact download bars would break
    # through the CLI's progress bar; its warnings still show.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # ending a run on a tracking server prints "View run <name> at: <url>" on stdout (a line
    # per trial run); set_terminated also reads the run back for it (a second request a run)
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # Ray's driver logger: "Started a local Ray instance" and the like; warnings still show.
    "RAY_LOGGER_LEVEL": "warning",
}
for _key, _value in _ENV.items():
    os.environ.setdefault(_key, _value)

import torch  # noqa: E402

#: what C++ libraries write: absl/glog lines (``I0000 00:00:1795445574.397942  6942 port.cc:153]``),
#: absl's notice that it is not initialised, TFLite's ``INFO: Created ... delegate``, and the
#: calibrator's ``fully_quantize: 0, inference_type: 6, ...``
_NATIVE_LINE = re.compile(
    r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.+-]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|(INFO|WARNING): .*(TensorFlow Lite|XNNPACK|delegate)"
    r"|fully_quantize: \d+, inference_type: "
    r"|\[[\w.]+\.cpp:\d+\] )"  # ExecuTorch's runtime: [threadpool.cpp:66] Resetting ...
)
_native_logger = logging.getLogger("nas.native")


@contextlib.contextmanager
def native_logs() -> Iterator[None]:
    """Run a block with file descriptors 1 and 2, where C++ libraries print and log, sent to
    temporary files.

    Afterwards each native log line goes to the ``nas.native`` logger at DEBUG (``nas -v`` shows
    them) and everything else written there (Python's own output) back to ``sys.stdout`` or
    ``sys.stderr``, so no message is lost, only delayed. Exceptions pass through untouched.
    Process-wide while it runs (it redirects file descriptors): keep the block to the loading or
    converting call.
    """
    with contextlib.ExitStack() as stack:
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stack.enter_context(_captured(fd, stream))
        yield


@contextlib.contextmanager
def _captured(fd: int, stream: TextIO) -> Iterator[None]:
    stream.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            _replay(tmp.read().decode(errors="replace"), stream)


def _replay(text: str, stream: TextIO) -> None:
    other = []
    for line in text.splitlines():
        if _NATIVE_LINE.match(line):
            _native_logger.debug("%s", line)
        elif line.strip():
            other.append(line)
    if other:
        stream.write("\n".join(other) + "\n")
        stream.flush()


_LIBRARY: torch.library.Library | None = None
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def _missing_op(*args: object, **kwargs: object) -> torch.Tensor:
    raise NotImplementedError(
        "torchvision's compiled operators are not available with the CPU build of torch; "
        "nas never calls them."
    )


def install_torchvision_ops() -> None:
    """Define ``torchvision::nms``/``qnms`` unless torchvision's own extension did."""
    global _LIBRARY
    if _LIBRARY is not None:
        return
    missing = [
        name for name in _SCHEMAS if not torch._C._dispatch_has_kernel(f"torchvision::{name}")
    ]
    if not missing:
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        lib.define(_SCHEMAS[name])
        lib.impl(name, _missing_op, "CompositeExplicitAutograd")
    _LIBRARY = lib


install_torchvision_ops()
