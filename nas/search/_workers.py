"""The Ray actor: holds one evaluator (supernet + data, or a predictor) and scores configs."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["EvaluatorWorker", "make_worker_class"]


class EvaluatorWorker:
    """Stateless with respect to the study: the driver sends config strings, gets metrics back."""

    def __init__(self, spec_dict: dict[str, Any], threads: int) -> None:
        import torch

        import nas  # noqa: F401  (torchvision/ofa import trap inside the worker process)
        from nas.errors import NASError
        from nas.search._evaluators import build_evaluator
        from nas.spec import spec_from_dict

        torch.set_num_threads(threads)
        self.error: str | None = None
        try:
            self.evaluator = build_evaluator(spec_from_dict(spec_dict))
        except NASError as e:  # reported by ping(): one clear message, not a remote traceback
            self.error = str(e)

    def evaluate(self, config_text: str) -> dict[str, float]:
        start = time.perf_counter()
        config = self.evaluator.space.parse(config_text)
        accuracy = self.evaluator.accuracy(config)
        return {"accuracy": accuracy, "eval_seconds": time.perf_counter() - start}

    def ping(self) -> str | None:
        """None when the evaluator is ready, else why it could not be built."""
        return self.error


def make_worker_class(threads: int):
    import ray

    return ray.remote(num_cpus=threads)(EvaluatorWorker)
