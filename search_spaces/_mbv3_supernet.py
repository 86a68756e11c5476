"""The elastic MobileNetV3 supernet built from ``ofa``'s dynamic layers for any MBV3Definition.

It subclasses ``OFAMobileNetV3`` only for its generic machinery (``set_active_subnet``,
``get_active_subnet``, ``forward``, ``re_organize_middle_weights``); the constructor is ours,
because OFA's hard-codes ImageNet's stem, widths and strides.
"""

from __future__ import annotations

from ofa.imagenet_classification.elastic_nn.modules.dynamic_layers import DynamicMBConvLayer
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from ofa.imagenet_classification.networks import MobileNetV3
from ofa.utils.layers import ConvLayer, IdentityLayer, LinearLayer, MBConvLayer, ResidualBlock
from ofa.utils.pytorch_modules import MyGlobalAvgPool2d
from torch import nn

import nas  # noqa: F401  (torchvision import trap, before ofa)
from nas.errors import ConfigError
from search_spaces._base import LayerSpec
from search_spaces._mbv3 import MBV3Definition

__all__ = ["ElasticMobileNetV3", "layer_module"]


def layer_module(layer: LayerSpec) -> nn.Module:
    """One ``LayerSpec`` of an elastic-MBV3 subnet as the standalone OFA module the extracted
    subnet runs for it, freshly initialized, in eval mode (``Logits`` flattens first, as
    ``MobileNetV3.forward`` does before the classifier)."""
    cin, cout = layer.input_shape[-1], layer.output_shape[-1]
    if layer.op == "Conv":
        stride = -(-layer.input_shape[0] // layer.output_shape[0])
        module = ConvLayer(cin, cout, kernel_size=3, stride=stride, act_func="h_swish")
    elif layer.op == "Conv_1":
        module = ConvLayer(cin, cout, kernel_size=1, act_func="h_swish")
    elif layer.op == "AvgPool2D":
        module = MyGlobalAvgPool2d(keep_dim=True)
    elif layer.op == "Conv_2":
        module = ConvLayer(cin, cout, kernel_size=1, bias=False, use_bn=False, act_func="h_swish")
    elif layer.op == "Logits":
        module = nn.Sequential(nn.Flatten(), LinearLayer(cin, cout))
    elif layer.op == "expanded_conv":
        mid = layer.attr("expand")
        conv = MBConvLayer(
            cin,
            cout,
            kernel_size=layer.attr("kernel"),
            stride=layer.attr("stride"),
            expand_ratio=1 if mid == cin else mid / cin,
            mid_channels=mid,
            act_func="h_swish" if layer.attr("hs") else "relu",
            use_se=bool(layer.attr("se")),
        )
        module = ResidualBlock(conv, IdentityLayer(cin, cin) if layer.attr("idskip") else None)
    else:
        raise ConfigError(f"elastic MobileNetV3: no layer {layer.op!r} (key {layer.key})")
    return module.eval()


class ElasticMobileNetV3(OFAMobileNetV3):
    def __init__(self, definition: MBV3Definition) -> None:  # noqa: D107
        d = definition
        self.width_mult = 1.0
        self.ks_list = sorted(d.kernels)
        self.expand_ratio_list = sorted(d.expands)
        self.depth_list = sorted(d.depths)

        first_conv = ConvLayer(
            d.in_channels, d.stem_width, kernel_size=3, stride=d.stem_stride, act_func="h_swish"
        )
        first_block = ResidualBlock(
            MBConvLayer(
                d.stem_width,
                d.first_block_width,
                kernel_size=3,
                stride=1,
                expand_ratio=1,
                act_func="relu",
            ),
            IdentityLayer(d.stem_width, d.stem_width)
            if d.stem_width == d.first_block_width
            else None,
        )
        self.block_group_info = []
        blocks = [first_block]
        feature_dim = d.first_block_width
        for stage in d.stages:
            self.block_group_info.append([len(blocks) + i for i in range(d.max_depth)])
            for i in range(d.max_depth):
                stride = stage.stride if i == 0 else 1
                conv = DynamicMBConvLayer(
                    in_channel_list=[feature_dim],
                    out_channel_list=[stage.width],
                    kernel_size_list=self.ks_list,
                    expand_ratio_list=self.expand_ratio_list,
                    stride=stride,
                    act_func=stage.act,
                    use_se=stage.se,
                )
                shortcut = (
                    IdentityLayer(feature_dim, feature_dim)
                    if stride == 1 and feature_dim == stage.width
                    else None
                )
                blocks.append(ResidualBlock(conv, shortcut))
                feature_dim = stage.width
        final_expand_layer = ConvLayer(
            feature_dim, d.final_expand_width, kernel_size=1, act_func="h_swish"
        )
        feature_mix_layer = ConvLayer(
            d.final_expand_width,
            d.feature_mix_width,
            kernel_size=1,
            bias=False,
            use_bn=False,
            act_func="h_swish",
        )
        classifier = LinearLayer(d.feature_mix_width, d.n_classes, dropout_rate=d.dropout)
        MobileNetV3.__init__(
            self, first_conv, blocks, final_expand_layer, feature_mix_layer, classifier
        )
        self.set_bn_param(momentum=d.bn_momentum, eps=d.bn_eps)
        self.runtime_depth = [len(block_idx) for block_idx in self.block_group_info]
