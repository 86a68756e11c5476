"""The end-of-search export of one Pareto member (fine-tune, export, verify), as a function and as
a Ray actor that holds the supernet and the dataset, so that the members export in parallel on an
:class:`nas.pool.ActorPool` while the driver registers the finished ones in MLflow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["ExportWorker", "export_member"]

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
) -> list[Any]:
    """Fine-tune ``config_text``'s subnet (``export.finetune_epochs``), export it in ``formats``
    into ``out_dir`` and verify each file; the :class:`nas.export.ExportedFile` list."""
    from nas.export import export_subnet
    from nas.supernet import finetune

    config = space.parse(config_text)
    subnet = finetune(
        evaluator.subnet(config),
        evaluator.dataset,
        space.input_shape(config)[1],
        spec.export.finetune_epochs,
        seed=spec.seed,
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
    )


class ExportWorker:
    """Ray actor: the spec's supernet evaluator (supernet + dataset) and latency tables, built
    once; ``export(device_index, config, out_dir, formats)`` runs :func:`export_member`."""

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
        )
