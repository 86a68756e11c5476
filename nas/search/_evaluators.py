"""Accuracy evaluators: what a Ray worker holds in memory and calls per trial."""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from nas.errors import CheckpointError, SpecError, unreadable
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
    - Built once per worker process, by ``EVALUATORS.create(kind, spec, inputs)`` from the run
      spec (a :class:`nas.spec.RunSpec`) and ``inputs``: what ``load_inputs(spec)`` read from
      files (a supernet's weights and a dataset, a predictor). The driver calls ``load_inputs``
      once, before Ray starts, so a missing, truncated or malformed file is named there, and
      hands the result to every worker through Ray's object store: a worker on another node
      reads none of the driver's files. ``inputs=None``: the evaluator loads them itself. The
      constructor raises if it cannot be built, which is the worker's one start-up error.
      Paths the spec's evaluator fields name are listed by ``portable_paths`` (made absolute
      for jobs whose workers read them).
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
    def load_inputs(cls, spec: RunSpec) -> dict[str, Any]:
        """What every worker needs from files, read here (default: nothing). Picklable: it
        travels to the workers through Ray's object store.

        Raises:
            NASError: a file is missing or malformed (named).
        """
        return {}


@EVALUATORS.register("supernet")
class SupernetAccuracy(Evaluator):
    """Extract from the trained supernet, recalibrate BN, top-1 on the validation split."""

    has_weights = True

    def __init__(self, spec: RunSpec, inputs: dict[str, Any] | None = None) -> None:
        from nas.jobs import subnet_evaluator

        inputs = self.load_inputs(spec) if inputs is None else inputs
        self.space, self._evaluator = subnet_evaluator(
            spec, dataset=inputs["dataset"], blob=inputs["supernet"]
        )
        self._val_images = spec.evaluator.val_images

    @classmethod
    def load_inputs(cls, spec: RunSpec) -> dict[str, Any]:
        """The dataset (every file read and checked) and the supernet checkpoint."""
        from nas.data import load_dataset
        from nas.supernet import load_weights

        return {
            "dataset": load_dataset(spec.dataset, spec.folder()),
            "supernet": load_weights(spec.resolve_path(spec.supernet.checkpoint)),
        }

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
            f"{path} is not an OFA accuracy predictor state dict: {unreadable(e)}"
        ) from e
    return model.eval()


@EVALUATORS.register("predictor")
class PredictorAccuracy(Evaluator):
    """OFA's published accuracy predictor on ``encode()`` of the config (``evaluator.predictor``,
    or ``NAS_OFA_PREDICTOR``)."""

    predicted = True

    def __init__(self, spec: RunSpec, inputs: dict[str, Any] | None = None) -> None:
        from search_spaces import get_space

        self.space = get_space(spec.space)
        inputs = self.load_inputs(spec) if inputs is None else inputs
        self._model = inputs["predictor"]

    @classmethod
    def load_inputs(cls, spec: RunSpec) -> dict[str, Any]:
        """The predictor (an ``nn.Module``), read from its file."""
        from search_spaces import get_space

        path = predictor_path(spec)
        if not path.is_file():
            field = (
                "NAS_OFA_PREDICTOR"
                if os.environ.get("NAS_OFA_PREDICTOR")
                else "evaluator.predictor"
            )
            raise SpecError(f"{field} = {str(path)!r}: no such file")
        size = get_space(spec.space).encoding_size
        return {"predictor": load_ofa_predictor(path, size)}

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


def build_evaluator(spec: RunSpec, inputs: dict[str, Any] | None = None) -> Evaluator:
    """The evaluator registered as ``spec.evaluator.kind``, built from ``spec`` and ``inputs``
    (what its ``load_inputs`` read; None: it reads them itself).

    Raises:
        RegistryError: no evaluator is registered under that name.
    """
    return EVALUATORS.create(spec.evaluator.kind, spec, inputs)
