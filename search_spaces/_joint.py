"""``apq(base)``: architecture, pruned widths and per-layer precision in one space (APQ's joint
search, Wang et al. CVPR 2020), composed from the two wrappers:
``mixed_precision(pruned(base, shares=APQ_SHARES), ("fp32", "fp16", "int8"))``.

A config string shows all three: ``r24_k3355e4466_..._p40-72-...-288_qf2i5h3...`` (the base
config, ``_p`` and each prunable unit's width, ``_q`` and runs of per-layer precisions).
"""

from __future__ import annotations

from search_spaces._base import SearchSpace
from search_spaces._mixed import MixedPrecisionSpace, mixed_precision
from search_spaces._pruned import pruned

__all__ = ["APQ_DTYPES", "APQ_SHARES", "apq", "int8"]

#: widths as shares of each slot's largest: down to half, the narrowest expansion an elastic
#: MobileNetV3 supernet (e3 of e6, its channels sorted by importance) is trained at
APQ_SHARES = (0.5, 0.625, 0.75, 0.875, 1.0)
APQ_DTYPES = ("fp32", "fp16", "int8")


def apq(base: SearchSpace) -> MixedPrecisionSpace:
    """The joint space over ``base`` (a :class:`Prunable` space)."""
    return mixed_precision(pruned(base, shares=APQ_SHARES), APQ_DTYPES)


def int8(base: SearchSpace) -> MixedPrecisionSpace:
    """``base`` with every layer at int8: an architecture search for an int8 deployment, each
    config scored by simulating its quantization (as ``apq`` scores its int8 layers) and priced
    at the table's int8 entries; config strings end ``_qi<n>``."""
    return mixed_precision(base, ("int8",))
