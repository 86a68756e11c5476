"""Bad inputs of a job: one line naming the field, variable or file, exit 2, and nothing written
(no runs folder, no journal, no MLflow store), before Ray starts."""

from __future__ import annotations

import pytest
import yaml

from nas.cli import main
from nas.paths import assets_root

BASE = {
    "name": "bad_inputs",
    "space": "ofa_mbv3_small",
    "supernet": {"checkpoint": "checkpoints/ofa_mbv3_small_fashion_mnist/supernet.pt"},
    "devices": [{"lut": "latency_luts/host-x86-litert", "dtype": "fp32"}],
    "search": {"trials": 2, "workers": 1},
}


def _spec(tmp_path, **changes) -> str:
    spec = {**BASE, **changes}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _written(tmp_path) -> set[str]:
    """What the job left under ``tmp_path`` besides its inputs."""
    return {p.name for p in tmp_path.iterdir()} - {
        "spec.yaml",
        "a_file",
        "half.pt",
        "gap_lut",
        "half_lut",
        "half_data",
    }


PREDICTED = {  # OFA's space priced by the Note10 table: the predictor evaluator
    "space": "ofa_mbv3",
    "evaluator": {"kind": "predictor", "predictor": "predictors/ofa_mbv3_w12_imagenet_acc.pth"},
}


def _bad_tables(tmp_path) -> None:
    """Copies of the Note10 table: one without a layer its space can produce, one whose
    224-px file was cut in half on disk."""
    import shutil

    for name in ("gap_lut", "half_lut"):
        shutil.copytree(assets_root() / "latency_luts" / "note10", tmp_path / name)
    gap = tmp_path / "gap_lut" / "ofa_mbv3" / "224.yaml"
    table = yaml.safe_load(gap.read_text())
    del table[next(k for k in table if k.startswith("expanded_conv-") and "kernel:5" in k)]
    gap.write_text(yaml.safe_dump(table))
    half = tmp_path / "half_lut" / "ofa_mbv3" / "224.yaml"
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])


@pytest.mark.parametrize(
    ("changes", "env", "named"),
    [
        ({"name": ".."}, {}, "name = '..'"),  # would write one level above the runs folder
        ({"name": "bob's job"}, {}, 'name = "bob\'s job"'),  # pasted into an MLflow filter
        ({"name": "a/b"}, {}, "name = 'a/b'"),
        ({"dataset": {"val_size": 60000}}, {}, "dataset.val_size = 60000 must be < 60000"),
        (
            {"search": {"trials": 2, "storage": "postgresl://me:s3cret@127.0.0.1/db"}},
            {},
            "search.storage = 'postgresl://…@127.0.0.1/db' cannot be opened",
        ),
        (
            {"search": {"trials": 2, "storage": "not a database URL"}},
            {},
            "search.storage = 'not a database URL' cannot be opened",
        ),
        (
            {"tracking_uri": "sqlite:///{tmp}/a_file/mlflow.db"},
            {"MLFLOW_TRACKING_URI": None},
            "tracking_uri (sqlite:///",
        ),
        ({}, {"MLFLOW_TRACKING_URI": "sqlite:///{tmp}/a_file/m.db"}, "MLFLOW_TRACKING_URI"),
        (
            {},
            {"MLFLOW_TRACKING_URI": "http://me:s3cret@127.0.0.1:9"},
            "MLFLOW_TRACKING_URI = 'http://…@127.0.0.1:9': the MLflow tracking server does not",
        ),
        ({}, {"NAS_RUNS_DIR": "{tmp}/a_file/runs"}, "NAS_RUNS_DIR (the runs folder) = "),
        ({"supernet": {"checkpoint": "{tmp}/none.pt"}}, {}, "supernet checkpoint not found: "),
        ({"supernet": {"checkpoint": "{tmp}/half.pt"}}, {}, "cannot read supernet checkpoint "),
        (
            {
                "space": "ofa_mbv3",
                "evaluator": {"kind": "predictor", "predictor": "{tmp}/none.pth"},
                "devices": [{"lut": "latency_luts/note10"}],
            },
            {},
            "evaluator.predictor = '",
        ),
        (
            {**PREDICTED, "devices": [{"lut": "{tmp}/gap_lut"}]},
            {},
            "1 layer key(s) of space 'ofa_mbv3' are not in ",
        ),
        ({**PREDICTED, "devices": [{"lut": "{tmp}/half_lut"}]}, {}, "half_lut/ofa_mbv3/224.yaml"),
        (
            {"dataset": {"root": "{tmp}/half_data", "val_size": 300}},
            {},
            "half_data/train-images-idx3-ubyte",
        ),
        ({}, {"NAS_INJECT_FAULTS": "raise_evry=2"}, "NAS_INJECT_FAULTS: unknown fault"),
        ({}, {"NAS_INJECT_FAULTS": "raise_every=0"}, "raise_every='0' must be an integer >= 1"),
    ],
)
def test_a_bad_search_input_is_one_line_naming_it_and_nothing_is_written(
    tmp_path, monkeypatch, capsys, changes, env, named, small_fmnist
):
    import shutil

    (tmp_path / "a_file").write_text("a file where a folder is expected")
    half = shutil.copytree(small_fmnist, tmp_path / "half_data")
    (images,) = half.glob("train-images-idx3-ubyte*")  # a data file truncated on disk
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    whole = (assets_root() / BASE["supernet"]["checkpoint"]).read_bytes()
    (tmp_path / "half.pt").write_bytes(whole[: len(whole) // 2])  # a truncated checkpoint
    _bad_tables(tmp_path)
    runs = tmp_path / "runs"
    monkeypatch.setenv("NAS_RUNS_DIR", str(runs))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value.format(tmp=tmp_path))
    changes = yaml.safe_load(yaml.safe_dump(changes).replace("{tmp}", str(tmp_path)))

    assert main(["search", _spec(tmp_path, **changes)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas: error:") and named in err, err
    assert len(err.splitlines()) == 1 and "s3cret" not in err
    assert _written(tmp_path) == set() and not runs.exists()


def test_bad_command_line_values_are_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["lut", "validate", "--lut", str(assets_root() / "latency_luts" / "host-x86-litert"),
              "--space", "ofa_mbv3_small", "--n", "0"])  # fmt: skip
    assert exit_.value.code == 2
    assert "argument --n: expected an integer >= 1, got '0'" in capsys.readouterr().err

    spec = _spec(tmp_path)
    argv = ["export", spec, "--subnet", "r24_k33e33_k33e33_k33e33_k33e33", "--format", "tflite"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--format 'tflite' is not one of [" in err and "'tflite-fp32'" in err
    assert not (tmp_path / "out").exists()


def test_urls_lose_their_user_and_password_wherever_they_are_shown():
    from nas.tracking import redact_urls

    text = "storage: postgresql+psycopg://me:p@ss@db:5432/x  # and http://u:p@host:5000/"
    assert (
        redact_urls(text) == "storage: postgresql+psycopg://…@db:5432/x  # and http://…@host:5000/"
    )
    assert (
        redact_urls("sqlite:////tmp/x.db and http://host/")
        == "sqlite:////tmp/x.db and http://host/"
    )
