"""Ray plumbing shared by every parallel job (search, NetAdapt): one way to start or join Ray,
to hand a spec to workers, and to wait for workers to be ready."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from nas.errors import NASError
from nas.registry import EVALUATORS
from nas.spec import RunSpec

__all__ = ["init_ray", "spec_to_dict", "wait_ready"]


def init_ray(cpus: int) -> bool:
    """Join ``RAY_ADDRESS`` when set, else start an embedded Ray with at least ``cpus`` CPUs.
    True when this call started or joined Ray (the caller then shuts it down), False when Ray
    was already initialised by someone else."""
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=max(cpus, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False
        )
    return True


def wait_ready(actors: list, what: str) -> None:
    """Every worker has built what it holds; a constructor error becomes one clear error.
    Workers answer ``ping()`` with None when ready, else why they are not."""
    import ray

    try:
        errors = [e for e in ray.get([a.ping.remote() for a in actors]) if e]
    except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
        raise NASError(f"{what} could not start: {e}") from e
    if errors:
        raise NASError(f"{what} could not start its evaluator: {errors[0]}")


def spec_to_dict(spec: RunSpec) -> dict[str, Any]:
    """The spec as plain data for the workers, with paths made absolute (a worker's cwd differs)."""
    data = dataclasses.asdict(spec)
    data.pop("source", None)
    data["supernet"]["checkpoint"] = str(spec.resolve_path(spec.supernet.checkpoint))
    if spec.dataset.root:
        data["dataset"]["root"] = str(spec.resolve_path(spec.dataset.root))
    # the evaluator knows which of its fields are paths (a predictor file, ...)
    data["evaluator"].update(EVALUATORS.get(spec.evaluator.kind).portable_paths(spec))
    return _lists(data)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value
