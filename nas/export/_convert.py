"""A generic PyTorch -> Keras (tf-keras) converter for the exported subnets of any search space.

The built module is traced with ``torch.fx`` (symbolic trace) and each node is mapped to a
serializable Keras layer, so that TFLite conversion, the int8 calibrations and tfmot's
quantization-aware training all work on the result. Layout is changed once: every rank-4 PyTorch
tensor (NCHW) is an NHWC Keras tensor, and the axes of reductions and reshapes are mapped.
BatchNorm after a convolution is folded into it (as TFLite would). Parameter-free modules of a
space's own (an h-swish written out by hand, say) are recognised by what they compute on a probe,
so that TFLite gets its fused HARD_SWISH / LOGISTIC ops rather than their arithmetic.

What is not supported raises ``UnsupportedOpError`` naming the module or function and the node.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from nas.errors import NASError
from nas.export._keras import hard_activations, tf_modules

__all__ = ["UnsupportedOpError", "module_scope", "torch_to_keras"]

logger = logging.getLogger(__name__)

_NCHW_TO_NHWC_AXIS = (0, 3, 1, 2)  # torch dim d of a rank-4 tensor is Keras axis [d]


class UnsupportedOpError(NASError, TypeError):
    """A module or function in the traced model has no Keras mapping; the message names it."""


# ---- activations, by module, function and what a parameter-free module computes ------------
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "sigmoid": torch.sigmoid,
}
_ACTIVATION_MODULES: dict[type, str] = {
    nn.Identity: "identity",
    nn.Dropout: "identity",  # eval mode
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.Sigmoid: "sigmoid",
}
_ACTIVATION_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu",
    torch.relu: "relu",
    F.relu6: "relu6",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.dropout: "identity",
    "relu": "relu",
    "sigmoid": "sigmoid",
    "contiguous": "identity",
}


def _probe_activation(module: nn.Module) -> str | None:
    """The activation a parameter-free, childless module computes, if it is one we know."""
    if any(True for _ in module.parameters()) or any(True for _ in module.children()):
        return None
    x = torch.linspace(-8.0, 8.0, 2 * 3 * 5 * 5).reshape(2, 3, 5, 5)
    try:
        with torch.no_grad():
            y = module(x.clone())
    except Exception:  # noqa: BLE001 - not an elementwise module: trace through it instead
        return None
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        return None
    for name, fn in _ACTIVATIONS.items():
        if torch.allclose(y, fn(x), atol=1e-6, rtol=0):
            return name
    return None


class _Tracer(fx.Tracer):
    """Keeps the modules we convert whole (and recognised activations) as leaves."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        # probed before tracing: fx patches module calls while it traces
        self.activations: dict[str, str] = {
            name: act
            for name, m in root.named_modules()
            if not type(m).__module__.startswith("torch.nn")
            and (act := _probe_activation(m)) is not None
        }  # qualified name -> activation

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in _MODULES or type(m) in _ACTIVATION_MODULES:
            return True
        if module_qualified_name in self.activations:
            return True
        return super().is_leaf_module(m, module_qualified_name)


# ---- the conversion -------------------------------------------------------------------------
@dataclass
class _Context:
    gm: fx.GraphModule
    tracer: _Tracer
    tf: Any
    K: Any
    values: dict[fx.Node, Any]
    folded_bn: dict[fx.Node, nn.BatchNorm2d]  # conv node -> the BatchNorm folded into it
    scopes: dict[str, int] = field(default_factory=dict)  # layers named after each scope
    named: set[int] = field(default_factory=set)  # ids of the layers named so far

    def value(self, arg: Any, node: fx.Node) -> Any:
        if isinstance(arg, fx.Node):
            v = self.values.get(arg)
            if v is None:
                raise UnsupportedOpError(
                    f"node {node.name!r} ({_describe(self, node)}) uses {arg.name!r}, which is "
                    "not a tensor the converter produced"
                )
            return v
        raise UnsupportedOpError(f"node {node.name!r} ({_describe(self, node)}): expected a tensor")

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        return tuple(node.meta["tensor_meta"].shape)


def _describe(ctx: _Context, node: fx.Node) -> str:
    if node.op == "call_module":
        module = ctx.gm.get_submodule(node.target)
        return f"module {type(module).__module__}.{type(module).__name__} at {node.target!r}"
    if node.op == "call_method":
        return f"method Tensor.{node.target}"
    if node.op == "call_function":
        return f"function {getattr(node.target, '__module__', '')}.{node.target.__name__}"
    return f"{node.op} {node.target}"


def _activation(ctx: _Context, name: str, x: Any) -> Any:
    L = ctx.K.layers
    if name == "identity":
        return x
    if name == "relu":
        return L.ReLU()(x)
    if name == "relu6":
        return L.ReLU(max_value=6.0)(x)
    if name == "sigmoid":
        return L.Activation("sigmoid")(x)
    hard = hard_activations()
    return (hard["HSwish"] if name == "hardswish" else hard["HSigmoid"])()(x)


def _fold_bn(w: np.ndarray, b: np.ndarray, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    scale = (bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)).numpy()
    w = w * scale.reshape(-1, 1, 1, 1)
    b = (b - bn.running_mean.numpy()) * scale + bn.bias.detach().numpy()
    return w.astype(np.float32), b.astype(np.float32)


def _conv2d(ctx: _Context, node: fx.Node, m: nn.Conv2d, x: Any) -> Any:
    L = ctx.K.layers
    if m.padding_mode != "zeros":
        raise UnsupportedOpError(f"{_describe(ctx, node)}: padding_mode {m.padding_mode!r}")
    w = m.weight.detach().numpy()
    b = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_channels, np.float32)
    if node in ctx.folded_bn:
        w, b = _fold_bn(w, b, ctx.folded_bn[node])
    k, stride, dilation = m.kernel_size, m.stride, m.dilation
    pad = (0, 0) if m.padding == "valid" else m.padding
    centred = m.padding == "same" or all(
        kk % 2 and p == d * (kk - 1) // 2 for p, kk, d in zip(pad, k, dilation, strict=True)
    )
    if stride == (1, 1) and centred:
        padding = "same"  # identical for odd kernels at stride 1, and no PAD op in the file
    else:
        if any(pad):  # explicit and symmetric, as PyTorch pads (Keras 'same' pads right first)
            x = L.ZeroPadding2D(tuple(pad))(x)
        padding = "valid"
    depthwise = m.groups == m.in_channels and m.groups > 1
    if depthwise:
        mult = m.out_channels // m.in_channels
        kernel = w.reshape(m.in_channels, mult, *k).transpose(2, 3, 0, 1)
        layer = L.DepthwiseConv2D(
            k, strides=stride, padding=padding, dilation_rate=dilation, depth_multiplier=mult
        )
    else:
        kernel = w.transpose(2, 3, 1, 0)
        layer = L.Conv2D(
            m.out_channels,
            k,
            strides=stride,
            padding=padding,
            dilation_rate=dilation,
            groups=m.groups,
        )
    y = layer(x)
    layer.set_weights([kernel, b])
    return y


def _batchnorm(ctx: _Context, node: fx.Node, m: nn.BatchNorm2d, x: Any) -> Any:
    layer = ctx.K.layers.BatchNormalization(axis=-1, epsilon=m.eps)
    y = layer(x)
    weight = m.weight.detach().numpy() if m.weight is not None else np.ones(m.num_features)
    bias = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.num_features)
    layer.set_weights([weight, bias, m.running_mean.numpy(), m.running_var.numpy()])
    return y


def _linear(ctx: _Context, node: fx.Node, m: nn.Linear, x: Any) -> Any:
    if len(ctx.shape(node.args[0])) != 2:
        raise UnsupportedOpError(f"{_describe(ctx, node)}: only on (batch, features) inputs")
    layer = ctx.K.layers.Dense(m.out_features, use_bias=True)
    y = layer(x)
    b = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_features, np.float32)
    layer.set_weights([m.weight.detach().numpy().T.copy(), b])
    return y


def _pool_size(ctx: _Context, node: fx.Node, output_size: Any) -> tuple[int, int] | None:
    """``None`` for a global pool, else the pool size that gives ``output_size``."""
    h, w = ctx.shape(node.args[0])[2:]
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh, ow = oh or h, ow or w
    if (oh, ow) == (1, 1):
        return None
    if h % oh or w % ow:
        raise UnsupportedOpError(f"{_describe(ctx, node)}: output size {output_size} of {h}x{w}")
    return h // oh, w // ow


def _adaptive_avg(ctx: _Context, node: fx.Node, x: Any, output_size: Any) -> Any:
    L = ctx.K.layers
    size = _pool_size(ctx, node, output_size)
    if size is None:
        return L.GlobalAveragePooling2D(keepdims=True)(x)
    return L.AveragePooling2D(size, strides=size)(x)


def _pool(ctx: _Context, node: fx.Node, m: nn.Module, x: Any) -> Any:
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _adaptive_avg(ctx, node, x, m.output_size)
    pair = nn.modules.utils._pair
    kernel = pair(m.kernel_size)
    stride = pair(m.stride if m.stride is not None else m.kernel_size)
    padding = "valid"
    if any(pair(m.padding)):
        # TF's "same" average excludes the padding: PyTorch's count_include_pad=False at stride 1
        same = (
            isinstance(m, nn.AvgPool2d)
            and not m.count_include_pad
            and stride == (1, 1)
            and pair(m.padding) == tuple(k // 2 for k in kernel)
            and all(k % 2 for k in kernel)
        )
        if not same:
            raise UnsupportedOpError(f"{_describe(ctx, node)}: this padding")
        padding = "same"
    if m.ceil_mode:
        raise UnsupportedOpError(f"{_describe(ctx, node)}: ceil_mode")
    cls = (
        ctx.K.layers.MaxPooling2D if isinstance(m, nn.MaxPool2d) else ctx.K.layers.AveragePooling2D
    )
    return cls(kernel, strides=stride, padding=padding)(x)


def _reshape(ctx: _Context, node: fx.Node, x: Any) -> Any:
    """Any reshape (view, flatten): in PyTorch's (NCHW) element order, then back to NHWC."""
    L = ctx.K.layers
    src, dst = ctx.shape(node.args[0]), ctx.shape(node)
    if src[0] != dst[0]:
        raise UnsupportedOpError(f"{_describe(ctx, node)}: reshapes across the batch dimension")
    if len(src) == 4 and src[2] * src[3] > 1:
        x = L.Permute((3, 1, 2))(x)
    if len(dst) == 4:
        x = L.Reshape(dst[1:])(x) if len(src) != 4 or src[2] * src[3] > 1 else x
        return (
            L.Permute((2, 3, 1))(x)
            if dst[2] * dst[3] > 1
            else L.Reshape((dst[2], dst[3], dst[1]))(x)
        )
    return L.Reshape(dst[1:])(x)


def _mean_args(ctx: _Context, node: fx.Node) -> tuple[set[int], bool]:
    """(the reduced dims, non-negative; keepdim) of a ``Tensor.mean`` node."""
    rank = len(ctx.shape(node.args[0]))
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    dims = range(rank) if dims is None else (dims,) if isinstance(dims, int) else dims
    return {d % rank for d in dims}, bool(keepdim)


def _mean(ctx: _Context, node: fx.Node, x: Any) -> Any:
    src = ctx.shape(node.args[0])
    dims, keepdim = _mean_args(ctx, node)
    if len(src) != 4 or not dims <= {2, 3}:
        raise UnsupportedOpError(f"{_describe(ctx, node)}: only over the spatial dimensions")
    parent = node.args[0]
    if (
        len(dims) == 1
        and parent.op == "call_method"
        and parent.target == "mean"
        and len(parent.users) == 1
        and _mean_args(ctx, parent) == (dims ^ {2, 3}, True)
    ):  # x.mean(3, keepdim=True).mean(2, keepdim=...): one global pool
        dims, x = {2, 3}, ctx.value(parent.args[0], node)
    if dims == {2, 3}:
        return ctx.K.layers.GlobalAveragePooling2D(keepdims=keepdim)(x)
    if not keepdim:
        raise UnsupportedOpError(f"{_describe(ctx, node)}: over one spatial dimension")
    size = (src[2], 1) if dims == {2} else (1, src[3])
    return ctx.K.layers.AveragePooling2D(size, strides=1)(x)  # a length-1 axis, as keepdim


def _binary(ctx: _Context, node: fx.Node, op: str) -> Any:
    L = ctx.K.layers
    a, b = node.args[0], node.args[1]
    if isinstance(a, fx.Node) and isinstance(b, fx.Node):
        pair = [ctx.value(a, node), ctx.value(b, node)]
        merge = {"add": L.Add, "mul": L.Multiply, "sub": L.Subtract}.get(op)
        if merge is None:
            raise UnsupportedOpError(f"{_describe(ctx, node)} of two tensors")
        return merge()(pair)
    tensor_first = isinstance(a, fx.Node)
    x, c = (a, b) if tensor_first else (b, a)
    if not isinstance(c, (int, float)):
        raise UnsupportedOpError(f"{_describe(ctx, node)} with a constant {type(c).__name__}")
    c = float(c)
    if op == "div" and not (tensor_first and c != 0):
        raise UnsupportedOpError(f"{_describe(ctx, node)}: a division by a tensor or by 0")
    scale, offset = {
        "add": (1.0, c),
        "mul": (c, 0.0),  # x * 0 (a "none" op): a constant 0 of x's shape
        "sub": (1.0, -c) if tensor_first else (-1.0, c),
        "div": (1.0 / c if c else 0.0, 0.0),
    }[op]
    return L.Rescaling(scale, offset)(ctx.value(x, node))


_BINARY: dict[Any, str] = {
    operator.add: "add",
    torch.add: "add",
    "add": "add",
    operator.iadd: "add",
    operator.mul: "mul",
    torch.mul: "mul",
    "mul": "mul",
    operator.imul: "mul",
    operator.sub: "sub",
    torch.sub: "sub",
    operator.truediv: "div",
    torch.div: "div",
}
_MODULES: dict[type, Callable[..., Any]] = {
    nn.Conv2d: _conv2d,
    nn.BatchNorm2d: _batchnorm,
    nn.Linear: _linear,
    nn.AdaptiveAvgPool2d: _pool,
    nn.AvgPool2d: _pool,
    nn.MaxPool2d: _pool,
    nn.Flatten: lambda ctx, node, m, x: _reshape(ctx, node, x),
}
_RESHAPES = {torch.flatten, torch.reshape, "view", "reshape", "flatten"}


def _convert_call(ctx: _Context, node: fx.Node) -> Any:
    target = node.target
    if node.op == "call_module":
        m = ctx.gm.get_submodule(target)
        x = ctx.value(node.args[0], node)
        if target in ctx.tracer.activations:
            return _activation(ctx, ctx.tracer.activations[target], x)
        if type(m) in _ACTIVATION_MODULES:
            return _activation(ctx, _ACTIVATION_MODULES[type(m)], x)
        if isinstance(m, nn.BatchNorm2d) and node.args[0] in ctx.folded_bn:
            return x  # folded into the convolution before it
        if type(m) in _MODULES:
            return _MODULES[type(m)](ctx, node, m, x)
    elif target in _BINARY:
        return _binary(ctx, node, _BINARY[target])
    elif target in _ACTIVATION_FUNCTIONS:
        return _activation(ctx, _ACTIVATION_FUNCTIONS[target], ctx.value(node.args[0], node))
    elif target in _RESHAPES:
        return _reshape(ctx, node, ctx.value(node.args[0], node))
    elif target == "mean":
        return _mean(ctx, node, ctx.value(node.args[0], node))
    elif target is F.adaptive_avg_pool2d:
        return _adaptive_avg(ctx, node, ctx.value(node.args[0], node), node.args[1])
    raise UnsupportedOpError(
        f"cannot convert {_describe(ctx, node)} (node {node.name!r}) to Keras; supported modules: "
        f"{sorted(t.__name__ for t in (*_MODULES, *_ACTIVATION_MODULES))}"
    )


def _trace(module: nn.Module, example: torch.Tensor) -> tuple[fx.GraphModule, _Tracer]:
    from torch.fx.passes.shape_prop import ShapeProp

    tracer = _Tracer(module)
    try:
        graph = tracer.trace(module)
    except Exception as e:  # noqa: BLE001 - say which model and why, whatever fx raised
        raise UnsupportedOpError(
            f"{type(module).__name__} cannot be traced by torch.fx (symbolic trace): {e}"
        ) from e
    gm = fx.GraphModule(tracer.root, graph)
    with torch.no_grad():
        ShapeProp(gm).propagate(example)
    return gm, tracer


def _folded_bn(gm: fx.GraphModule) -> dict[fx.Node, nn.BatchNorm2d]:
    """conv node -> the BatchNorm2d that is its only user (folded into the conv's weights)."""
    out = {}
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), nn.Conv2d):
            continue
        (user,) = node.users if len(node.users) == 1 else (None,)
        if user is not None and user.op == "call_module":
            bn = gm.get_submodule(user.target)
            if isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                out[node] = bn
    return out


def torch_to_keras(
    module: nn.Module, input_shape: tuple[int, int, int], *, batch_size: int | None = 1
) -> Any:
    """A Keras model computing what ``module`` (in eval mode) does on an NCHW input of
    ``input_shape`` = (C, H, W); the Keras model takes NHWC (batch, H, W, C) and returns the
    same outputs (logits). ``batch_size`` None for training (quantization-aware), 1 for files.

    Raises:
        UnsupportedOpError: a module, function or method has no mapping (the message names it),
            or the model cannot be traced symbolically.
    """
    tf, K = tf_modules()
    module = module.eval()
    c, h, w = input_shape
    gm, tracer = _trace(module, torch.randn(2, c, h, w))
    ctx = _Context(gm, tracer, tf, K, {}, _folded_bn(gm))
    inputs = K.Input(shape=(h, w, c), batch_size=batch_size)
    outputs = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            ctx.values[node] = inputs
        elif node.op == "output":
            outputs = ctx.value(node.args[0], node)
        elif node.op == "get_attr":
            continue  # a parameter used as a constant: a node that uses it raises
        elif "tensor_meta" not in node.meta:
            continue  # sizes and other non-tensor values: shapes come from the trace instead
        else:
            ctx.values[node] = _convert_call(ctx, node)
            _name_layers(ctx, node)
    return K.Model(inputs, outputs)


def module_scope(node: fx.Node) -> str | None:
    """The qualified name of the module a traced node runs in (``blocks.3.conv.depth_conv.se``
    for the SE block's ``mean``, from ``nn_module_stack``), or None outside every submodule:
    what ties an op to a space's ``layer_paths`` (the converter's layer names, the
    quantization simulation)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack), None)


def _name_layers(ctx: _Context, node: fx.Node) -> None:
    """Name the Keras layers made for ``node`` after its module
    (``blocks.3.conv.depth_conv.conv``, then ``<scope>-1``, ...: ``-`` is in no module path),
    so that every TFLite tensor name says which module it came from (the mixed-precision
    exporter assigns ops to a space's layers by it)."""
    stop = {id(ctx.values[a]) for a in node.all_input_nodes if a in ctx.values}
    todo, layers = [ctx.values[node]], []
    while todo:
        tensor = todo.pop()
        history = getattr(tensor, "_keras_history", None)
        if id(tensor) in stop or history is None or id(history.layer) in ctx.named:
            continue
        layer = history.layer
        if type(layer).__name__ == "InputLayer":
            continue
        layers.append(layer)
        inbound = layer.inbound_nodes[history.node_index].keras_inputs
        todo.extend(inbound if isinstance(inbound, list | tuple) else [inbound])
    scope = module_scope(node) or node.name
    for layer in reversed(layers):  # in the order they run
        n = ctx.scopes.get(scope, 0)
        layer._name = scope if n == 0 else f"{scope}-{n}"
        ctx.scopes[scope] = n + 1
        ctx.named.add(id(layer))
