"""Our own accuracy predictor, trained on a study's evaluated trials (``encode()`` -> accuracy),
with its held-out RMSE and Kendall tau. Same MLP shape as OFA's published predictor."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from search_spaces import SearchSpace

__all__ = ["PredictorReport", "train_predictor", "save_predictor"]


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
    from scipy.stats import kendalltau

    if len(configs) < 10:
        raise ValueError(
            f"need at least 10 evaluated trials to fit and test a predictor, got {len(configs)}"
        )
    x = torch.from_numpy(np.stack([space.encode(c) for c in configs]))
    y = torch.tensor(accuracies, dtype=torch.float32)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    n_test = max(2, int(round(test_fraction * len(y))))
    test, train = perm[:n_test], perm[n_test:]
    torch.manual_seed(seed)
    model = _mlp(x.shape[1])
    mean = float(y[train].mean())
    with torch.no_grad():
        model[-1].bias.fill_(mean)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in train[torch.randperm(len(train))].split(64):
            loss = nn.functional.mse_loss(model(x[idx]).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(x[test]).squeeze(1)
    rmse = float(torch.sqrt(torch.mean((pred - y[test]) ** 2)))
    baseline = float(torch.sqrt(torch.mean((mean - y[test]) ** 2)))
    tau = float(kendalltau(pred.numpy(), y[test].numpy()).statistic)
    return model, PredictorReport(len(train), n_test, rmse, tau, baseline)


def save_predictor(model: nn.Module, path: Path) -> None:
    """Saved as a plain state dict in OFA's layout (keys 0.*, 2.*, 4.*, 6.*), loadable by
    :func:`nas.search.load_ofa_predictor` when the encoding sizes match."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
