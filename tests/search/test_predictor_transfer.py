"""APQ's predictor transfer: an fp32 accuracy predictor on a base space's encoding, widened to a
mixed-precision space's encoding (the precision one-hots appended) and fine-tuned on a few
quantized samples, against one trained from scratch on the same samples."""

from __future__ import annotations

import numpy as np
import torch

from nas.search import fit_predictor, score_predictor, widen_inputs
from search_spaces import get_space


def _accuracy(space, config) -> float:
    """A made-up accuracy with the shape of a real one: larger subnets score higher, and each
    int8 layer costs a little (more in the first and last layers)."""
    base = space.base.encode(config.base)
    score = 0.80 + 0.1 * float(base.mean())
    n = len(config.dtypes)
    for i, dtype in enumerate(config.dtypes):
        if dtype == "int8":
            score -= 0.004 if 0 < i < n - 1 else 0.015
    return score


def test_a_widened_predictor_predicts_as_before_until_fine_tuned():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    wide = widen_inputs(model, 9)
    x = torch.randn(4, 5)
    with torch.no_grad():
        assert torch.allclose(wide(torch.cat([x, torch.randn(4, 4)], 1)), model(x))


def test_transfer_from_an_fp32_predictor_beats_scratch_on_few_quantized_samples():
    space = get_space("apq(ofa_mbv3_small)")
    rng = np.random.default_rng(0)
    fp32 = [space.base.sample(rng) for _ in range(400)]
    fp32_acc = [_accuracy(space, space.parse(str(c))) for c in fp32]  # all layers fp32
    quantized = [space.sample(rng) for _ in range(260)]
    acc = [_accuracy(space, c) for c in quantized]
    source = fit_predictor(space.base, fp32, fp32_acc, epochs=60, seed=0)
    few, held_out = slice(0, 60), slice(60, None)
    transferred = fit_predictor(
        space, quantized[few], acc[few], init=source, epochs=60, lr=3e-4, seed=0
    )
    scratch = fit_predictor(space, quantized[few], acc[few], epochs=60, seed=0)
    rmse_t, tau_t = score_predictor(transferred, space, quantized[held_out], acc[held_out])
    rmse_s, tau_s = score_predictor(scratch, space, quantized[held_out], acc[held_out])
    assert rmse_t < rmse_s and tau_t > tau_s, (rmse_t, tau_t, rmse_s, tau_s)
