"""``ofa_mbv3_small``: OFA's elastic dimensions for small grayscale images (Fashion-MNIST, 28 px).

Stride-1 stem, four narrower stages (28 -> 14 -> 7 -> 7 -> 4 at 28 px), kernel {3,5,7},
expand {3,4,6}, depth {1,2,3,4}, resolution {12, 16, 20, 24, 28} (32 px was left out: ~1.3x the
training cost within the 2-hour, 2-core training budget). Depth 1 and the resolutions below 24
reach below the fastest small peers (Keras MobileNetV2-0.35 at 32 px): the smallest subnet,
``r12_k3e3_k3e3_k3e3_k3e3``, runs in 0.037 ms where MobileNetV2-0.35 takes 0.047-0.049 ms and the
smallest of depth 2 at 24 px 0.151 ms (LiteRT fp32, 1 thread, a 2-core AMD EPYC host, timed side
by side).
"""

from __future__ import annotations

import dataclasses

from search_spaces._mbv3 import ElasticMBV3Space, MBV3Definition, StageDef

__all__ = ["OFA_MBV3_SMALL_DEFINITION", "ofa_mbv3_small"]

OFA_MBV3_SMALL_DEFINITION = MBV3Definition(
    in_channels=1,
    stem_width=16,
    stem_stride=1,
    first_block_width=16,
    stages=(
        StageDef(24, 2, "relu", False),
        StageDef(40, 2, "relu", True),
        StageDef(64, 1, "h_swish", False),
        StageDef(96, 2, "h_swish", True),
    ),
    final_expand_width=384,
    feature_mix_width=512,
    n_classes=10,
    kernels=(3, 5, 7),
    expands=(3, 4, 6),
    depths=(1, 2, 3, 4),
    resolutions=(12, 16, 20, 24, 28),
    resolution_slots=(12, 16, 20, 24, 28),
)


def ofa_mbv3_small(*, n_classes: int = 10, in_channels: int = 1) -> ElasticMBV3Space:
    """The space for a dataset with ``n_classes`` classes and ``in_channels`` channels."""
    definition = dataclasses.replace(
        OFA_MBV3_SMALL_DEFINITION, n_classes=n_classes, in_channels=in_channels
    )
    return ElasticMBV3Space(name="ofa_mbv3_small", definition=definition)
