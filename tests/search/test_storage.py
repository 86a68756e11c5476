"""Study storage on a real PostgreSQL server (tests/servers.py): a study that runs and resumes, one
driver per study on any machine, a database restarted mid-study, no password anywhere, and
optuna-dashboard reading the study."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import mlflow
import optuna
import pytest
import sqlalchemy as sa

from nas.cli import main
from nas.search import SearchJob, open_study, study_lock
from nas.spec import load_spec
from tests.search.test_search import _spec
from tests.servers import free_port


def _complete(spec) -> list[optuna.trial.FrozenTrial]:
    """The study's complete trials (none while the driver has not created it yet)."""
    try:
        return open_study(spec).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    except (KeyError, optuna.exceptions.StorageInternalError):
        return []


@contextlib.contextmanager
def driver(spec_path, *flags: str, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """``nas search SPEC --quiet FLAGS`` in a process group of its own (stderr kept, as text);
    SIGKILLed on the way out if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", str(spec_path), "--quiet", *flags],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(spec, proc, ready, timeout: float = 240) -> list[optuna.trial.FrozenTrial]:
    """Poll the study until ``ready(complete trials)`` (or the driver ended, or ``timeout``)."""
    deadline = time.time() + timeout
    trials = _complete(spec)
    while time.time() < deadline and proc.poll() is None and not ready(trials):
        time.sleep(0.5)
        trials = _complete(spec)
    return trials


def test_a_postgresql_study_runs_resumes_and_keeps_its_password_out_of_mlflow(
    tmp_path, postgres, capsys
):
    """``postgresql://`` as users write it (PostgreSQL's driver installed by setup); the
    password reaches neither MLflow's params, tags and artifacts nor the terminal."""
    url = postgres.create_database().replace(
        "postgresql+psycopg://nas@", "postgresql://nas:s3cret@"
    )
    spec_path = _spec(tmp_path, name="pg", trials=6, workers=1, storage=url)
    assert main(["search", str(spec_path), "--json", "--no-export"]) == 0
    assert main(["search", str(spec_path), "--trials", "10", "--json", "--no-export"]) == 0
    out = capsys.readouterr()
    assert "s3cret" not in out.out + out.err
    assert json.loads(out.out.strip().splitlines()[-1])["n_complete"] == 10
    spec = load_spec(spec_path)
    configs = [t.user_attrs["config"] for t in _complete(spec)]
    assert len(configs) == 10 == len(set(configs))
    with sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://")).connect() as c:
        beats = c.execute(sa.text("SELECT count(*) FROM trial_heartbeats")).scalar()
    assert beats > 0  # the driver kept Optuna heartbeats of its trials in flight

    client = mlflow.tracking.MlflowClient()
    exp = client.get_experiment_by_name("pg")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len([r for r in runs if r.data.tags.get("nas.role") == "study"]) == 1
    for r in runs:
        assert "s3cret" not in json.dumps([r.data.params, r.data.tags])
    parent = next(r for r in runs if r.data.tags.get("nas.role") == "study")
    logged = client.download_artifacts(parent.info.run_id, "spec/pg.yaml", str(tmp_path / "a"))
    text = open(logged).read()
    assert "s3cret" not in text and "postgresql://…@127.0.0.1" in text


def test_a_second_driver_on_another_machine_is_refused_by_the_database(
    tmp_path, postgres, monkeypatch, capsys
):
    """The lock file guards one machine; PostgreSQL's advisory lock on the study guards all: a
    driver with its own runs folder (another machine) is refused, naming the holder."""
    spec_path = _spec(
        tmp_path, name="held", trials=4, workers=1, storage=postgres.create_database()
    )
    spec = load_spec(spec_path)
    with study_lock(spec):
        monkeypatch.setenv("NAS_RUNS_DIR", str(tmp_path / "other-machine"))
        assert main(["search", str(spec_path), "--quiet", "--no-mlflow"]) == 2
        err = capsys.readouterr().err
        assert f"nas search pid {os.getpid()} on " in err and "study 'held'" in err
        assert len(err.strip().splitlines()) == 1
    assert main(["search", str(spec_path), "--quiet", "--no-mlflow"]) == 0  # released
    assert len(_complete(spec)) == 4


def test_an_unreachable_database_is_one_line_before_anything_is_written(tmp_path, capsys):
    url = f"postgresql://nas:s3cret@127.0.0.1:{free_port()}/nas"
    spec_path = _spec(tmp_path, name="nodb", trials=4, storage=url)
    assert main(["search", str(spec_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas: error: search.storage = 'postgresql://…@127.0.0.1:")
    assert "cannot be reached" in err and "s3cret" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()
    assert mlflow.tracking.MlflowClient().get_experiment_by_name("nodb") is None


@pytest.mark.slow
def test_the_study_survives_its_database_restarting_mid_study(tmp_path, postgres):
    """PostgreSQL stopped for 3 s and started again while the driver runs: the driver waits
    for it, and the study reaches its budget with no trial failed or lost."""
    spec_path = _spec(
        tmp_path, name="restarted", trials=400, workers=1, storage=postgres.create_database()
    )
    spec = load_spec(spec_path)
    with driver(spec_path, "--no-mlflow", env={"NAS_INJECT_FAULTS": "slow_ms=30"}) as proc:
        n = len(wait_until(spec, proc, lambda trials: len(trials) >= 20))
        assert proc.poll() is None and n < 200, "the study was near its end before the restart"
        postgres.restart(down_seconds=3)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "unreachable" in err, (n, err)  # the driver met the restart, and said what it was doing
    study = open_study(spec)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 400
    assert optuna.trial.TrialState.FAIL not in states


def test_optuna_dashboard_reads_the_study(tmp_path, postgres):
    """``nas dashboard SPEC`` serves optuna-dashboard on 127.0.0.1 over the spec's storage."""
    spec_path = _spec(
        tmp_path, name="shown", trials=3, workers=1, storage=postgres.create_database()
    )
    spec = load_spec(spec_path)
    SearchJob(spec, track=False).run()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "dashboard", str(spec_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        studies = None
        for _ in range(120):
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as r:
                    studies = json.load(r)["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
        assert studies is not None, "the dashboard never answered"
        (shown,) = [s for s in studies if s["study_name"] == "shown"]
        url = f"http://127.0.0.1:{port}/api/studies/{shown['study_id']}"
        with urllib.request.urlopen(url) as r:
            assert len(json.load(r)["trials"]) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("kind", ["journal", "postgresql", "sqlite"])
def test_batched_writes_store_what_one_write_per_call_stores(tmp_path, kind, request):
    """A trial's parameters and attributes written in one batch (one journal append, one
    transaction) read back exactly as Optuna's own writes, one per call, do; a finished trial
    still refuses them."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from nas.search._storage import batched_writes

    url = (
        request.getfixturevalue("postgres").create_database()
        if kind == "postgresql"
        else f"sqlite:///{tmp_path / 's.db'}"
    )

    def storage():
        if kind == "journal":
            return JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
        return optuna.storages.RDBStorage(url)

    def fill(trial):
        trial.suggest_categorical("k", [3, 5, 7])
        trial.suggest_int("d", 2, 4)
        trial.suggest_float("lr", 1e-3, 1.0, log=True)
        trial.set_user_attr("config", "r28_k3e3")
        trial.set_user_attr("latency_ms", {"note10": 12.5})
        trial.set_constraint("latency", -1.5)

    study = optuna.create_study(storage=storage(), sampler=optuna.samplers.RandomSampler(seed=0))
    plain = study.ask()
    fill(plain)
    batched = study.ask()
    with batched_writes(batched):
        fill(batched)
        batched.set_user_attr("config", "r28_k5e6")  # a key written twice in one batch
    batched.set_user_attr("latency_ms", {"note10": 9.0})  # and again after it (an update)
    study.tell(plain, 1.0)
    study.tell(batched, 2.0)

    reread = optuna.load_study(study_name=study.study_name, storage=storage())
    a, b = reread.trials
    assert b.distributions == a.distributions and set(b.params) == {"k", "d", "lr"}
    assert b.params == batched.params
    assert b.user_attrs == {"config": "r28_k5e6", "latency_ms": {"note10": 9.0}}
    assert b.system_attrs == a.system_attrs
    with pytest.raises(RuntimeError, match="finished"):  # UpdateFinishedTrialError
        with batched_writes(batched):
            batched.set_user_attr("late", 1)


@pytest.mark.slow
def test_a_study_goes_on_while_its_mlflow_server_is_down_and_loses_no_run(
    tmp_path, postgres, monkeypatch
):
    """The MLflow tracking server (PostgreSQL backend) stopped for 30 s mid-study: the study goes
    on (the study is the source of truth), the job says so once, and once the server is back
    every evaluated trial has exactly one run and the parent run ends FINISHED."""
    from tests.servers import MLflowServer

    server = MLflowServer(postgres.create_database())
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        spec_path = _spec(
            tmp_path, name="outage", trials=600, workers=1, storage=postgres.create_database()
        )
        spec = load_spec(spec_path)
        with driver(spec_path, env={"NAS_INJECT_FAULTS": "slow_ms=100"}) as proc:  # ~9 trials/s
            wait_until(spec, proc, lambda trials: len(trials) >= 30)
            server.stop()
            down = len(_complete(spec))
            time.sleep(30)
            during = len(_complete(spec)) - down
            server.start()
            _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert during >= 100 and down < 300  # the study went on without MLflow
        assert err.count("MLflow cannot be written") == 1 and "MLflow answers again" in err

        study = open_study(spec)
        evaluated = [t.number for t in _complete(spec) if "duplicate_of" not in t.user_attrs]
        assert len(study.trials) == 600 == len(_complete(spec))
        client = mlflow.tracking.MlflowClient(server.url)
        exp = client.get_experiment_by_name("outage")
        runs = client.search_runs([exp.experiment_id], max_results=5000)
        parents = [r for r in runs if r.data.tags.get("nas.role") == "study"]
        assert [r.info.status for r in parents] == ["FINISHED"]
        numbers = sorted(
            int(r.data.tags["nas.trial"]) for r in runs if r.data.tags.get("nas.role") == "trial"
        )
        assert numbers == sorted(evaluated)  # every evaluated trial once: none lost, none twice
    finally:
        server.close()
