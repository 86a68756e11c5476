"""Filter pruning of a static OFA MobileNetV3 subnet, in place: a unit keeps the filters with the
largest scores (default: L2 norm, BatchNorm scale folded in), and every layer that reads them is
sliced to match.
What :class:`~search_spaces.ElasticMBV3Space`'s ``Prunable`` capability runs; unit names are
``blocks.<i>.mid`` (the expanded channels of block ``i``), ``final_expand`` and ``feature_mix``."""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._mbv3 import make_divisible

__all__ = ["filter_norms", "prune_unit", "unit_output", "unit_width"]


def _bn_scale(bn: nn.BatchNorm2d | None, n: int) -> torch.Tensor:
    if bn is None:
        return torch.ones(n)
    return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).abs()


def unit_output(model: nn.Module, unit: str) -> nn.Module:
    """The conv-BN-activation layer whose output filters ``unit`` prunes (its output is the
    activated filters: the inverted bottleneck, the final expand or the feature-mix layer)."""
    if unit.startswith("blocks."):
        return model.blocks[int(unit.split(".")[1])].conv.inverted_bottleneck
    if unit == "final_expand":
        return model.final_expand_layer
    if unit == "feature_mix":
        return model.feature_mix_layer
    raise ValueError(f"unknown prunable unit {unit!r}")


def _producer(model: nn.Module, unit: str) -> tuple[nn.Conv2d, nn.BatchNorm2d | None]:
    """The convolution (and its BatchNorm) whose output filters ``unit`` prunes."""
    layer = unit_output(model, unit)
    return layer.conv, getattr(layer, "bn", None)


@torch.no_grad()
def filter_norms(model: nn.Module, unit: str) -> torch.Tensor:
    """L2 norm of each output filter of ``unit``'s convolution, BatchNorm scale folded in."""
    conv, bn = _producer(model, unit)
    return conv.weight.flatten(1).norm(dim=1) * _bn_scale(bn, conv.out_channels)


def _conv(conv: nn.Conv2d, out_idx=None, in_idx=None) -> nn.Conv2d:
    w = conv.weight
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels
    if out_idx is not None:
        w = w[out_idx]
    if in_idx is not None and not depthwise:
        w = w[:, in_idx]
    cout = w.shape[0]
    cin = cout if depthwise else w.shape[1]
    new = nn.Conv2d(
        cin,
        cout,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        groups=cout if depthwise else 1,
        bias=conv.bias is not None,
    )
    new.weight.copy_(w)
    if conv.bias is not None:
        new.bias.copy_(conv.bias if out_idx is None else conv.bias[out_idx])
    return new


def _bn(bn: nn.BatchNorm2d, idx) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(idx), eps=bn.eps, momentum=bn.momentum)
    for name in ("weight", "bias"):
        getattr(new, name).copy_(getattr(bn, name)[idx])
    for name in ("running_mean", "running_var"):
        getattr(new, name).copy_(getattr(bn, name)[idx])
    new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


@torch.no_grad()
def prune_unit(model: nn.Module, unit: str, width: int, scores: torch.Tensor | None = None) -> None:
    """Keep ``width`` filters of ``unit`` (the largest ``scores``, default :func:`filter_norms`,
    in their original order) and slice every consumer: depthwise conv, squeeze-excite and
    projection of a block; the feature-mix conv after ``final_expand``; the classifier after
    ``feature_mix``."""
    norms = filter_norms(model, unit) if scores is None else scores
    n = unit_width(model, unit)
    if len(norms) != n:
        raise ValueError(f"{unit}: {len(norms)} scores given for its {n} filters")
    if width >= n:
        return
    keep = torch.sort(torch.topk(norms, width).indices).values
    if unit.startswith("blocks."):
        mb = model.blocks[int(unit.split(".")[1])].conv
        ib, dw, pl = mb.inverted_bottleneck, mb.depth_conv, mb.point_linear
        ib.conv, ib.bn = _conv(ib.conv, out_idx=keep), _bn(ib.bn, keep)
        dw.conv, dw.bn = _conv(dw.conv, out_idx=keep), _bn(dw.bn, keep)
        se = getattr(dw, "se", None)
        if se is not None:
            reduce = _conv(se.fc.reduce, in_idx=keep)
            r = make_divisible(width // se.reduction)
            hidden = torch.sort(torch.topk(reduce.weight.flatten(1).norm(dim=1), r).indices).values
            se.fc.reduce = _conv(reduce, out_idx=hidden)
            se.fc.expand = _conv(se.fc.expand, out_idx=keep, in_idx=hidden)
            se.channel = width
        pl.conv = _conv(pl.conv, in_idx=keep)
        mb.mid_channels = width
    elif unit == "final_expand":
        layer = model.final_expand_layer
        layer.conv, layer.bn = _conv(layer.conv, out_idx=keep), _bn(layer.bn, keep)
        layer.out_channels = width
        model.feature_mix_layer.conv = _conv(model.feature_mix_layer.conv, in_idx=keep)
        model.feature_mix_layer.in_channels = width
    else:  # feature_mix
        layer = model.feature_mix_layer
        layer.conv = _conv(layer.conv, out_idx=keep)
        layer.out_channels = width
        old = model.classifier.linear
        new = nn.Linear(width, old.out_features, bias=old.bias is not None)
        new.weight.copy_(old.weight[:, keep])
        if old.bias is not None:
            new.bias.copy_(old.bias)
        model.classifier.linear = new
        model.classifier.in_features = width


def unit_width(model: nn.Module, unit: str) -> int:
    """The number of filters ``unit`` has in ``model`` now."""
    return _producer(model, unit)[0].out_channels
