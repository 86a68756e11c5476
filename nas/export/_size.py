"""The size of a config's TFLite file, predicted from the config alone (the search's third
objective, next to top-1 and latency): no model is built and nothing is exported.

Each priced layer (``space.layers(config)``) is built alone once (``space.layer_module``, cached
by layer) to count its convolution / linear weights ``W`` and their output channels ``C`` (one
bias each once BatchNorm is folded). A layer stored at precision ``d`` takes
``W * WEIGHT_BYTES[d] + C * CHANNEL_BYTES[d] + LAYER_BYTES`` bytes, the file ``FILE_BYTES`` more:

- fp32: 4-byte weights and biases;
- fp16: 2-byte weights (LiteRT dequantizes them at load), fp32 biases;
- int8: 1-byte weights, int32 biases, and per output channel a float32 scale and an int64 zero
  point for the weights and again for the bias (4 + 12 + 12 bytes);
- ``LAYER_BYTES``: what a layer adds besides its constants (tensor records and names, which carry
  the module path, operator records, activation quantization parameters), and ``FILE_BYTES``:
  least-squares fitted on 14 files of ``apq(ofa_mbv3_small)`` configs exported by ``nas`` (fp32,
  int8 and mixed; 832 KiB to 4.4 MiB), whose largest error was 0.9%. ``benchmarks/apq.py`` and
  ``benchmarks/apq_export.py`` print the prediction next to every file they export.

A space that cannot build its layers alone (``layer_module`` raises ``ConfigError``) is priced
from ``space.params(config)`` at its layers' most common precision (biases not told apart).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from nas.errors import ConfigError

__all__ = ["CHANNEL_BYTES", "FILE_BYTES", "LAYER_BYTES", "WEIGHT_BYTES", "predicted_size_bytes"]

WEIGHT_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
CHANNEL_BYTES = {"fp32": 4, "fp16": 4, "int8": 28}
LAYER_BYTES = 3888
FILE_BYTES = -18065


@functools.lru_cache(maxsize=65536)
def _layer_counts(space: Any, layer: Any) -> tuple[int, int]:
    """(weights, output channels) of the convolutions and linear layers of ``layer`` alone."""
    import torch

    weights = channels = 0
    for module in space.layer_module(layer).modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            weights += module.weight.numel()
            channels += module.weight.shape[0]
    return weights, channels


def predicted_size_bytes(space: Any, config: Any, dtype: str | None = None) -> int:
    """Bytes of ``config``'s TFLite file with every layer at ``dtype``, or (None) each layer at
    its own ``LayerSpec.dtype`` (a per-layer precision config's ``tflite-mixed`` file), fp32
    where it has none.

    Raises:
        ValueError: a precision without a size model (not in :data:`WEIGHT_BYTES`).
    """
    layers = space.layers(config)
    precisions = [dtype or layer.dtype or "fp32" for layer in layers]
    for d in set(precisions):
        if d not in WEIGHT_BYTES:
            raise ValueError(f"no TFLite size model for precision {d!r}; known: {WEIGHT_BYTES}")
    try:
        counts = [_layer_counts(space, dataclasses.replace(layer, dtype=None)) for layer in layers]
    except ConfigError:  # no layer modules: the whole model's parameters at one precision
        weight_bytes = WEIGHT_BYTES[max(set(precisions), key=precisions.count)]
        return int(space.params(config) * weight_bytes) + FILE_BYTES + LAYER_BYTES * len(layers)
    total = FILE_BYTES
    for d, (weights, channels) in zip(precisions, counts, strict=True):
        total += weights * WEIGHT_BYTES[d] + channels * CHANNEL_BYTES[d] + LAYER_BYTES
    return int(total)
