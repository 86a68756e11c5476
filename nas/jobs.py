"""What a run spec resolves to: its dataset, its search space, its trained supernet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.data import ImageDataset, load_dataset
from nas.errors import CheckpointError, SpecError, first_line
from nas.spec import RunSpec
from search_spaces import SearchSpace, WeightSharing, get_space

__all__ = ["distillation", "load_job", "load_supernet", "space_for", "subnet_evaluator"]


def space_for(spec: RunSpec, dataset: ImageDataset) -> SearchSpace:
    return get_space(spec.space, n_classes=dataset.n_classes, in_channels=dataset.in_channels)


def load_supernet(
    spec: RunSpec,
    space: SearchSpace,
    checkpoint: str | Path | None = None,
    blob: dict[str, Any] | None = None,
):
    """(space, supernet, checkpoint blob): the spec's trained supernet (``supernet.checkpoint``,
    or ``checkpoint`` if given, or ``blob``: that file already read by ``load_weights``), and
    the space it was trained for: ``space`` rebuilt with the checkpoint's ``space_options``
    where they differ (a space with size options, e.g. a smaller ``nb201`` network).

    Raises:
        SpecError: the space does not declare the ``WeightSharing`` capability.
        CheckpointError: the checkpoint is of another space or does not fit this one.
    """
    from nas.supernet import load_weights

    if not isinstance(space, WeightSharing):
        raise SpecError(f"space: {space.name!r} has no supernet (it is not weight-sharing)")
    path = spec.resolve_path(str(checkpoint or spec.supernet.checkpoint))
    blob = load_weights(path) if blob is None else blob
    if blob["space"] != space.name:
        raise CheckpointError(
            f"{path} holds a {blob['space']!r} supernet, the spec asks for {space.name!r}"
        )
    options = blob.get("space_options") or {}
    if options and options != space.options:
        space = get_space(spec.space, **options)
    model = space.supernet()
    space.load_supernet(model, blob["state_dict"])
    model.eval()
    return space, model, blob


def subnet_evaluator(
    spec: RunSpec,
    checkpoint: str | Path | None = None,
    dataset: ImageDataset | None = None,
    blob: dict[str, Any] | None = None,
):
    """(space, evaluator) for the spec's trained supernet, BN recalibration as the spec says;
    ``dataset`` and ``blob`` (the checkpoint, read): what the caller has loaded already."""
    from nas.supernet import SubnetEvaluator

    if dataset is None:
        dataset, space = load_job(spec)
    else:
        space = space_for(spec, dataset)
    space, supernet, _ = load_supernet(spec, space, checkpoint, blob)
    evaluator = SubnetEvaluator(
        space,
        supernet,
        dataset,
        bn_calibration_images=spec.supernet.bn_calibration_images,
        seed=spec.seed,
    )
    return space, evaluator


def load_job(spec: RunSpec) -> tuple[ImageDataset, SearchSpace]:
    dataset = load_dataset(spec.dataset, spec.folder())
    return dataset, space_for(spec, dataset)


def distillation(spec: RunSpec, where: str, evaluator) -> object | None:
    """The :class:`nas.supernet.Distillation` that ``<where>.distill`` asks for (``where``:
    ``export`` or ``netadapt``), or None without one. The teacher is built once: a subnet of
    the evaluator's supernet (``largest`` or a config string, BatchNorm recalibrated), or a
    whole module from a file.

    Raises:
        SpecError: the teacher is neither a subnet of the space nor a readable module file.
    """
    import torch

    from nas.errors import NASError
    from nas.supernet import Distillation

    distill = getattr(spec, where).distill
    if distill is None:
        return None
    field = f"{where}.distill.teacher"
    path = spec.resolve_path(distill.teacher)
    if path.is_file():
        try:  # an exported program: a graph and its weights, no pickled Python object to run
            teacher = torch.export.load(str(path)).module()
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise SpecError(
                f"{field}: {path} is not an exported program ({first_line(e)}); save the "
                "teacher with torch.export.save(torch.export.export(model, (x,), "
                "dynamic_shapes=({0: torch.export.Dim('batch')},)), path) (a pickled torch.save "
                "file is not loaded: unpickling runs whatever code it names)"
            ) from None
    else:
        try:
            config = evaluator.space.resolve(distill.teacher)
        except (NASError, ValueError) as e:
            raise SpecError(
                f"{field} = {distill.teacher!r} is neither largest, a config of "
                f"{evaluator.space.name} nor a file ({path} does not exist): {e}"
            ) from None
        teacher = evaluator.subnet(config).eval()  # (an exported program is frozen as exported)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return Distillation(teacher, alpha=distill.alpha, temperature=distill.temperature)
