"""Accuracy evaluators: what a Ray worker holds in memory and calls per trial."""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from nas.errors import CheckpointError, SpecError, first_line
from nas.registry import EVALUATORS
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
    """Scores configs of one search space: what a search worker holds in memory and calls per
    trial. Registered in ``nas.registry.EVALUATORS`` under ``evaluator.kind``.

    Contract:
    - Built once per worker process, by ``EVALUATORS.create(kind, spec)`` from the run spec
      (a :class:`nas.spec.RunSpec`); the constructor loads what every evaluation needs (a
      supernet and a dataset, a predictor file) and raises if it cannot, which is the worker's
      one start-up error. Paths it reads from the spec are listed by ``portable_paths``, so that
      a worker on another machine or in another folder gets them absolute; the files it reads
      by ``input_files``, which the driver checks before Ray starts.
    - ``space`` is the :class:`search_spaces.SearchSpace` whose configs it scores.
    - ``evaluate(config)`` returns a dict of float metrics with at least ``accuracy``: validation
      top-1 in [0, 1], measured or predicted; further keys are extra metrics. It does not depend
      on the order of calls: the same config gives the same metrics within one evaluator.
    - An evaluator is used by one thread at a time (a worker evaluates one config at a time).
    - Class attributes tell the engine what the scores are, so it never asks for a kind by
      name: ``has_weights`` (the configs come with trained weights from a supernet, so the
      front can be exported) and ``predicted`` (accuracy is a model's estimate, not measured).
    """

    space: SearchSpace
    has_weights: ClassVar[bool] = False
    predicted: ClassVar[bool] = False

    @abc.abstractmethod
    def evaluate(self, config: Any) -> dict[str, float]:
        """Metrics of ``config``; ``accuracy`` in [0, 1] among them."""

    def accuracy(self, config: Any) -> float:
        """``evaluate(config)["accuracy"]``."""
        return float(self.evaluate(config)["accuracy"])

    @classmethod
    def portable_paths(cls, spec: RunSpec) -> dict[str, str]:
        """``evaluator.*`` fields of ``spec`` that are paths, resolved to absolute paths
        (default: none)."""
        return {}

    @classmethod
    def input_files(cls, spec: RunSpec) -> dict[str, Path]:
        """The files a worker will read, by the spec field that names them, checked by the
        driver before Ray starts (``check_input_files``); default: ``portable_paths``."""
        return {f"evaluator.{k}": Path(v) for k, v in cls.portable_paths(spec).items()}


@EVALUATORS.register("supernet")
class SupernetAccuracy(Evaluator):
    """Extract from the trained supernet, recalibrate BN, top-1 on the validation split."""

    has_weights = True

    def __init__(self, spec: RunSpec) -> None:
        from nas.jobs import subnet_evaluator

        self.space, self._evaluator = subnet_evaluator(spec)
        self._val_images = spec.evaluator.val_images

    def evaluate(self, config: Any) -> dict[str, float]:
        out = self._evaluator.evaluate(config, "val", max_images=self._val_images)
        return {k: float(v) for k, v in out.items() if isinstance(v, int | float)}


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
        raise CheckpointError(
            f"{path} is not an OFA accuracy predictor state dict: {first_line(e, limit=10_000)}"
        ) from e
    return model.eval()


@EVALUATORS.register("predictor")
class PredictorAccuracy(Evaluator):
    """OFA's published accuracy predictor on ``encode()`` of the config (``evaluator.predictor``,
    or ``NAS_OFA_PREDICTOR``)."""

    predicted = True

    def __init__(self, spec: RunSpec) -> None:
        from search_spaces import get_space

        self.space = get_space(spec.space)
        self._model = load_ofa_predictor(predictor_path(spec), self.space.encoding_size)

    @torch.no_grad()
    def evaluate(self, config: Any) -> dict[str, float]:
        x = torch.from_numpy(self.space.encode(config))[None]
        return {"accuracy": float(self._model(x).squeeze())}

    @classmethod
    def portable_paths(cls, spec: RunSpec) -> dict[str, str]:
        return {"predictor": str(predictor_path(spec))}

    @torch.no_grad()
    def accuracies(self, configs: list) -> list[float]:
        import numpy as np

        x = torch.from_numpy(np.stack([self.space.encode(c) for c in configs]))
        return self._model(x).squeeze(1).tolist()


def check_input_files(spec: RunSpec) -> None:
    """Every file the spec's evaluator will read (``Evaluator.input_files``) is there, so that
    a missing one is named by the driver, not by a worker after Ray's start-up (the supernet
    checkpoint is read by the driver itself).

    Raises:
        SpecError: naming the field and the file.
    """
    for field, path in EVALUATORS.get(spec.evaluator.kind).input_files(spec).items():
        if not path.is_file():
            raise SpecError(f"{field} = {str(path)!r}: no such file")


def build_evaluator(spec: RunSpec) -> Evaluator:
    """The evaluator registered as ``spec.evaluator.kind``, built from ``spec``.

    Raises:
        RegistryError: no evaluator is registered under that name.
    """
    return EVALUATORS.create(spec.evaluator.kind, spec)
