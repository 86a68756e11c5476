"""The same `nas search` against a Ray cluster: a head node started with `ray start --head` on this
machine, the job sent with `ray job submit`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import REPO
from tests.servers import free_port

RAY = Path(sys.executable).parent / "ray"
pytestmark = pytest.mark.slow


def test_search_runs_unchanged_as_a_ray_job_on_a_cluster(tmp_path):
    import secrets

    # the cluster keeps Ray's token authentication; head node and submitter share one token
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    env.pop("RAY_ADDRESS", None)
    port, dash = free_port(), free_port()
    temp = Path("/tmp") / f"ray{os.getpid()}"  # short: Ray's socket paths have a length limit
    subprocess.run(
        [
            str(RAY),
            "start",
            "--head",
            f"--port={port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            "--num-cpus=2",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=180,
    )
    try:
        storage = f"sqlite:///{tmp_path / 'study.db'}"
        spec = yaml.safe_load((REPO / "runs" / "ofa_imagenet_note10.yaml").read_text())
        spec.update(name="cluster_test")
        spec["devices"] = [
            {"lut": "latency_luts/note10"}
        ]  # relative: resolved inside the job's working dir
        spec["search"].update(trials=8, workers=2, storage=storage)
        spec_path = REPO / "runs" / "_cluster_test.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        job_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
        submit = [
            str(RAY),
            "job",
            "submit",
            f"--address=http://127.0.0.1:{dash}",
            "--working-dir",
            str(REPO),
            "--runtime-env-json",
            json.dumps(
                {
                    "env_vars": {
                        "MLFLOW_TRACKING_URI": job_env["MLFLOW_TRACKING_URI"],
                        "NAS_RUNS_DIR": str(tmp_path / "runs"),
                    }
                }
            ),
            "--",
            sys.executable,
            "-m",
            "nas.cli",
            "search",
            "runs/_cluster_test.yaml",
            "--json",
            "--quiet",
        ]
        for _ in range(6):
            out = subprocess.run(submit, env=job_env, capture_output=True, text=True, timeout=600)
            # the head's dashboard agent can come up after `ray start` returns (slow on 2 cores)
            if out.returncode == 0 or "No available agent" not in out.stdout + out.stderr:
                break
            time.sleep(5)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert '"n_complete": 8' in out.stdout
        study = optuna.load_study(study_name="cluster_test", storage=storage)
        assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 8
    finally:
        spec_path.unlink(missing_ok=True)
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
