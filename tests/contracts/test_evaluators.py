"""Contract suite run over every evaluator registered in nas.registry.EVALUATORS: built once from
a spec, it scores the space's smallest and largest config with an accuracy in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.paths import assets_root
from nas.registry import EVALUATORS
from nas.search import Evaluator, build_evaluator
from nas.spec import RunSpec, spec_from_dict
from search_spaces import SearchSpace

SUPERNET = assets_root() / "checkpoints" / "ofa_mbv3_small_fashion_mnist" / "supernet.pt"
PREDICTOR = assets_root() / "predictors" / "ofa_mbv3_w12_imagenet_acc.pth"


def _supernet_spec(fmnist: Path) -> RunSpec:
    """The shipped Fashion-MNIST supernet, scored on the small IDX dataset of conftest."""
    return spec_from_dict(
        {
            "name": "contract_supernet",
            "space": "ofa_mbv3_small",
            "dataset": {"name": "fashion_mnist", "root": str(fmnist), "val_size": 300},
            "supernet": {"checkpoint": str(SUPERNET), "bn_calibration_images": 50},
            "evaluator": {"kind": "supernet", "val_images": 50},
        }
    )


def _predictor_spec(fmnist: Path) -> RunSpec:
    """OFA's published ImageNet accuracy predictor over the ofa_mbv3 space."""
    return spec_from_dict(
        {
            "name": "contract_predictor",
            "space": "ofa_mbv3",
            "evaluator": {"kind": "predictor", "predictor": str(PREDICTOR)},
        }
    )


# one spec per registered evaluator: registering a new one without a spec here fails the suite
SPECS = {"supernet": _supernet_spec, "predictor": _predictor_spec}


def test_every_registered_evaluator_has_a_spec_in_this_suite():
    assert set(EVALUATORS.names()) <= set(SPECS), set(EVALUATORS.names()) - set(SPECS)


@pytest.fixture(scope="module", params=EVALUATORS.names())
def built(request, small_fmnist) -> tuple[RunSpec, Evaluator]:
    spec = SPECS[request.param](small_fmnist)
    return spec, build_evaluator(spec)


@pytest.fixture(autouse=True)
def _no_predictor_override(monkeypatch):
    monkeypatch.delenv("NAS_OFA_PREDICTOR", raising=False)


def test_evaluator_is_built_from_the_spec_for_its_space(built):
    spec, evaluator = built
    assert isinstance(evaluator, Evaluator) and isinstance(evaluator.space, SearchSpace)
    assert type(evaluator) is EVALUATORS.get(spec.evaluator.kind)
    assert evaluator.space.name == spec.space
    assert isinstance(evaluator.has_weights, bool) and isinstance(evaluator.predicted, bool)


@pytest.mark.slow
def test_evaluator_scores_smallest_and_largest_in_0_1_and_repeatably(built):
    _, evaluator = built
    space = evaluator.space
    for config in (space.smallest(), space.largest()):
        metrics = evaluator.evaluate(config)
        assert all(isinstance(v, float) for v in metrics.values()), metrics
        assert 0.0 <= metrics["accuracy"] <= 1.0, metrics
        assert evaluator.evaluate(config) == metrics  # the same config, the same metrics
        assert evaluator.accuracy(config) == metrics["accuracy"]


def test_evaluator_paths_are_absolute_files(built, tmp_path, monkeypatch):
    spec, evaluator = built
    monkeypatch.chdir(tmp_path)  # a worker's working directory differs from the driver's
    for field, path in type(evaluator).portable_paths(spec).items():
        assert hasattr(spec.evaluator, field), field
        assert Path(path).is_absolute() and Path(path).is_file(), (field, path)


def _elsewhere(spec: RunSpec) -> RunSpec:
    """``spec`` as a worker on another node sees it: none of the files it names exists there."""
    import dataclasses

    gone = "/nonexistent/nas-driver-only"
    evaluator = spec.evaluator
    for field in EVALUATORS.get(spec.evaluator.kind).portable_paths(spec):
        evaluator = dataclasses.replace(evaluator, **{field: f"{gone}/{field}"})
    return dataclasses.replace(
        spec,
        evaluator=evaluator,
        dataset=dataclasses.replace(spec.dataset, root=f"{gone}/data"),
        supernet=dataclasses.replace(spec.supernet, checkpoint=f"{gone}/supernet.pt"),
    )


@pytest.mark.slow
def test_evaluator_is_built_from_its_inputs_without_reading_a_file(built):
    """What ``load_inputs`` read, pickled (as Ray's object store carries it to a worker), builds
    an evaluator on a spec whose files do not exist (another node) that scores as the one built
    from the files."""
    import pickle

    spec, evaluator = built
    cls = type(evaluator)
    inputs = pickle.loads(pickle.dumps(cls.load_inputs(spec)))
    assert isinstance(inputs, dict)
    elsewhere = _elsewhere(spec)
    if inputs:  # an evaluator that reads files cannot be built from the spec alone there
        with pytest.raises(Exception):  # noqa: B017  (whatever the missing file raises)
            build_evaluator(elsewhere)
    remote = build_evaluator(elsewhere, inputs)
    for config in (evaluator.space.smallest(), evaluator.space.largest()):
        assert remote.evaluate(config) == evaluator.evaluate(config)
