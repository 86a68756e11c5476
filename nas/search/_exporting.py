"""The end-of-search export of one Pareto member (fine-tune, export, verify), as a function and as
a Ray actor that holds the supernet and the dataset, so that the members export in parallel on an
:class:`nas.pool.ActorPool` while the driver registers the finished ones in MLflow."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ExportWorker", "export_member", "longest_first", "register_fronts"]

logger = logging.getLogger(__name__)


def export_member(
    spec: Any,
    space: Any,
    evaluator: Any,
    latency_model: Any,
    config_text: str,
    out_dir: Path,
    formats: list[str],
    *,
    score_threads: int | None = None,
    measure_latency: bool = True,
    distill: Any = None,
) -> list[Any]:
    """Fine-tune ``config_text``'s subnet (``export.finetune_epochs``; distilled with
    ``distill``, a :class:`nas.supernet.Distillation`, when given), export it in ``formats``
    into ``out_dir`` and verify each file; the :class:`nas.export.ExportedFile` list (untimed
    with ``measure_latency`` False: see ``nas.export.time_exported``)."""
    from nas.export import export_subnet
    from nas.supernet import finetune

    config = space.parse(config_text)
    subnet = finetune(
        evaluator.subnet(config),
        evaluator.dataset,
        space.input_shape(config)[1],
        spec.export.finetune_epochs,
        seed=spec.seed,
        distill=distill,
    )
    return export_subnet(
        space,
        config,
        subnet,
        evaluator.dataset,
        out_dir,
        formats=formats,
        latency_model=latency_model,
        qat_epochs=spec.export.qat_epochs,
        score_threads=score_threads,
        measure_latency=measure_latency,
    )


class ExportWorker:
    """Ray actor: the spec's supernet evaluator (supernet + dataset) and latency tables, built
    once; ``export(device_index, config, out_dir, formats)`` runs :func:`export_member` and
    leaves the files untimed (a worker's timing would describe its neighbours' load)."""

    def __init__(self, spec_dict: dict[str, Any], threads: int) -> None:
        import torch

        import nas  # noqa: F401  (torchvision/ofa import trap inside the worker process)
        from nas.errors import NASError
        from nas.spec import spec_from_dict

        torch.set_num_threads(threads)
        self.threads = threads
        self.error: str | None = None
        self.spec = spec_from_dict(spec_dict)
        self.latency: dict[int, Any] = {}
        self.distill: Any = None  # export.distill's teacher, built on first use
        try:
            from nas.jobs import subnet_evaluator

            self.space, self.evaluator = subnet_evaluator(self.spec)
        except NASError as e:  # reported by ping(): one clear message
            self.error = str(e)

    def ping(self) -> str | None:
        return self.error

    def _latency(self, device_index: int) -> Any:
        if device_index not in self.latency:
            from nas.latency import build_latency

            device = self.spec.devices[device_index]
            lut = self.spec.resolve_path(device.lut)
            self.latency[device_index] = build_latency(lut, self.space, dtype=device.dtype)
        return self.latency[device_index]

    def export(
        self, device_index: int, config_text: str, out_dir: str, formats: list[str]
    ) -> list[Any]:
        return export_member(
            self.spec,
            self.space,
            self.evaluator,
            self._latency(device_index),
            config_text,
            Path(out_dir),
            formats,
            score_threads=self.threads,
            measure_latency=False,
            distill=self._distillation(),
        )

    def _distillation(self) -> Any:
        if self.spec.export.distill is None or not self.spec.export.finetune_epochs:
            return None
        if self.distill is None:
            from nas.jobs import distillation

            self.distill = distillation(self.spec, "export", self.evaluator)
        return self.distill


def register_fronts(
    spec: Any,
    job: Any,
    fronts: dict[str, list[dict[str, Any]]],
    run_ids: dict[str, str],
    out_dir: Path,
    *,
    progress: Callable[[str], None] = logger.info,
    workers: int = 1,
    client: Any = None,
) -> dict[str, dict[str, Any]]:
    """Export, verify and register the chosen Pareto members of every device's front.

    ``fronts``: device name -> rows ``{"config", "accuracy", "latency_ms": {device: ms}}``;
    ``run_ids``: config -> the trial's MLflow run. The members export in parallel, one task per
    member on an :class:`nas.pool.ActorPool` of ``workers`` actors (1 thread each; Ray must be
    up or is started); once they are all done, this process times each file (nothing else
    running) and registers it (``client``: an ``MlflowClient``, default the spec's tracking
    URI's). Resumable: a (trial, format) already
    registered is not exported again. Files that fail parity are logged, tagged on the trial run
    (``export.<format>``) and not registered. Returns, per device, the registered model's name,
    its versions and aliases.

    Raises:
        NASError: a member's export failed (the others are registered first; run again to retry
            the failed ones), or the workers could not start.
    """
    from nas.tracking.registry import plan_exports, registered_name, set_aliases, tracking_client

    client = client or tracking_client(spec.tracking_uri)
    budgets = spec.budgets_ms()
    tasks, formats = plan_exports(client, spec, job, fronts, run_ids, out_dir, budgets)
    tasks = longest_first(tasks, job.space)
    failed = _export_on_pool(client, spec, job, tasks, workers, progress) if tasks else []
    summary = {
        device: set_aliases(client, registered_name(spec.name, device), fmts[0], budgets)
        for device, fmts in formats.items()
    }
    if failed:
        from nas.errors import NASError

        raise NASError(
            f"{len(failed)} of {len(tasks)} export(s) failed (the others are registered; run "
            f"again to retry): " + "; ".join(failed)
        )
    return summary


def longest_first(tasks: list[dict[str, Any]], space: Any) -> list[dict[str, Any]]:
    """The export tasks, the longest expected first (longest-processing-time-first scheduling:
    the pool's last task is then a short one, and no worker idles while the other finishes a
    long one). Expected length: the subnet's MACs times its formats, an int8 format counting
    1.4 (its calibration and its slower kernels on a host)."""

    def cost(task: dict[str, Any]) -> float:
        macs = space.macs(space.parse(task["row"]["config"]))
        return macs * sum(1.4 if "int8" in f else 1.0 for f in task["todo"])

    return sorted(tasks, key=cost, reverse=True)


def _export_on_pool(
    client: Any,
    spec: Any,
    job: Any,
    tasks: list[dict[str, Any]],
    workers: int,
    progress: Callable[[str], None],
) -> list[str]:
    """Run the tasks on a pool; once every worker is done (the machine quiet), time each file
    here (beside the reference layers of the job's first host table, if it has one) and
    register it. The failed tasks' messages."""
    from nas.export import time_exported
    from nas.latency import reference_for
    from nas.tracking.registry import register_files

    exported, failed = _run_exports(spec, tasks, workers, progress)
    reference = next(filter(None, (reference_for(m) for m in job.devices)), None)
    for t, files in exported:
        timed = [time_exported(f, reference=reference) for f in files]
        register_files(
            client,
            t["name"],
            t["run_id"],
            t["row"],
            t["device"],
            timed,
            spec.export.finetune_epochs,
        )
    return failed


def _run_exports(
    spec: Any, tasks: list[dict[str, Any]], workers: int, progress: Callable[[str], None]
) -> tuple[list[tuple[dict[str, Any], list[Any]]], list[str]]:
    """The tasks on an :class:`ActorPool`: (task, untimed files) of each that finished, and the
    failed ones' messages."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from nas.cluster import spec_to_dict
    from nas.pool import ActorPool

    # on the driver's node: the files they write are timed and registered here
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(num_cpus=1, scheduling_strategy=here)(ExportWorker)
    size = max(1, min(workers, len(tasks)))
    exported, failed = [], []
    with ActorPool(
        actor,
        (spec_to_dict(spec), 1),
        size=size,
        max_failures=len(tasks) + size,
        what="an export worker",
    ) as pool:
        for i, t in enumerate(tasks, 1):
            progress(f"{t['name']}: exporting {i}/{len(tasks)} {t['row']['config']}")
            pool.submit(t, "export", t["index"], t["row"]["config"], t["out"], t["todo"])
        for done in pool.as_completed():
            t = done.item
            if not done.ok:
                logger.warning(
                    "%s: export of %s failed: %s", t["name"], t["row"]["config"], done.error
                )
                failed.append(f"{t['row']['config']} ({t['device']}): {done.error}")
                continue
            progress(f"{t['name']}: exported {t['row']['config']} in {done.seconds:.0f} s")
            exported.append((t, done.value))
    return exported, failed
