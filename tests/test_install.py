"""The built wheel, installed into a fresh virtual environment outside the checkout, works from any
directory: the shipped supernet, latency tables and OFA predictor come from the package, spec paths
resolve against the spec's folder, and job state and the MLflow store go to ``./runs``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from nas.cli import main
from nas.paths import assets_root, is_shipped, resolve, runs_root
from nas.tracking import artifact_location, tracking_uri
from tests.conftest import REPO

SHIPPED_SUPERNET = "checkpoints/ofa_mbv3_small_fashion_mnist/supernet.pt"
# what would let the checkout or the test's isolation leak into the installed package's run
_LEAKY_ENV = (
    "PYTHONPATH",
    "MLFLOW_TRACKING_URI",
    "NAS_RUNS_DIR",
    "NAS_OFA_PREDICTOR",
    "NAS_INJECT_FAULTS",
    "RAY_ADDRESS",
    "VIRTUAL_ENV",
)


def test_spec_paths_resolve_beside_the_spec_then_in_the_shipped_data(tmp_path):
    lut = "latency_luts/note10"
    assert resolve(lut, tmp_path) == assets_root() / lut and is_shipped(resolve(lut, tmp_path))
    (tmp_path / lut).mkdir(parents=True)  # a file of the same name beside the spec wins
    assert resolve(lut, tmp_path) == tmp_path / lut and not is_shipped(tmp_path / lut)
    # a file a job writes never lands in the package data, even where a shipped one exists
    assert resolve(SHIPPED_SUPERNET, tmp_path, shipped=False) == tmp_path / SHIPPED_SUPERNET
    assert resolve("nowhere/x.pt", tmp_path) == tmp_path / "nowhere" / "x.pt"  # error names it
    assert resolve(tmp_path / "abs.yaml", "/elsewhere") == tmp_path / "abs.yaml"


def test_default_job_state_and_mlflow_store_go_to_runs_of_the_working_directory(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("NAS_RUNS_DIR")
    monkeypatch.chdir(tmp_path)
    assert runs_root() == tmp_path / "runs"
    assert tracking_uri() == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert artifact_location() == (tmp_path / "runs" / "mlartifacts").as_uri()
    assert tracking_uri("http://tracking:5000") == "http://tracking:5000"  # the spec's wins
    monkeypatch.setenv("NAS_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert tracking_uri() == f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"


def _run(argv: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def _last_json(done: subprocess.CompletedProcess):
    return json.loads(done.stdout.strip().splitlines()[-1])


def _build_wheel(dest: Path) -> Path:
    """A wheel of the checkout, built from a clean copy of its sources (an in-place build would
    leave build/ in the checkout, and a stale build/lib could ship deleted modules)."""
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in ("nas", "search_spaces"):
        shutil.copytree(REPO / package, src / package, ignore=junk)
    wheels = dest / "wheels"
    # no network: the running environment's setuptools builds it
    pip_wheel = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", wheels]
    _run([sys.executable, "-m", "pip", *pip_wheel, src], cwd=dest)
    (wheel,) = wheels.glob("nas-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with nas installed from the wheel. Its dependencies (GBs) are the running
    environment's, reached through a ``.pth`` line: a plain path, so the checkout's editable
    install (activated by its own ``.pth`` import hook, which is not run) stays invisible."""
    base = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(base)
    env_dir = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=base)
    python = env_dir / "bin" / "python"
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.stdout.strip()) / "_nas_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    # --ignore-installed: never touch the nas the running environment has (pip would try to
    # uninstall it as an older copy of the same project)
    pip_install = ["install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel]
    _run([python, "-m", "pip", *pip_install], cwd=base)
    return env_dir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, small_fmnist) -> Path:
    """A user's folder outside the checkout: specs (and the dataset they name) in ``specs/``,
    commands run from the folder itself."""
    work = tmp_path_factory.mktemp("user")
    shutil.copytree(small_fmnist, work / "specs" / "fmnist")
    return work


def _small_spec(name: str, **extra) -> dict:
    """The shipped supernet (by its path inside the package) on the small dataset, which sits
    beside the spec: both relative paths must resolve the documented way."""
    return {
        "name": name,
        "space": "ofa_mbv3_small",
        "seed": 0,
        "dataset": {"name": "fashion_mnist", "root": "fmnist", "val_size": 400},
        "supernet": {"checkpoint": SHIPPED_SUPERNET, "bn_calibration_images": 200},
        **extra,
    }


@pytest.mark.slow
def test_installed_nas_comes_from_the_wheel_with_its_data(venv, workdir):
    code = (
        "import json, nas, search_spaces, nas.paths as p;"
        "print(json.dumps([nas.__file__, search_spaces.__file__, str(p.assets_root()),"
        " str(p.runs_root())]))"
    )
    files = json.loads(_run([venv / "bin" / "python", "-c", code], workdir).stdout)
    nas_file, spaces_file, assets, runs = (Path(f) for f in files)
    for f in (nas_file, spaces_file, assets):
        assert f.is_relative_to(venv), f"{f} is not from the installed wheel"
    assert runs == workdir / "runs"
    for shipped in (
        SHIPPED_SUPERNET,
        "latency_luts/note10/ofa_mbv3/224.yaml",
        "latency_luts/host-x86-litert/ofa_mbv3_small/28.yaml",
        "predictors/ofa_mbv3_w12_imagenet_acc.pth",
        "predictors/LICENSE-OFA",
    ):
        assert (assets / shipped).is_file(), shipped
    assert (venv / "bin" / "nas").is_file()


@pytest.mark.slow
def test_installed_eval_of_the_shipped_supernet_matches_the_checkout(venv, workdir, capsys):
    spec = workdir / "specs" / "eval.yaml"
    spec.write_text(yaml.safe_dump(_small_spec("installed_eval")))
    argv = ["eval", "specs/eval.yaml", "--subnet", "largest", "--split", "test", "--json"]
    out = _last_json(_run([venv / "bin" / "nas", *argv], workdir))
    assert set(out) == {"config", "accuracy", "split", "n_images"}
    assert out["split"] == "test" and out["n_images"] == 300  # the dataset beside the spec

    # the same spec through the checkout's code gives the same numbers: same weights, same data
    assert main(["eval", str(spec), *argv[2:]]) == 0
    here = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["config"] == here["config"]
    assert out["accuracy"] == pytest.approx(here["accuracy"], abs=1e-9)


@pytest.mark.slow
def test_installed_search_on_a_copy_of_the_note10_spec_runs_into_local_runs(venv, workdir):
    specs = workdir / "specs"
    shutil.copy2(REPO / "runs" / "ofa_imagenet_note10.yaml", specs)
    argv = ["search", "specs/ofa_imagenet_note10.yaml", "--trials", "6", "--json", "--quiet"]
    summary = _last_json(_run([venv / "bin" / "nas", *argv], workdir))
    assert summary["experiment"] == "ofa_imagenet_note10" and summary["n_complete"] == 6
    assert summary["hypervolume"] > 0 and summary["pareto"]
    for row in summary["pareto"]:
        assert 0.5 < row["accuracy"] < 0.9  # OFA's predictor: ImageNet top-1 of w1.2 subnets
        assert row["latency_ms"]["note10"] > 0  # priced by the shipped Note10 tables
    assert (workdir / "runs" / "mlflow.db").is_file()
    assert (workdir / "runs" / "ofa_imagenet_note10" / "study.journal").is_file()
    assert not (specs / "runs").exists()


@pytest.mark.slow
def test_installed_search_exports_and_pick_downloads_from_local_runs(venv, workdir):
    spec = workdir / "specs" / "host.yaml"
    data = _small_spec(
        "installed_host",
        evaluator={"kind": "supernet", "val_images": 100},
        devices=[{"lut": "latency_luts/host-x86-litert", "dtype": "fp32"}],
        search={"sampler": "random", "trials": 3, "workers": 1},
        export={"k": 1},
    )
    spec.write_text(yaml.safe_dump(data))
    summary = _last_json(_run([venv / "bin" / "nas", "search", spec, "--json", "--quiet"], workdir))
    assert summary["n_complete"] == 3
    assert summary["registered"]["host-x86-litert"]["model"] == "installed_host-host-x86-litert"

    argv = ["pick", "--experiment", "installed_host", "--device", "host-x86-litert"]
    picked = _last_json(_run([venv / "bin" / "nas", *argv, "--out", "models", "--json"], workdir))
    path = workdir / picked["path"]  # as printed: relative to the working directory or absolute
    assert path.is_file() and path.is_relative_to(workdir / "models")
    assert path.with_name(path.name + ".json").is_file()  # the preprocessing contract
    assert picked["format"] == "tflite-fp32" and 0.0 <= picked["accuracy"] <= 1.0
    assert picked["latency_ms"] > 0
    assert {"height", "width", "channels", "layout", "scale", "mean", "std"} <= set(
        picked["preprocessing"]
    )
    assert (workdir / "runs" / "mlartifacts").is_dir()  # artifacts beside ./runs/mlflow.db
