"""The command line, end to end on a small dataset: train, evaluate, errors."""

from __future__ import annotations

import json

import pytest
import yaml

from nas.cli import main
from nas.paths import assets_root
from tests.conftest import tiny_spec_dict


@pytest.fixture(scope="module")
def trained_spec(small_fmnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    data = tiny_spec_dict(small_fmnist, out, phases=[{"name": "full", "epochs": 1, "lr": 0.1}])
    path = out / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["train-supernet", str(path), "--quiet", "--no-mlflow"]) == 0
    return path


def test_eval_json_has_the_documented_keys(trained_spec, capsys):
    assert (
        main(["eval", str(trained_spec), "--subnet", "smallest", "--split", "test", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"config", "accuracy", "split", "n_images"}
    assert out["split"] == "test" and out["n_images"] == 300 and 0.0 <= out["accuracy"] <= 1.0
    assert out["config"] == "r12_k3e3_k3e3_k3e3_k3e3"  # depth 1 at 12 px


def test_eval_of_a_config_string(trained_spec, capsys):
    config = "r28_k357e346_k33e66_k7777e6436_k55e34"
    assert main(["eval", str(trained_spec), "--subnet", config, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == config and out["split"] == "val" and out["n_images"] == 400


def test_bad_subnet_is_a_clear_error_not_a_traceback(trained_spec, capsys):
    assert main(["eval", str(trained_spec), "--subnet", "r28_k9e3"]) == 2
    err = capsys.readouterr().err
    assert "nas: error:" in err and "Traceback" not in err


def test_missing_checkpoint_says_how_to_make_one(trained_spec, tmp_path, capsys):
    assert main(["eval", str(trained_spec), "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "nas train-supernet" in capsys.readouterr().err


def test_unknown_spec_field_names_the_field(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nsupernet: {batch: 3}\n")
    assert main(["eval", str(spec)]) == 2
    assert "supernet.batch" in capsys.readouterr().err


def test_missing_dataset_names_the_package(tmp_path, capsys):
    spec = tmp_path / "nodata.yaml"
    spec.write_text(f"name: x\ndataset: {{root: {tmp_path / 'nowhere'}}}\n")
    assert main(["eval", str(spec)]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err


def test_lut_predict_json(capsys):
    lut = str(assets_root() / "latency_luts" / "note10")
    args = ["lut", "predict", "--lut", lut, "--space", "ofa_mbv3", "--subnet", "largest", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] > 0


def test_spaces_lists_both(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "ofa_mbv3:" in out and "ofa_mbv3_small:" in out
