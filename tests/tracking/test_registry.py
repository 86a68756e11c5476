"""The end of a search: Pareto models exported, verified, registered; `nas pick` and `nas export
RUN_ID` on a real MLflow store, real LiteRT files and a (tiny) real supernet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from nas.cli import main
from nas.export import HostFingerprint
from nas.jobs import load_job
from nas.paths import assets_root
from nas.spec import spec_from_dict
from nas.tracking.registry import budget_alias, select_members
from tests.conftest import tiny_spec_dict

HOST_LUT = assets_root() / "latency_luts" / "host-x86-litert"


def test_select_members_keeps_the_named_ones_and_spreads_the_rest():
    front = [{"latency_ms": ms, "accuracy": ms - 1} for ms in range(1, 11)]
    assert select_members(front, None, []) == front
    picked = select_members(front, 3, [4.5])
    assert [r["latency_ms"] for r in picked] == [1, 4, 10]  # fastest, best under 4.5, best
    assert [r["latency_ms"] for r in select_members(front, 4, [])] == [1, 4, 7, 10]
    assert budget_alias(20) == "best-under-20ms" and budget_alias(2.5) == "best-under-2p5ms"


def _litert_accuracy(path, contract, images, labels) -> float:
    from ai_edge_litert.interpreter import Interpreter

    pre = contract["preprocessing"]
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    import torch
    import torch.nn.functional as F

    x = (images.astype(np.float32) * pre["scale"] - pre["mean"][0]) / pre["std"][0]
    x = F.interpolate(
        torch.from_numpy(x[:, None]), size=(pre["height"], pre["width"]), mode="bilinear"
    ).numpy()
    correct = 0
    for img, label in zip(x, labels, strict=True):
        feed = img.transpose(1, 2, 0)[None]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            feed = np.clip(np.round(feed / scale + zero), -128, 127).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], feed)
        interpreter.invoke()
        correct += int(interpreter.get_tensor(out["index"])[0].argmax() == label)
    return correct / len(labels)


@pytest.mark.slow
@pytest.mark.usefixtures("tracking_store")
def test_search_registers_verified_models_and_pick_downloads_one(
    small_fmnist, tiny_supernet, tmp_path, capsys
):
    """On a SQLite store, and through an MLflow tracking server (``tracking_store``)."""
    data = tiny_spec_dict(small_fmnist, tmp_path)
    shutil.copy(tiny_supernet, data["supernet"]["checkpoint"])
    dataset, space = load_job(spec_from_dict(data))
    data.update(
        name="reg_test",
        evaluator={"kind": "supernet", "val_images": 100},
        devices=[{"lut": str(HOST_LUT)}, {"lut": str(HOST_LUT), "dtype": "int8"}],
        search={"sampler": "random", "trials": 6, "workers": 1},
        export={"k": 2},
    )
    spec_path = tmp_path / "reg_test.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    assert main(["search", str(spec_path), "--json", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "View run" not in out  # MLflow's per-run link to a server's UI stays off stdout
    registered = json.loads(out.strip().splitlines()[-1])["registered"]
    assert set(registered) == {"host-x86-litert", "host-x86-litert-int8"}

    client = mlflow.tracking.MlflowClient()
    for device, fmt in (
        ("host-x86-litert", "tflite-fp32"),
        ("host-x86-litert-int8", "tflite-int8"),
    ):
        reg = registered[device]
        assert reg["model"] == f"reg_test-{device}" and {"fastest", "most-accurate"} <= set(
            reg["aliases"]
        )
        versions = client.search_model_versions(f"name='reg_test-{device}'")
        assert 1 <= len(versions) == reg["versions"] <= 2
        for v in versions:
            assert v.tags["format"] == fmt and 0.0 <= float(v.tags["test_accuracy"]) <= 1.0
            assert float(v.tags["latency_predicted_ms"]) > 0
            assert float(v.tags["latency_measured_ms"]) > 0 and int(v.tags["size_bytes"]) > 0
            # its spread, and whether the machine was busy ("" or why)
            assert float(v.tags["latency_measured_std_ms"]) >= 0
            assert "latency_measured_busy" in v.tags
            # timed by the driver once the export workers were done, on a named machine
            assert HostFingerprint.here().key() in v.tags["latency_measured_on"]
            if fmt == "tflite-fp32":
                assert float(v.tags["parity_max_abs"]) <= 1e-3
            trial = client.get_run(v.tags["trial_run_id"])
            assert trial.data.params["config"] == v.tags["config"]
            assert trial.data.tags[f"export.{fmt}"] == "registered"

    # the pyfunc model predicts on raw pixels, with the accuracy its version reports
    images, labels = dataset.test.images[:, 0].numpy(), dataset.test.labels.numpy()
    version = client.get_model_version_by_alias("reg_test-host-x86-litert", "most-accurate")
    model = mlflow.pyfunc.load_model("models:/reg_test-host-x86-litert@most-accurate")
    stored = mlflow.artifacts.download_artifacts(
        "models:/reg_test-host-x86-litert@most-accurate", dst_path=str(tmp_path / "model")
    )  # a model from code: its file, contract and code, no pickled Python object to load
    assert not [p.name for p in Path(stored).rglob("*.pkl")]
    assert {"python_model.pkl", "cloudpickle"}.isdisjoint(p.name for p in Path(stored).rglob("*"))
    logits = model.predict(images)
    assert logits.shape == (300, 10)
    assert float((logits.argmax(1) == labels).mean()) == pytest.approx(
        float(version.tags["test_accuracy"]), abs=1e-9
    )

    # nas pick: the downloaded file runs in LiteRT with the accuracy pick reports
    out = tmp_path / "picked"
    argv = ["pick", "--experiment", "reg_test", "--device", "host-x86-litert-int8"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    picked = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert picked["format"] == "tflite-int8" and picked["path"].startswith(str(out))
    assert set(picked["preprocessing"]) == {
        "height",
        "width",
        "channels",
        "layout",
        "scale",
        "mean",
        "std",
    }
    contract = json.loads((out / (picked["path"].split("/")[-1] + ".json")).read_text())
    measured = _litert_accuracy(picked["path"], contract, images, labels)
    assert measured == pytest.approx(picked["accuracy"], abs=1e-9)

    assert "measured_busy" in picked

    # a measurement taken on a busy machine is shown flagged, never as a clean figure
    fastest = client.get_model_version_by_alias("reg_test-host-x86-litert-int8", "fastest")
    why = "the timing waited for a CPU 35% of its time"
    client.set_model_version_tag(fastest.name, fastest.version, "latency_measured_busy", why)
    assert main([*argv, "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert " ms!" in table and "measured on a busy machine" in table
    assert (
        main(
            [
                *argv,
                "--out",
                str(out),
                "--max-latency-ms",
                str(float(fastest.tags["latency_predicted_ms"]) + 1e-9),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["measured_busy"] == why

    # nothing fits: says so, shows the closest, exits 1
    assert main([*argv, "--max-latency-ms", "0.0001", "--out", str(out)]) == 1
    assert "nothing fits" in capsys.readouterr().err

    # re-running the finished search registers nothing twice
    assert main(["search", str(spec_path), "--json", "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["registered"]
    assert {d: r["versions"] for d, r in again.items()} == {
        d: r["versions"] for d, r in registered.items()
    }

    # nas export RUN_ID: any trial, on the front or not
    exp = client.get_experiment_by_name("reg_test")
    trial = client.search_runs([exp.experiment_id], "tags.`nas.role` = 'trial'")[-1]
    files = tmp_path / "exported"
    argv = ["export", trial.info.run_id, "--format", "tflite-fp32", "--out", str(files), "--json"]
    assert main(argv) == 0
    (exported,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert exported["parity_ok"] and trial.data.params["config"] in exported["path"]


@pytest.mark.parametrize("name", ["../../evil.tflite", "/etc/evil", "a/b.tflite", "..", ""])
def test_a_registry_file_name_that_is_not_a_plain_name_writes_nothing(tmp_path, name):
    from nas.errors import NASError
    from nas.tracking.registry import Candidate, download

    candidate = Candidate(
        version="1", config="r28", format="tflite-fp32", val_accuracy=0.9, test_accuracy=0.9,
        latency_ms=1.0, measured_ms=1.0, measured_on="", measured_busy="", size_bytes=1, aliases=(),
        model_uri="models:/x/1", file=name,
    )  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(NASError, match="is not a plain file name"):
        download(candidate, out)
    assert not out.exists() and sorted(tmp_path.rglob("*")) == []


def test_pick_chooses_within_a_size_limit_and_names_the_closest_when_none_fits():
    from nas.tracking.registry import Candidate, choose

    def candidate(version: str, val: float, size_kib: int) -> Candidate:
        return Candidate(
            version=version, config="r28", format="tflite-mixed", val_accuracy=val,
            test_accuracy=val, latency_ms=1.0, measured_ms=None, measured_on="", measured_busy="",
            size_bytes=size_kib * 1024, aliases=(), model_uri=f"models:/x/{version}", file="f",
        )  # fmt: skip

    found = [candidate("1", 0.93, 900), candidate("2", 0.92, 300), candidate("3", 0.90, 120)]
    best, fits = choose(found, None, None, max_size_kb=300)
    assert best.version == "2" and [c.version for c in fits] == ["2", "3"]
    assert choose(found, None, None)[0].version == "1"  # no limit: the most accurate
    best, closest = choose(found, None, None, max_size_kb=100)
    assert best is None and closest[0].version == "3"  # the nearest to the limit first
