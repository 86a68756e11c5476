"""Supernet training on a small dataset: it learns, logs to MLflow, and resumes after a crash."""

from __future__ import annotations

import mlflow
import pytest
import torch

from nas.jobs import load_job, load_supernet
from nas.spec import spec_from_dict
from nas.supernet import SubnetEvaluator, SupernetTrainer, recalibrate_bn
from tests.conftest import tiny_spec_dict


class _Crash(Exception):
    pass


def test_a_truncated_training_state_is_named_not_unpickled(small_fmnist, tmp_path):
    """The resume file is read with ``weights_only=True``; a truncated one is one error naming
    it (and what to do), not a traceback from inside torch."""
    from nas.errors import CheckpointError

    spec = spec_from_dict(tiny_spec_dict(small_fmnist, tmp_path))
    dataset, space = load_job(spec)
    (tmp_path / "work").mkdir()
    state = tmp_path / "work" / "train_state.pt"
    torch.save({"epoch": 1, "model": {"w": torch.zeros(3)}}, state)
    state.write_bytes(state.read_bytes()[:40])
    trainer = SupernetTrainer(spec, space, dataset, work_dir=tmp_path / "work")
    with pytest.raises(CheckpointError, match="train_state.pt: cannot resume from it"):
        trainer.run()


@pytest.mark.slow
def test_training_learns_and_resumes_after_interruption(small_fmnist, tmp_path):
    phases = tiny_spec_dict(small_fmnist, tmp_path)["supernet"]["phases"]
    phases[0]["epochs"] = 2  # 16 sandwich steps are too few to learn reliably from 800 images
    spec = spec_from_dict(tiny_spec_dict(small_fmnist, tmp_path, batch_size=50, phases=phases))
    dataset, space = load_job(spec)
    steps = {"n": 0}

    def crash_in_second_epoch(n, info):
        steps["n"] += n
        if steps["n"] == 20:  # epoch 1 has 16 steps of 50 images
            raise _Crash

    trainer = SupernetTrainer(
        spec, space, dataset, work_dir=tmp_path / "work", progress=crash_in_second_epoch
    )
    with pytest.raises(_Crash):
        trainer.run()
    assert (tmp_path / "work" / "train_state.pt").is_file()
    assert not (tmp_path / "supernet.pt").exists()
    first_run_id = trainer.mlflow_run_id

    resumed = SupernetTrainer(spec, space, dataset, work_dir=tmp_path / "work")
    result = resumed.run()
    assert resumed.epoch == 3 and [h["epoch"] for h in result.history] == [1, 2, 3]
    assert [h["phase"] for h in result.history] == ["full", "full", "expand"]
    assert result.mlflow_run_id == first_run_id  # the same MLflow run goes on
    run = mlflow.get_run(first_run_id)
    assert run.data.metrics["val_acc_largest"] > 0.4, run.data.metrics  # chance is 0.1
    assert "supernet.batch_size" in run.data.params

    # the shipped format loads back and extracted subnets beat chance on held-out test images
    _, supernet, blob = load_supernet(spec, space)
    assert (
        blob["meta"]["epochs"] == 3
        and blob["state_dict"]["first_conv.conv.weight"].dtype == torch.float32
    )
    evaluator = SubnetEvaluator(space, supernet, dataset, bn_calibration_images=200)
    for which in ("largest", "smallest"):
        out = evaluator.evaluate(space.resolve(which), "test")
        assert out["n_images"] == 300 and out["accuracy"] > 0.3, out


def test_finetune_trains_a_subnet_on_the_training_split(small_fmnist):
    from nas.data import batches, load_fashion_mnist
    from nas.supernet import finetune, top1
    from search_spaces import get_space

    torch.manual_seed(0)
    dataset = load_fashion_mnist(small_fmnist, val_size=200)
    space = get_space("ofa_mbv3_small")
    config = space.smallest()
    model = space.build(config)

    def test_acc():
        loader = batches(dataset.test, 300, dataset.preprocessing, resolution=config.resolution)
        return top1(model, loader)[0]

    before = test_acc()
    assert finetune(model, dataset, config.resolution, 0) is model and not model.training
    finetune(model, dataset, config.resolution, 3, lr=0.05, batch_size=50)
    assert not model.training
    assert test_acc() > max(before + 0.2, 0.4)


def test_bn_recalibration_replaces_running_statistics():
    bn = torch.nn.BatchNorm2d(3)
    model = torch.nn.Sequential(bn).eval()
    data = [(torch.randn(50, 3, 4, 4) * 2 + 5, None) for _ in range(4)]
    recalibrate_bn(model, data)
    assert torch.allclose(bn.running_mean, torch.full((3,), 5.0), atol=0.2)
    assert torch.allclose(bn.running_var, torch.full((3,), 4.0), atol=0.4)
    assert bn.momentum == 0.1 and not model.training


def test_a_space_without_elastic_dimensions_trains_single_paths(small_fmnist, tmp_path):
    """nb201 (no ``Shrinkable``): every step trains uniformly drawn subnets; phases that name
    elastic choices are refused, naming the phase."""
    from nas.errors import SpecError

    phases = [{"name": "single-path", "epochs": 3, "lr": 0.1}]
    spec_dict = tiny_spec_dict(small_fmnist, tmp_path, batch_size=50, phases=phases)
    spec = spec_from_dict({**spec_dict, "space": "nb201"})
    dataset, space = load_job(spec)
    torch.manual_seed(0)  # the supernet's initial weights
    result = SupernetTrainer(spec, space, dataset, work_dir=tmp_path / "work", track=False).run()
    assert [h["phase"] for h in result.history] == ["single-path"] * 3
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    _, supernet, blob = load_supernet(spec, space)
    assert blob["space"] == "nb201"
    evaluator = SubnetEvaluator(space, supernet, dataset, bn_calibration_images=200)
    config = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    # 48 single-path steps on 800 images: the loss falls (above), but what one architecture
    # reaches varies with the initial weights (0.07-0.39 seen); the shipped checkpoint's README
    # has the trained figures
    out = evaluator.evaluate(config, "test")
    assert out["n_images"] == 300 and 0.0 <= out["accuracy"] <= 1.0

    elastic = [{"name": "kernel", "epochs": 1, "lr": 0.05, "kernels": [3, 5]}]
    bad = spec_from_dict(
        {**tiny_spec_dict(small_fmnist, tmp_path, phases=elastic), "space": "nb201"}
    )
    with pytest.raises(SpecError, match=r"supernet.phases\['kernel'\]"):
        SupernetTrainer(bad, space, dataset, work_dir=tmp_path / "bad", track=False)


def test_training_starts_from_init_weights_and_draws_only_the_phase_resolutions(
    small_fmnist, tiny_supernet, tmp_path
):
    """``supernet.init_weights`` starts a training from another supernet of the space (the
    shipped one extends a first stage to more resolutions and depths); a phase's
    ``resolutions`` are the only ones it draws, its largest subnet at the largest of them."""
    import numpy as np

    from nas.errors import CheckpointError, SpecError
    from nas.supernet import load_weights

    phases = [{"name": "low", "epochs": 1, "lr": 0.01, "depths": [1, 2], "resolutions": [12, 16]}]
    spec = spec_from_dict(
        tiny_spec_dict(small_fmnist, tmp_path, init_weights=str(tiny_supernet), phases=phases)
    )
    dataset, space = load_job(spec)
    trainer = SupernetTrainer(spec, space, dataset, work_dir=tmp_path / "work", track=False)
    init = load_weights(tiny_supernet)["state_dict"]
    own = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert all(torch.equal(own[k], v) for k, v in init.items())
    phase = spec.supernet.phases[0]
    rng = np.random.default_rng(0)
    drawn = {trainer._phase_space(phase).sample(rng).resolution for _ in range(40)}
    assert drawn == {12, 16}
    assert trainer._phase_space(phase).largest().resolution == 16
    assert str(trainer._phase_space(phase).smallest()) == "r12_k7e6_k7e6_k7e6_k7e6"
    trainer.run()  # one epoch at 12 and 16 px from the tiny supernet's weights
    assert not torch.equal(
        trainer.model.state_dict()["first_conv.conv.weight"], own["first_conv.conv.weight"]
    )

    with pytest.raises(CheckpointError, match="init_weights.*not found"):
        spec = spec_from_dict(
            tiny_spec_dict(small_fmnist, tmp_path, init_weights=str(tmp_path / "none.pt"))
        )
        SupernetTrainer(spec, space, dataset, work_dir=tmp_path / "w2", track=False)
    with pytest.raises(SpecError, match="init_weights.*supernet of nb201, not of ofa_mbv3_small"):
        spec = spec_from_dict(
            tiny_spec_dict(
                small_fmnist,
                tmp_path,
                init_weights="checkpoints/nb201_fashion_mnist/supernet.pt",
            )
        )
        SupernetTrainer(spec, space, dataset, work_dir=tmp_path / "w3", track=False)
