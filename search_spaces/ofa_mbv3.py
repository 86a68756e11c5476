"""``ofa_mbv3``: the OFA MobileNetV3 w1.2 ImageNet space exactly as published (priced by Note10)."""

from __future__ import annotations

from search_spaces._mbv3 import ElasticMBV3Space, MBV3Definition, StageDef, make_divisible

__all__ = ["OFA_MBV3_DEFINITION", "ofa_mbv3"]

_W = 1.2  # OFA's published width multiplier
_w = [make_divisible(c * _W) for c in (16, 16, 24, 40, 80, 112, 160, 960, 1280)]

OFA_MBV3_DEFINITION = MBV3Definition(
    in_channels=3,
    stem_width=_w[0],
    stem_stride=2,
    first_block_width=_w[1],
    stages=(
        StageDef(_w[2], 2, "relu", False),
        StageDef(_w[3], 2, "relu", True),
        StageDef(_w[4], 2, "h_swish", False),
        StageDef(_w[5], 1, "h_swish", True),
        StageDef(_w[6], 2, "h_swish", True),
    ),
    final_expand_width=_w[7],
    feature_mix_width=_w[8],
    n_classes=1000,
    kernels=(3, 5, 7),
    expands=(3, 4, 6),
    depths=(2, 3, 4),
    resolutions=(160, 176, 192, 208, 224),
    resolution_slots=tuple(range(112, 225, 16)),
)


def ofa_mbv3(*, n_classes: int = 1000, in_channels: int = 3) -> ElasticMBV3Space:
    """The published space; ``n_classes``/``in_channels`` other than ImageNet's change the head
    and stem only (the Note10 tables then no longer cover those two layers)."""
    import dataclasses

    definition = dataclasses.replace(
        OFA_MBV3_DEFINITION, n_classes=n_classes, in_channels=in_channels
    )
    return ElasticMBV3Space(name="ofa_mbv3", definition=definition)
