"""Ray plumbing shared by every parallel job (search, NetAdapt): one way to start or join Ray,
to hand a spec to workers, and to wait for workers to be ready."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

from nas.errors import NASError
from nas.registry import EVALUATORS
from nas.spec import RunSpec

__all__ = ["LOOPBACK_ENV", "init_ray", "spec_to_dict", "wait_ready"]

#: Ray's own switch (``ray/_private/ray_constants.py``, read when ``ray`` is imported): "0" makes
#: a node's address 127.0.0.1, so every server of a Ray started here (GCS, raylet, workers,
#: agents, metrics) listens on loopback only; Ray's default listens on all interfaces
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def init_ray(cpus: int) -> bool:
    """Join ``RAY_ADDRESS`` when set, else start an embedded Ray with at least ``cpus`` CPUs,
    listening on 127.0.0.1 only (unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` says
    otherwise). True when this call started or joined Ray (the caller then shuts it down),
    False when Ray was already initialised by someone else."""
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        with _loopback_only():
            ray.init(
                num_cpus=max(cpus, os.cpu_count() or 1),
                include_dashboard=False,
                log_to_driver=False,
            )
    return True


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """While Ray starts: its switch off in this process (already imported) and in the
    environment its processes inherit; both as they were afterwards, so that a later job of
    this process, or a process it starts, can still join a cluster."""
    from ray._private import ray_constants

    user = os.environ.get(LOOPBACK_ENV)
    constant = ray_constants.ENABLE_RAY_CLUSTER
    if user is None:
        os.environ[LOOPBACK_ENV] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if user is None:
            os.environ.pop(LOOPBACK_ENV, None)
        ray_constants.ENABLE_RAY_CLUSTER = constant


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
