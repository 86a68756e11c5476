"""Accuracy evaluators: what a Ray worker holds in memory and calls per trial."""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from nas.errors import CheckpointError, SpecError
from nas.spec import RunSpec
from search_spaces import SearchSpace

__all__ = [
    "Evaluator",
    "SupernetAccuracy",
    "PredictorAccuracy",
    "build_evaluator",
    "load_ofa_predictor",
    "predictor_path",
]


class Evaluator(abc.ABC):
    """Scores configs of one space. Built once per process; not shared between threads."""

    space: SearchSpace

    @abc.abstractmethod
    def accuracy(self, config: Any) -> float:
        """Validation top-1 in [0, 1] (measured or predicted)."""


class SupernetAccuracy(Evaluator):
    """Extract from the trained supernet, recalibrate BN, top-1 on the validation split."""

    def __init__(self, spec: RunSpec) -> None:
        from nas.jobs import subnet_evaluator

        self.space, self._evaluator = subnet_evaluator(spec)
        self._val_images = spec.evaluator.val_images

    def accuracy(self, config: Any) -> float:
        return self._evaluator.evaluate(config, "val", max_images=self._val_images)["accuracy"]


def predictor_path(spec: RunSpec) -> Path:
    """``NAS_OFA_PREDICTOR`` if set, else ``evaluator.predictor``."""
    raw = os.environ.get("NAS_OFA_PREDICTOR") or spec.evaluator.predictor
    if not raw:
        raise SpecError(
            "evaluator.predictor (or NAS_OFA_PREDICTOR) is required when evaluator.kind is "
            "predictor"
        )
    return spec.resolve_path(raw)


def load_ofa_predictor(path: str | Path, n_inputs: int = 128) -> nn.Module:
    """OFA's published accuracy predictor (``acc_predictor.pth``: an MLP state dict with keys
    ``0.*, 2.*, 4.*, 6.*``), on the CPU. Input: ``search_spaces`` ``encode()`` of ``ofa_mbv3``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"accuracy predictor not found: {path}")
    model = nn.Sequential(
        nn.Linear(n_inputs, 400),
        nn.ReLU(),
        nn.Linear(400, 400),
        nn.ReLU(),
        nn.Linear(400, 400),
        nn.ReLU(),
        nn.Linear(400, 1),
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    except Exception as e:  # torch raises many types for a file that is not a state dict
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path} is not an OFA accuracy predictor state dict: {first_line}"
        ) from e
    return model.eval()


class PredictorAccuracy(Evaluator):
    def __init__(self, spec: RunSpec) -> None:
        from search_spaces import get_space

        self.space = get_space(spec.space)
        self._model = load_ofa_predictor(predictor_path(spec), self.space.encoding_size)

    @torch.no_grad()
    def accuracy(self, config: Any) -> float:
        return float(self._model(torch.from_numpy(self.space.encode(config))[None]).squeeze())

    @torch.no_grad()
    def accuracies(self, configs: list) -> list[float]:
        import numpy as np

        x = torch.from_numpy(np.stack([self.space.encode(c) for c in configs]))
        return self._model(x).squeeze(1).tolist()


def build_evaluator(spec: RunSpec) -> Evaluator:
    return SupernetAccuracy(spec) if spec.evaluator.kind == "supernet" else PredictorAccuracy(spec)
