"""Quantization-aware scoring of a config: its PyTorch subnet with each layer's precision
simulated as the exported file runs it (``tflite-mixed``), so that a search scores a
mixed-precision config without exporting it.

What is simulated, layer by layer (``space.layer_dtypes(config)``: submodule path -> precision):

- ``int8``: weights of convolutions and linear layers rounded to int8, symmetric, one scale per
  output channel (BatchNorm folding scales whole channels, so this is the folded weight's grid);
  activations rounded to int8, asymmetric, one scale per tensor, with min/max ranges over the
  calibration images, at every op output as LiteRT runs them (a convolution, its BatchNorm and
  its activation are one op: rounded once, after the activation), and at the layer's input
  where a float layer feeds it (the QUANTIZE op the quantizer inserts).
- ``fp16``: weights rounded to float16 (LiteRT computes in fp32 from fp16 weights).
- ``fp32``: unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

import torch
from torch import fx, nn

from nas.export import module_scope
from search_spaces import SearchSpace

__all__ = ["simulate_precisions"]

_FUSES_INTO_USER = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)


class _Leaves(fx.Tracer):
    """Every module without children is one node (an activation written as a module is one
    op in the file, as LiteRT's HARD_SWISH is)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return not any(True for _ in m.children()) or super().is_leaf_module(
            m, module_qualified_name
        )


class _FakeQuant(nn.Module):
    """Asymmetric per-tensor int8 rounding. While ``observing``, its range is what the
    quantizer's calibration finds: each image's min and max, in turn, as a moving average
    (smoothing 0.95, from the first image's); then widened to include 0."""

    SMOOTHING = 0.95  # ai-edge-quantizer's moving_average_update

    def __init__(self) -> None:
        super().__init__()
        self.observing = True
        self.seen = False
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))

    def _observe(self, x: torch.Tensor) -> None:
        flat = x.detach().reshape(x.shape[0], -1) if x.dim() else x.detach().reshape(1, 1)
        for lo, hi in zip(flat.amin(1), flat.amax(1), strict=True):
            if not self.seen:
                self.lo, self.hi, self.seen = lo, hi, True
            else:
                self.lo = self.SMOOTHING * self.lo + (1 - self.SMOOTHING) * lo
                self.hi = self.SMOOTHING * self.hi + (1 - self.SMOOTHING) * hi

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return x  # a size or an index the graph computes on the way
        if self.observing:
            self._observe(x)
            return x
        lo, hi = torch.clamp(self.lo, max=0.0), torch.clamp(self.hi, min=0.0)
        scale = torch.clamp((hi - lo) / 255.0, min=1e-9)
        zero = torch.round(-128.0 - lo / scale)
        q = torch.clamp(torch.round(x / scale) + zero, -128.0, 127.0)
        return (q - zero) * scale


def _int8_weights(w: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(1, w.dim()))
    scale = torch.clamp(w.abs().amax(dim=dims, keepdim=True) / 127.0, min=1e-12)
    return torch.clamp(torch.round(w / scale), -127, 127) * scale


def _node_dtypes(gm: fx.GraphModule, layer_dtypes: Mapping[str, str]) -> dict[fx.Node, str]:
    """Each op node's precision: its module's layer's; an op outside every layer takes the
    precision of the op before it (as the exporter assigns ops)."""
    paths = list(layer_dtypes)
    out, current = {}, "fp32"
    for node in gm.graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        scope = module_scope(node)
        layer = SearchSpace.owning_layer(scope, paths) if scope else None
        current = layer_dtypes[paths[layer]] if layer is not None else current
        out[node] = current
    return out


def _round_weights(model: nn.Module, layer_dtypes: Mapping[str, str]) -> None:
    for path, dtype in layer_dtypes.items():
        if dtype == "fp32":
            continue
        for m in model.get_submodule(path).modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                w = m.weight.data
                m.weight.data = _int8_weights(w) if dtype == "int8" else w.half().float()


def _is_mean(node: fx.Node) -> bool:
    return node.target in ("mean", torch.mean)


def _fused_into_user(gm: fx.GraphModule, node: fx.Node) -> bool:
    """A convolution (or BatchNorm) whose only user is its BatchNorm or activation, or a mean
    whose only user is a mean (``x.mean(3).mean(2)``: the converter's one MEAN): one op."""
    if len(node.users) != 1:
        return False
    if _is_mean(node) and _is_mean(next(iter(node.users))):
        return True
    if node.op != "call_module":
        return False
    if not isinstance(gm.get_submodule(node.target), _FUSES_INTO_USER):
        return False
    (user,) = node.users
    if user.op != "call_module":
        return False
    m = gm.get_submodule(user.target)
    activation = not any(True for _ in m.parameters()) and not any(True for _ in m.children())
    return isinstance(m, nn.modules.batchnorm._BatchNorm) or activation


def _insert_fake_quants(gm: fx.GraphModule, dtypes: dict[fx.Node, str]) -> list[_FakeQuant]:
    quants: list[_FakeQuant] = []

    def add_after(node: fx.Node, users: list[fx.Node]) -> None:
        name = f"_fq{len(quants)}"
        quants.append(_FakeQuant())
        gm.add_submodule(name, quants[-1])
        with gm.graph.inserting_after(node):
            q = gm.graph.call_module(name, (node,))
        for user in users:
            user.replace_input_with(node, q)

    for node in list(gm.graph.nodes):
        if node.op not in ("call_module", "call_function", "call_method", "placeholder"):
            continue
        users = list(node.users)
        if dtypes.get(node) == "int8":
            if users and not _fused_into_user(gm, node):
                add_after(node, users)  # the op's int8 output
        else:  # a float value (or the input) that an int8 op reads: the QUANTIZE between
            int8_users = [u for u in users if dtypes.get(u) == "int8"]
            if int8_users:
                add_after(node, int8_users)
    gm.recompile()
    return quants


@torch.no_grad()
def simulate_precisions(
    model: nn.Module, layer_dtypes: Mapping[str, str], calibration: Iterable[torch.Tensor]
) -> nn.Module:
    """A copy of ``model`` (eval mode, BatchNorm recalibrated) computing what its exported
    mixed-precision file computes, up to the order of float operations; ``calibration``: the
    batches (preprocessed NCHW) that set the int8 ranges, the file's quantizer's images."""
    model = copy.deepcopy(model).eval()
    unknown = {d for d in layer_dtypes.values()} - {"fp32", "fp16", "int8"}
    if unknown:
        raise ValueError(f"layer precisions must be fp32, fp16 or int8, got {sorted(unknown)}")
    _round_weights(model, layer_dtypes)
    tracer = _Leaves()
    gm = fx.GraphModule(model, tracer.trace(model))
    quants = _insert_fake_quants(gm, _node_dtypes(gm, layer_dtypes))
    if quants:
        for x in calibration:
            gm(x)
        for q in quants:
            q.observing = False
    return gm.eval()
