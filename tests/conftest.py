"""Shared fixtures: a small Fashion-MNIST-format dataset written as real IDX files, specs, and an
isolated MLflow store per test."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import nas  # noqa: F401  (the torchvision/ofa import trap, before anything imports ofa)

REPO = Path(__file__).resolve().parents[1]  # the checkout: runs/*.yaml specs
FIXTURES = REPO / "tests" / "fixtures"  # published data the tests read (see its README)


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", n) for n in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images that survive the training augmentation (shift by 2 px, flip):
    class y is 1-5 bright bars (y % 5 + 1), horizontal for y < 5 and vertical otherwise, plus noise.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, y in enumerate(labels):
        for b in range(y % 5 + 1):
            lo = 3 + 5 * b
            if y < 5:
                images[i, lo : lo + 2, 4:24] = 230
            else:
                images[i, 4:24, lo : lo + 2] = 230
    return images, labels


@pytest.fixture(scope="session")
def small_fmnist(tmp_path_factory) -> Path:
    """A Fashion-MNIST-layout folder: 1,200 train and 300 test images in real IDX files."""
    root = tmp_path_factory.mktemp("fmnist")
    for split, n, seed in (("train", 1200, 0), ("t10k", 300, 1)):
        x, y = make_images(n, seed)
        write_idx(root / f"{split}-images-idx3-ubyte", x)
        write_idx(root / f"{split}-labels-idx1-ubyte", y)
    return root


@pytest.fixture(scope="session", autouse=True)
def _session_runs(tmp_path_factory):
    """Module- and session-scoped fixtures (set up before the per-test isolation below) write
    their job state and MLflow runs into a temporary folder too, never into the checkout."""
    patch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("session_runs")
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    patch.setenv("NAS_RUNS_DIR", str(root / "runs"))
    # converted layer files and host tables re-timed on this machine: derived once per session
    patch.setenv("NAS_CACHE_DIR", str(root / "cache"))
    # host tables as shipped: re-timing a whole table on another machine converts every layer
    # (minutes); tests/latency/test_host.py turns it on for its own small tables
    patch.setenv("NAS_HOST_RETIME", "off")
    yield
    patch.undo()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 for the session (Debian's package, installed by setup.sh;
    skipped only where it is absent and NAS_TEST_POSTGRES is not ``required``, as .ci/run sets)."""
    from tests.servers import PostgreSQL, postgres_bin

    if postgres_bin() is None:
        if os.environ.get("NAS_TEST_POSTGRES") == "required":
            pytest.fail("PostgreSQL is not installed (setup.sh installs Debian's postgresql)")
        pytest.skip("PostgreSQL is not installed (setup.sh installs Debian's postgresql)")
    server = PostgreSQL()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test gets its own MLflow store and runs/ folder (studies, journals, exports)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("NAS_RUNS_DIR", str(tmp_path / "runs"))
    yield


@pytest.fixture(params=["sqlite", "server"])
def tracking_store(request, monkeypatch) -> str:
    """A test using it runs twice: on its own SQLite store (``_isolated_runs``), and through an
    MLflow tracking server (PostgreSQL backend store, artifacts served by the server) as a
    cluster's jobs would use it."""
    if request.param == "server":
        from tests.servers import MLflowServer

        server = MLflowServer(request.getfixturevalue("postgres").create_database())
        request.addfinalizer(server.close)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    return request.param


def tiny_spec_dict(root: Path, out: Path, **supernet) -> dict:
    cfg = {
        "checkpoint": str(out / "supernet.pt"),
        "batch_size": 100,
        "bn_calibration_images": 200,
        "eval_images": 200,
        "phases": [
            {"name": "full", "epochs": 1, "lr": 0.1},
            {
                "name": "expand",
                "epochs": 1,
                "lr": 0.05,
                "kernels": [3, 5, 7],
                "depths": [2, 3, 4],
                "expands": [3, 4, 6],
                "reorganize_expand": True,
            },
        ],
    }
    cfg.update(supernet)
    return {
        "name": "tiny",
        "space": "ofa_mbv3_small",
        "seed": 0,
        "dataset": {"name": "fashion_mnist", "root": str(root), "val_size": 400},
        "supernet": cfg,
    }


@pytest.fixture(scope="session")
def tiny_supernet(small_fmnist, tmp_path_factory) -> Path:
    """The checkpoint of ``tiny_spec_dict``'s supernet, trained once per session: tests that
    search, export or prune that supernet copy it to their spec's ``supernet.checkpoint``."""
    from nas.jobs import load_job
    from nas.spec import spec_from_dict
    from nas.supernet import SupernetTrainer

    out = tmp_path_factory.mktemp("tiny_supernet")
    spec = spec_from_dict(tiny_spec_dict(small_fmnist, out))
    dataset, space = load_job(spec)
    SupernetTrainer(spec, space, dataset, work_dir=out / "work", track=False).run()
    return out / "supernet.pt"
