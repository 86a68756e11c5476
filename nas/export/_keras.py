"""A Keras (tf-keras) model of an elastic-MobileNetV3 subnet's ``LayerSpec`` s with random
weights, for latency-table calibration only (exported files go through ``torch_to_keras``); and
the lazy TensorFlow import and serializable hard activations that both use.

Layout is NHWC. Padding is explicit and symmetric (k // 2, as in PyTorch) wherever stride is 2,
so that outputs match PyTorch; stride-1 layers use 'same', which is identical for odd kernels.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from search_spaces import LayerSpec, make_divisible

__all__ = [
    "tf_modules",
    "hard_activations",
    "keras_model",
    "random_layer_params",
]


def tf_modules():
    """(tensorflow, tf_keras), imported lazily with the legacy-Keras switch set (nas._compat)."""
    try:
        return _load_tf()
    except ImportError as e:  # pragma: no cover - the pinned install has both
        raise ImportError(
            "TFLite export needs tensorflow==2.21.0 and tf-keras==2.21.0 (bash setup.sh)"
        ) from e


@functools.cache
def _load_tf() -> tuple[Any, Any]:
    from nas._compat import native_logs  # also sets TF_USE_LEGACY_KERAS before the import

    # loading logs from C++ (oneDNN, CUDA stubs), and so does the first device look-up (cuInit)
    with native_logs():
        import tensorflow as tf
        import tf_keras

        tf.config.list_physical_devices()
    return tf, tf_keras


_HARD: dict[str, Any] = {}


def hard_activations() -> dict[str, Any]:
    """``{"HSwish": cls, "HSigmoid": cls}``: serializable Keras layers (not Lambdas, which can be
    neither cloned nor quantization-annotated) for ``x * relu6(x + 3) / 6`` and
    ``relu6(x + 3) / 6``; TFLite's converter turns the first into its HARD_SWISH op."""
    if not _HARD:
        tf, K = tf_modules()

        @K.utils.register_keras_serializable(package="nas")
        class HSwish(K.layers.Layer):
            def call(self, x):
                return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

        @K.utils.register_keras_serializable(package="nas")
        class HSigmoid(K.layers.Layer):
            def call(self, x):
                return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

        _HARD.update(HSwish=HSwish, HSigmoid=HSigmoid)
    return _HARD


# ---- random parameters: dicts of NHWC numpy arrays per LayerSpec (latency calibration) ----
def random_layer_params(layer: LayerSpec, rng: np.random.Generator) -> dict[str, np.ndarray] | None:
    """Real (non-zero, He-scaled) random weights for one layer, for latency calibration."""

    def he(*shape: int, fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bias(n: int) -> np.ndarray:
        return (rng.standard_normal(n) * 0.01).astype(np.float32)

    cin, cout = layer.input_shape[-1], layer.output_shape[-1]
    if layer.op == "AvgPool2D":
        return None
    if layer.op in ("Conv", "Conv_1", "Conv_2"):
        k = 3 if layer.op == "Conv" else 1
        return {"w": he(k, k, cin, cout, fan_in=k * k * cin), "b": bias(cout)}
    if layer.op == "Logits":
        return {"w": he(cin, cout, fan_in=cin), "b": bias(cout)}
    mid, k = layer.attr("expand"), layer.attr("kernel")
    p = {
        "dw_w": he(k, k, mid, 1, fan_in=k * k),
        "dw_b": bias(mid),
        "project_w": he(1, 1, mid, cout, fan_in=mid),
        "project_b": bias(cout),
    }
    if mid != cin:
        p.update(expand_w=he(1, 1, cin, mid, fan_in=cin), expand_b=bias(mid))
    if layer.attr("se"):
        r = make_divisible(mid // 4)
        p.update(
            se_reduce_w=he(1, 1, mid, r, fan_in=mid),
            se_reduce_b=bias(r),
            se_expand_w=he(1, 1, r, mid, fan_in=r),
            se_expand_b=bias(mid),
        )
    return p


# ---- graph ---------------------------------------------------------------------------------
def _apply(
    layer: LayerSpec, x: Any, p: dict[str, np.ndarray] | None, acts: dict[str, str], tf: Any, K: Any
) -> Any:
    L = K.layers
    hard = hard_activations()

    def act(y, name):
        if name == "relu":
            return L.ReLU()(y)
        return hard["HSwish"]()(y)

    def conv(y, w, b, stride=1, depthwise=False):
        k = w.shape[0]
        if stride > 1 and k > 1:
            y = L.ZeroPadding2D(k // 2)(y)
            padding = "valid"
        else:
            padding = "same"
        if depthwise:
            c = L.DepthwiseConv2D(k, strides=stride, padding=padding, use_bias=True)
        else:
            c = L.Conv2D(w.shape[-1], k, strides=stride, padding=padding, use_bias=True)
        out = c(y)
        c.set_weights([w, b])
        return out

    if layer.op == "Conv":
        return act(
            conv(
                x,
                p["w"],
                p["b"],
                stride=layer.input_shape[0] // layer.output_shape[0]
                if layer.input_shape[0] != layer.output_shape[0]
                else 1,
            ),
            "h_swish",
        )
    if layer.op == "Conv_1":
        return act(conv(x, p["w"], p["b"]), "h_swish")
    if layer.op == "AvgPool2D":
        return L.GlobalAveragePooling2D(keepdims=True)(x)
    if layer.op == "Conv_2":
        return act(conv(x, p["w"], p["b"]), "h_swish")
    if layer.op == "Logits":
        y = L.Flatten()(x)
        d = L.Dense(p["w"].shape[1])
        out = d(y)
        d.set_weights([p["w"], p["b"]])
        return out
    # expanded_conv
    a = "h_swish" if layer.attr("hs") else "relu"
    stride = layer.attr("stride")
    y = x
    if "expand_w" in p:
        y = act(conv(y, p["expand_w"], p["expand_b"]), a)
    y = act(conv(y, p["dw_w"], p["dw_b"], stride=stride, depthwise=True), a)
    if layer.attr("se"):
        s = L.GlobalAveragePooling2D(keepdims=True)(y)
        s = L.ReLU()(conv(s, p["se_reduce_w"], p["se_reduce_b"]))
        s = conv(s, p["se_expand_w"], p["se_expand_b"])
        s = hard["HSigmoid"]()(s)
        y = L.Multiply()([y, s])
    y = conv(y, p["project_w"], p["project_b"])
    if layer.attr("idskip"):
        y = L.Add()([x, y])
    return y


def keras_model(
    layers: Sequence[LayerSpec],
    params: Sequence[dict[str, np.ndarray] | None],
    batch_size: int | None = 1,
) -> Any:
    """A Keras model running ``layers`` in order (NHWC input of ``layers[0].input_shape``);
    ``batch_size`` None for training (quantization-aware), 1 for the exported file."""
    tf, K = tf_modules()
    if len(layers) != len(params):
        raise ValueError(f"{len(layers)} layers but {len(params)} parameter sets")
    inputs = K.Input(shape=layers[0].input_shape, batch_size=batch_size)
    x = inputs
    for layer, p in zip(layers, params, strict=True):
        x = _apply(layer, x, p, {}, tf, K)
    return K.Model(inputs, x)
