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
import threading
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


def _fault_spec(tmp_path, postgres, name: str, trials: int, workers: int = 1):
    """The Note10 predictor study on a new PostgreSQL database, proposing at random: the fault
    tests time the driver and its workers around a fault, not the ``surrogate`` sampler (after
    its warm-up, its proposals held the driver to ~1.3 trials/s on 2 cores)."""
    return _spec(
        tmp_path,
        name=name,
        trials=trials,
        workers=workers,
        sampler="random",
        storage=postgres.create_database(),
    )


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
    """PostgreSQL stopped mid-study, until the driver says it is waiting for it, then started
    again: the study reaches its budget with no trial failed or lost."""
    spec_path = _fault_spec(tmp_path, postgres, "restarted", trials=200)
    spec = load_spec(spec_path)
    with driver(spec_path, "--no-mlflow", env={"NAS_INJECT_FAULTS": "slow_ms=60"}) as proc:
        n = len(wait_until(spec, proc, lambda trials: len(trials) >= 20))
        assert proc.poll() is None and n < 100, "the study was near its end before the restart"
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        postgres.stop()
        try:
            deadline = time.time() + 60
            while not any("unreachable" in line for line in lines) and time.time() < deadline:
                assert proc.poll() is None, "".join(lines)
                time.sleep(0.2)
            waited = any("unreachable" in line for line in lines)
            time.sleep(1)
        finally:
            postgres.start()
        proc.wait(timeout=300)
        reader.join(timeout=10)
    err = "".join(lines)
    assert waited, (n, err)  # the driver met the outage, and said what it was doing
    assert proc.returncode == 0, err
    study = open_study(spec)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 200
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


@pytest.fixture
def _not_utc(monkeypatch):
    """A local time 5:30 ahead of UTC (datetimes stored as UTC must be converted)."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("_not_utc")
@pytest.mark.parametrize("kind", ["journal", "postgresql", "sqlite"])
def test_batched_writes_store_what_one_write_per_call_stores(tmp_path, kind, request):
    """A trial's parameters and attributes written in one batch (one journal append, one
    transaction), and its result told with its last attributes in one write (``tell``), read
    back exactly as Optuna's own writes, one per call, do; a finished trial still refuses
    them."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from nas.search._storage import batched_writes, tell

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

    study = optuna.create_study(
        storage=storage(),
        sampler=optuna.samplers.RandomSampler(seed=0),
        directions=["maximize", "minimize"],
    )
    plain = study.ask()
    fill(plain)
    batched = study.ask()
    with batched_writes(batched):
        fill(batched)
        batched.set_user_attr("config", "r28_k5e6")  # a key written twice in one batch
    batched.set_user_attr("latency_ms", {"note10": 9.0})  # and again after it (an update)
    plain.set_user_attr("accuracy", 0.9)
    plain.set_user_attr("node", "10.0.0.2")
    study.tell(plain, [0.9, 12.5])
    # a key the trial has (updated in place), and new ones, with its result
    told = tell(study, batched, [0.8, 9.0], config="r28_final", accuracy=0.8, node="10.0.0.3")
    failed_plain, failed = study.ask(), study.ask()
    failed_plain.set_user_attr("error", "boom")
    study.tell(failed_plain, state=optuna.trial.TrialState.FAIL)
    tell(study, failed, state=optuna.trial.TrialState.FAIL, error="boom")

    reread = optuna.load_study(study_name=study.study_name, storage=storage())
    a, b, c, d = reread.trials
    assert b.distributions == a.distributions and set(b.params) == {"k", "d", "lr"}
    assert b.params == batched.params
    assert b.user_attrs == {
        "config": "r28_final",
        "latency_ms": {"note10": 9.0},
        "accuracy": 0.8,
        "node": "10.0.0.3",
    }
    assert b.system_attrs == a.system_attrs
    assert (a.state, b.state) == (optuna.trial.TrialState.COMPLETE,) * 2
    assert (a.values, b.values) == ([0.9, 12.5], [0.8, 9.0])
    assert b.datetime_complete is not None and b.datetime_start <= b.datetime_complete
    # what tell returns is what the storage holds
    assert (told.number, told.state, told.values) == (b.number, b.state, b.values)
    assert (told.params, told.user_attrs, told.system_attrs) == (
        b.params,
        b.user_attrs,
        b.system_attrs,
    )
    assert abs((told.datetime_complete - b.datetime_complete).total_seconds()) < 1e-3
    assert abs((a.datetime_complete - b.datetime_complete).total_seconds()) < 60  # local, both
    assert (c.state, c.values, c.user_attrs) == (d.state, d.values, d.user_attrs)
    assert d.state == optuna.trial.TrialState.FAIL and d.datetime_complete is not None
    assert [t.number for t in reread.best_trials] == [0, 1]
    with pytest.raises(RuntimeError, match="finished"):  # UpdateFinishedTrialError
        with batched_writes(batched):
            batched.set_user_attr("late", 1)
    with pytest.raises(RuntimeError, match="finished"):
        tell(study, batched, [0.7, 1.0])
    assert optuna.load_study(study_name=study.study_name, storage=storage()).trials[1].values == [
        0.8,
        9.0,
    ]


@pytest.mark.slow
def test_a_study_goes_on_while_its_mlflow_server_is_down_and_loses_no_run(
    tmp_path, postgres, monkeypatch
):
    """The MLflow tracking server (PostgreSQL backend) stopped for 20 s mid-study: the study goes
    on (the study is the source of truth), the job says so once, and once the server is back
    every evaluated trial has exactly one run and the parent run ends FINISHED."""
    from tests.servers import MLflowServer

    server = MLflowServer(postgres.create_database())
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        # the driver's pace is the worker's: ~4 trials/s at slow_ms=200
        spec_path = _fault_spec(tmp_path, postgres, "outage", trials=250)
        spec = load_spec(spec_path)
        outage_s = 20  # ~100 trials: the study is still on when MLflow is back
        with driver(spec_path, env={"NAS_INJECT_FAULTS": "slow_ms=200"}) as proc:
            before = wait_until(spec, proc, lambda trials: len(trials) >= 30)
            server.stop()
            down = len(_complete(spec))
            time.sleep(outage_s)
            during = len(_complete(spec)) - down
            server.start()
            _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        # the study went on without MLflow: after the first write the outage met (it waits up
        # to MLFLOW_HTTP_REQUEST_TIMEOUT, 10 s), at a third of its pace before the outage at
        # least; a driver that waited on MLflow would finish a trial or two. A pace, not a count:
        # on a busy machine all of it is slower (a count failed once beside another job)
        times = sorted(t.datetime_complete.timestamp() for t in before)
        pace = (len(times) - 1) / (times[-1] - times[0])
        assert during >= max(5, pace * (outage_s - 10) / 3) and down < 150, (during, pace)
        assert err.count("MLflow cannot be written") == 1 and "MLflow answers again" in err

        study = open_study(spec)
        evaluated = [t.number for t in _complete(spec) if "duplicate_of" not in t.user_attrs]
        assert len(study.trials) == 250 == len(_complete(spec))
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


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
def test_a_trial_a_driver_created_but_never_beat_for_is_recovered_at_start(tmp_path, postgres):
    """A driver killed between creating a trial and its first heartbeat leaves a RUNNING trial
    that Optuna's stale-trial check never sees (no heartbeat): the next driver fails and
    re-queues it at start; a trial whose heartbeat is fresh is left alone."""
    from nas.search._storage import recover_interrupted

    spec = load_spec(
        _spec(tmp_path, name="unbeaten", trials=3, workers=1, storage=postgres.create_database())
    )
    study = open_study(spec)
    silent = study.ask()
    silent.suggest_int("x", 0, 9)
    beating = study.ask()
    study._storage.record_heartbeat(beating._trial_id)
    assert recover_interrupted(study) == 0  # nothing stale yet
    assert recover_interrupted(study, at_start=True) == 1
    trials = study.trials
    assert trials[silent.number].state == optuna.trial.TrialState.FAIL
    assert trials[silent.number].user_attrs["error"].startswith("interrupted")
    assert trials[beating.number].state == optuna.trial.TrialState.RUNNING
    (queued,) = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert queued.user_attrs["requeued_from"] == silent.number
    assert queued.system_attrs["fixed_params"] == silent.params


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("kind", ["journal", "postgresql", "sqlite"])
def test_the_drivers_ask_builds_the_trial_optuna_builds(tmp_path, kind, request):
    """``Heartbeat.ask`` reads the waiting queue only while it may hold trials and builds a new
    trial from what its creation returned: the same trial as ``optuna.Trial(study, id)`` reads
    back; its first heartbeat goes out with its parameters (``batched_writes(heartbeat=True)``)."""
    from optuna.storages import JournalStorage
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.storages.journal import JournalFileBackend

    from nas.search._storage import Heartbeat, batched_writes

    if kind == "journal":
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    else:
        url = (
            request.getfixturevalue("postgres").create_database()
            if kind == "postgresql"
            else f"sqlite:///{tmp_path / 's.db'}"
        )
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=60)
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"x": 3})
    heartbeat = Heartbeat(study)
    queued = heartbeat.ask(study)
    assert queued.suggest_int("x", 0, 9) == 3  # the queue is read first
    fresh = heartbeat.ask(study)  # the queue is empty now: created, not read back
    again = optuna.Trial(study, fresh._trial_id)
    assert fresh._cached_frozen_trial == again._cached_frozen_trial
    assert fresh._cached_frozen_trial.state == optuna.trial.TrialState.RUNNING
    assert {k: v for k, v in vars(fresh).items() if k != "_cached_frozen_trial"} == {
        k: v for k, v in vars(again).items() if k != "_cached_frozen_trial"
    }
    with batched_writes(fresh, heartbeat=True):
        fresh.suggest_int("x", 0, 9)
    heartbeat.add(fresh)
    study.enqueue_trial({"x": 5})
    heartbeat.queued()
    assert heartbeat.ask(study).suggest_int("x", 0, 9) == 5
    if kind != "journal":
        rdb = study._storage._backend
        with _create_scoped_session(rdb.scoped_session) as session:
            beaten = [row.trial_id for row in session.query(models.TrialHeartbeatModel.trial_id)]
        assert beaten == [fresh._trial_id]


def test_the_journal_is_fsynced_when_a_trial_finishes_and_holds_every_write(tmp_path, monkeypatch):
    """The journal's appends are all written before they return; the file is fsynced when a trial
    finishes or is queued (everything before rides on it), not for a running trial's creation,
    parameters and attributes; another process reads all of it."""
    from nas.search import _storage
    from nas.search._storage import Heartbeat, batched_writes, tell

    spec = load_spec(_spec(tmp_path, name="durable", trials=3, workers=1))
    study = open_study(spec)
    synced: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(_storage.os, "fsync", lambda fd: (synced.append(fd), fsync(fd))[1])
    heartbeat = Heartbeat(study)
    trial = heartbeat.ask(study)
    with batched_writes(trial, heartbeat=True):
        trial.suggest_int("x", 0, 9)
        trial.set_user_attr("config", "x")
    assert synced == []  # created, its parameters written: not fsynced yet
    reader = subprocess.run(
        [sys.executable, "-c", "import optuna, sys; s = optuna.load_study(study_name=sys.argv[1], "
         "storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("
         "sys.argv[2]))); t = s.trials[-1]; print(t.state.name, t.params['x'])",
         spec.name, str(spec.run_dir() / "study.journal")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert reader.stdout.split() == ["RUNNING", str(trial.params["x"])]
    tell(study, trial, [0.5, 1.0], accuracy=0.5)
    assert len(synced) == 1  # finished: fsynced, with everything before it
    study.enqueue_trial({"x": 3})
    assert len(synced) == 2  # a queued trial is not left to a later one
    (done,) = open_study(spec).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert (done.params, done.user_attrs) == (
        {"x": trial.params["x"]},
        {"config": "x", "accuracy": 0.5},
    )


def test_a_queued_trial_interrupted_before_its_parameters_were_written_is_queued_with_them(
    tmp_path,
):
    """A trial taken from the queue whose parameters were never written (on the journal, a power
    cut takes what was not fsynced yet) is re-queued with the parameters it was queued with."""
    from nas.search._storage import recover_interrupted

    study = open_study(load_spec(_spec(tmp_path, name="unwritten", trials=3, workers=1)))
    study.enqueue_trial({"x": 3}, user_attrs={"proposed_by": "test"})
    study.ask()  # RUNNING, nothing suggested
    assert recover_interrupted(study, at_start=True) == 1
    (queued,) = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert queued.system_attrs["fixed_params"] == {"x": 3}
