"""Our own accuracy predictor, trained on a study's evaluated trials (``encode()`` -> accuracy),
with its held-out RMSE and Kendall tau. Same MLP shape as OFA's published predictor."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from search_spaces import SearchSpace

__all__ = [
    "PredictorReport",
    "fit_predictor",
    "save_predictor",
    "score_predictor",
    "train_predictor",
    "widen_inputs",
]


@dataclasses.dataclass(frozen=True)
class PredictorReport:
    n_train: int
    n_test: int
    rmse: float
    kendall_tau: float
    baseline_rmse: float  # predicting the training mean


def _mlp(n_inputs: int, hidden: int = 400) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


def widen_inputs(model: nn.Module, n_inputs: int) -> nn.Module:
    """A copy of a predictor taking ``n_inputs`` features: its own first, then new ones with
    zero weights, so it predicts as before until fine-tuned (APQ's transfer: an fp32 predictor
    on a base space's encoding, extended by the per-layer precision one-hots that
    ``mixed_precision(base).encode`` appends)."""
    first = model[0]
    if n_inputs < first.in_features:
        raise ValueError(f"n_inputs: {n_inputs} is fewer than the model's {first.in_features}")
    out = copy.deepcopy(model)
    layer = nn.Linear(n_inputs, first.out_features)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:, : first.in_features] = first.weight
        layer.bias.copy_(first.bias)
    out[0] = layer
    return out


def fit_predictor(
    space: SearchSpace,
    configs: list[Any],
    accuracies: list[float],
    *,
    init: nn.Module | None = None,
    epochs: int = 300,
    lr: float = 1e-3,
    seed: int = 0,
) -> nn.Module:
    """An MLP fitted on ``configs`` (``space.encode``) -> ``accuracies``: from scratch (its
    output bias at their mean), or fine-tuned from ``init`` (widened to the encoding first)."""
    x = torch.from_numpy(np.stack([space.encode(c) for c in configs]))
    y = torch.tensor(accuracies, dtype=torch.float32)
    torch.manual_seed(seed)
    if init is not None:
        model = widen_inputs(init, x.shape[1])
    else:
        model = _mlp(x.shape[1])
        with torch.no_grad():
            model[-1].bias.fill_(float(y.mean()))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(64):
            loss = nn.functional.mse_loss(model(x[idx]).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def score_predictor(
    model: nn.Module, space: SearchSpace, configs: list[Any], accuracies: list[float]
) -> tuple[float, float]:
    """(RMSE, Kendall tau) of the model's predictions on held-out ``configs``."""
    from scipy.stats import kendalltau

    x = torch.from_numpy(np.stack([space.encode(c) for c in configs]))
    y = np.asarray(accuracies, dtype=np.float32)
    with torch.no_grad():
        pred = model(x).squeeze(1).numpy()
    return float(np.sqrt(np.mean((pred - y) ** 2))), float(kendalltau(pred, y).statistic)


def train_predictor(
    space: SearchSpace,
    configs: list[Any],
    accuracies: list[float],
    *,
    test_fraction: float = 0.2,
    epochs: int = 300,
    seed: int = 0,
) -> tuple[nn.Module, PredictorReport]:
    """Fit on a seeded ``1 - test_fraction`` of the trials; report on the rest."""
    if len(configs) < 10:
        raise ValueError(
            f"need at least 10 evaluated trials to fit and test a predictor, got {len(configs)}"
        )
    perm = np.random.default_rng(seed).permutation(len(configs))
    n_test = max(2, int(round(test_fraction * len(configs))))
    test, train = perm[:n_test], perm[n_test:]

    def pick(idx: np.ndarray) -> tuple[list[Any], list[float]]:
        return [configs[i] for i in idx], [accuracies[i] for i in idx]

    model = fit_predictor(space, *pick(train), epochs=epochs, seed=seed)
    rmse, tau = score_predictor(model, space, *pick(test))
    mean = float(np.mean(pick(train)[1]))
    baseline = float(np.sqrt(np.mean((mean - np.asarray(pick(test)[1])) ** 2)))
    return model, PredictorReport(len(train), n_test, rmse, tau, baseline)


def save_predictor(model: nn.Module, path: Path) -> None:
    """Saved as a plain state dict in OFA's layout (keys 0.*, 2.*, 4.*, 6.*), loadable by
    :func:`nas.search.load_ofa_predictor` when the encoding sizes match."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
