"""nas search end to end: a real Optuna journal, an embedded Ray, a real MLflow store."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
import yaml

from nas.cli import main
from nas.paths import assets_root
from nas.search import load_ofa_predictor
from nas.spec import load_spec
from search_spaces import get_space
from tests.conftest import REPO

PREDICTOR = assets_root() / "predictors" / "ofa_mbv3_w12_imagenet_acc.pth"


def _spec(tmp_path, name="note10_test", trials=12, **search):
    data = yaml.safe_load((REPO / "runs" / "ofa_imagenet_note10.yaml").read_text())
    data["name"] = name
    data["evaluator"]["predictor"] = str(PREDICTOR)
    data["search"].update(trials=trials, **search)
    data["devices"] = [{"lut": str(assets_root() / "latency_luts" / "note10")}]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ofa_predictor_loads_on_cpu_and_ranks_largest_above_smallest():
    space = get_space("ofa_mbv3")
    model = load_ofa_predictor(PREDICTOR)
    import torch

    with torch.no_grad():
        big, small = (
            float(model(torch.from_numpy(space.encode(c))[None]))
            for c in (space.largest(), space.smallest())
        )
    assert 0.70 < small < big < 0.85


@pytest.mark.slow
def test_search_logs_study_to_mlflow_and_prints_the_json_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec_path = _spec(tmp_path, max_latency_ms=40)
    with spec_path.open("a") as f:  # unused here (MLFLOW_TRACKING_URI wins); must not leak
        f.write("tracking_uri: http://me:s3cret@127.0.0.1:1/\n")
    assert main(["search", str(spec_path), "--json", "--workers", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) == {"experiment", "parent_run_id", "n_complete", "hypervolume", "pareto"}
    assert summary["n_complete"] == 12 and summary["hypervolume"] > 0 and summary["pareto"]
    assert all(row["latency_ms"]["note10"] <= 40 for row in summary["pareto"])

    client = mlflow.tracking.MlflowClient()
    exp = client.get_experiment_by_name("note10_test")
    children = client.search_runs([exp.experiment_id], filter_string="tags.`nas.role` = 'trial'")
    assert 0 < len(children) <= 12  # duplicate subnets are answered from the cache, not re-run
    assert all(r.data.tags["mlflow.parentRunId"] == summary["parent_run_id"] for r in children)
    assert all(
        "latency_ms.note10" in r.data.metrics and "accuracy" in r.data.metrics for r in children
    )
    pareto = [r for r in children if r.data.tags.get("pareto") == "true"]
    assert {r.data.params["config"] for r in pareto} == {row["config"] for row in summary["pareto"]}
    artifacts = {a.path for a in client.list_artifacts(summary["parent_run_id"], "report")}
    assert {
        "report/pareto.csv",
        "report/pareto_front.png",
        "report/pareto_front.html",
        "report/hypervolume_history.png",
    } <= artifacts
    logged = Path(
        client.download_artifacts(summary["parent_run_id"], "spec/note10_test.yaml", str(tmp_path))
    ).read_text()  # the spec as written, but no URL's user or password
    assert "tracking_uri: http://…@127.0.0.1:1/" in logged and "s3cret" not in logged
    assert "search:" in logged and "note10_test" in logged


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_sigkill_mid_study_then_rerun_loses_no_completed_trial(
    tmp_path, monkeypatch, capsys, storage, request
):
    """The driver killed with SIGKILL mid-study, then the same command: every completed trial
    kept, the interrupted ones failed and asked again (PostgreSQL: by Optuna's heartbeat), no
    subnet evaluated twice, every evaluated trial with exactly one MLflow run (those the killed
    driver had not written yet are written from the study), the parent run not left RUNNING."""
    monkeypatch.chdir(tmp_path)
    extra = {}
    if storage == "postgresql":
        extra = {
            "storage": request.getfixturevalue("postgres").create_database(),
            "heartbeat_seconds": 1,
        }
    spec_path = _spec(tmp_path, name="killed", trials=100000, workers=1, **extra)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "search", str(spec_path), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    spec = load_spec(spec_path)
    deadline = time.time() + 120
    from nas.search import open_study

    n_before = 0
    while time.time() < deadline:
        time.sleep(1)
        try:
            n_before = len(open_study(spec).get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
        except (KeyError, optuna.exceptions.StorageInternalError):
            continue  # not created yet
        if n_before >= 30:
            break
    # a second driver on the same study is refused, naming the first, and changes nothing
    assert main(["search", str(spec_path), "--quiet", "--no-mlflow"]) == 2
    assert f"pid {proc.pid} on " in capsys.readouterr().err
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert n_before >= 30, "the study never got going"
    study = open_study(spec)
    before = {
        t.number: t.values for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    }
    running = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    if storage == "postgresql":
        time.sleep(3.5)  # the killed driver's heartbeats go stale (3 intervals)

    target = len(before) + 5
    assert main(["search", str(spec_path), "--trials", str(target), "--quiet"]) == 0
    study = open_study(spec)
    after = {
        t.number: t.values for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    }
    assert all(after[n] == v for n, v in before.items())  # every completed trial kept, unchanged
    assert len(after) >= target
    for t in running:  # left RUNNING by the kill: failed, and its parameters asked again
        assert study.trials[t.number].state == optuna.trial.TrialState.FAIL
        if storage == "journal":  # (Optuna's heartbeat path fails it without a note)
            assert study.trials[t.number].user_attrs["error"].startswith("interrupted")
        assert any(u.user_attrs.get("requeued_from") == t.number for u in study.trials)
    evaluated = [  # a repeat of a subnet is answered from the study, never evaluated again
        t
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if "duplicate_of" not in t.user_attrs
    ]
    assert len({t.user_attrs["config"] for t in evaluated}) == len(evaluated)

    client = mlflow.tracking.MlflowClient()
    exp = client.get_experiment_by_name("killed")
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`nas.role` = 'study'")
    assert [r.info.status for r in parents] == ["FINISHED"]  # one parent run, ended
    children = client.search_runs(
        [exp.experiment_id], filter_string="tags.`nas.role` = 'trial'", max_results=5000
    )
    numbers = sorted(int(r.data.tags["nas.trial"]) for r in children)
    assert numbers == sorted(t.number for t in evaluated)  # one run each, none twice
    assert all(r.info.status == "FINISHED" for r in children)


def test_a_resumed_study_does_not_replay_its_seeded_proposals(tmp_path):
    """Run 6 trials, then the same spec to 12: the second driver's sampler is not the first's
    seeded sequence again (whose first draws would all repeat trials 2-5, answered from the
    study but spending the budget)."""
    from nas.search import SearchJob, open_study

    spec = load_spec(_spec(tmp_path, name="resumed", trials=6, workers=1, sampler="tpe"))
    assert SearchJob(spec, track=False).run().n_complete == 6
    assert SearchJob(spec, track=False).run(trials=12).n_complete == 12
    trials = sorted(open_study(spec).trials, key=lambda t: t.number)
    assert not [t.number for t in trials[6:] if "duplicate_of" in t.user_attrs]
    configs = [t.user_attrs["config"] for t in trials]
    assert len(set(configs)) == 12


def test_surrogate_sampler_queries_its_proposals_after_the_warm_up(tmp_path):
    spec_path = _spec(
        tmp_path, name="surrogate", trials=30, sampler="surrogate", surrogate_warmup=10
    )
    spec = load_spec(spec_path)
    spec = dataclasses.replace(spec, search=dataclasses.replace(spec.search, surrogate_batch=5))
    from nas.search import SearchJob

    result = SearchJob(spec, track=False).run()
    assert result.n_complete == 30
    from nas.search import open_study

    study = open_study(spec)
    trials = sorted(study.trials, key=lambda t: t.number)
    space = get_space("ofa_mbv3")
    assert space.config_from_params(trials[0].params) == space.smallest()  # the two ends first
    assert space.config_from_params(trials[1].params) == space.largest()
    proposed = [t for t in trials[12:] if "fixed_params" in t.system_attrs]
    assert len(proposed) >= 15  # after the warm-up, the surrogate chose what was queried


def test_mnasnet_reward_study_is_single_objective_and_still_exports_a_front(tmp_path):
    """``search.objective: mnasnet-soft``: one maximized value per trial, the paper's reward of
    the trial's own accuracy and target-device latency; the front is drawn from every trial; the
    same study resumed under another objective is one clear error naming the field."""
    from nas.errors import SpecError
    from nas.search import SearchJob, open_study

    spec = load_spec(
        _spec(tmp_path, name="reward", trials=16, sampler="tpe", objective="mnasnet-soft",
              target_latency_ms=25.0)
    )  # fmt: skip
    result = SearchJob(spec, track=False).run()
    study = open_study(spec)
    assert result.n_complete == 16 and len(study.directions) == 1
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        latency = t.user_attrs["latency_ms"]["note10"]
        assert t.value == pytest.approx(t.user_attrs["accuracy"] * (latency / 25.0) ** -0.07)
    front = [(r["latency_ms"]["note10"], r["accuracy"]) for r in result.pareto]
    assert (
        front
        and front == sorted(front)
        and all(b[1] > a[1] for a, b in zip(front, front[1:], strict=False))
    )

    pareto = dataclasses.replace(spec, search=dataclasses.replace(spec.search, objective="pareto"))
    with pytest.raises(SpecError, match=r"search\.objective.*\['maximize'\]"):
        open_study(pareto)


@pytest.mark.slow
def test_failing_trials_and_a_dying_worker_do_not_stop_the_study(tmp_path, monkeypatch):
    died = tmp_path / "died"
    monkeypatch.setenv("NAS_INJECT_FAULTS", f"raise_every=3,die_once={died}")
    spec_path = _spec(tmp_path, name="faulty", trials=12, workers=2)
    assert main(["search", str(spec_path), "--quiet", "--no-mlflow"]) == 0
    assert died.is_file()  # one worker process really exited mid-trial
    from nas.search import open_study

    study = open_study(load_spec(spec_path))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(complete) == 12  # the job went on to its budget
    errors = [t.user_attrs.get("error", "") for t in failed]
    assert any("InjectedFault" in e or "injected fault" in e for e in errors), errors
    # the trial a worker died on ran again on a live worker (the replacement only takes work
    # once started): it completed, or that worker's injected fault (every 3rd call) failed it
    (dead,) = [t for t in study.trials if t.user_attrs.get("worker_died", "").startswith("worker")]
    ran_again = dead.user_attrs.get("accuracy", 0) > 0 or "injected fault" in dead.user_attrs.get(
        "error", ""
    )
    assert ran_again, dead.user_attrs


@pytest.mark.slow
def test_own_predictor_trained_on_a_study_reports_held_out_rmse_and_tau(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    spec_path = _spec(tmp_path, name="for_predictor", trials=120, workers=1)
    assert main(["search", str(spec_path), "--quiet", "--no-mlflow"]) == 0
    capsys.readouterr()
    out = tmp_path / "pred.pth"
    assert main(["train-predictor", str(spec_path), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["n_test"] >= 20 and report["n_train"] + report["n_test"] <= 120
    # the study's accuracies come from OFA's predictor: a fresh MLP must learn them well
    assert report["rmse"] < report["baseline_rmse"] and report["kendall_tau"] > 0.5
    assert load_ofa_predictor(out) is not None  # same file layout as OFA's


@pytest.mark.slow
def test_an_evaluator_file_that_cannot_be_read_is_one_clear_error_before_ray(
    tmp_path, monkeypatch, capsys
):
    """The driver reads the workers' files before Ray starts: a predictor file that is not one
    is one line naming it (not torch's advice to load it unsafely), and no study is created."""
    monkeypatch.chdir(tmp_path)
    bogus = tmp_path / "not_a_predictor.pth"
    bogus.write_bytes(b"garbage")
    spec_path = _spec(tmp_path, name="broken", trials=5, workers=1)
    monkeypatch.setenv("NAS_OFA_PREDICTOR", str(bogus))
    assert main(["search", str(spec_path), "--quiet", "--no-mlflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas: error:") and len(err.splitlines()) == 1, err
    assert "not_a_predictor.pth is not an OFA accuracy predictor" in err
    assert "weights_only" not in err and "Traceback" not in err
    assert not (Path(os.environ["NAS_RUNS_DIR"]) / "broken").exists()


def test_a_worker_that_cannot_build_its_evaluator_is_one_clear_error(tmp_path):
    """A worker whose evaluator cannot be built from what the driver sent is one error naming
    why, not a remote traceback."""
    from nas.errors import NASError
    from nas.search import SearchJob

    spec = load_spec(_spec(tmp_path, name="broken_worker", trials=2, workers=1))
    job = SearchJob(spec, track=False)
    job.preflight()
    job._inputs = {}  # what a worker needs is missing: its evaluator cannot be built
    with pytest.raises(NASError, match="could not start") as caught:
        with job.locks():
            job._run_locked(trials=2, workers=1, export=False)
    assert "predictor" in str(caught.value)


def test_a_subnet_asked_again_while_it_is_evaluated_waits_for_that_evaluation(tmp_path):
    """Two trials of the same subnet at once (enqueued twice, two workers): one evaluation, the
    second trial told its result as a duplicate, never evaluated beside it."""
    from nas.search import SearchJob, open_study

    spec = load_spec(_spec(tmp_path, name="twice", trials=4, workers=2, sampler="tpe"))
    space = get_space("ofa_mbv3")
    params = space.trial_params(space.sample(np.random.default_rng(3)))
    study = open_study(spec)
    study.enqueue_trial(params, skip_if_exists=False)
    study.enqueue_trial(params, skip_if_exists=False)
    assert SearchJob(spec, track=False).run().n_complete == 4
    first, second = sorted(open_study(spec).trials, key=lambda t: t.number)[:2]
    assert first.user_attrs["config"] == second.user_attrs["config"]
    assert "eval_seconds" in first.user_attrs and "eval_seconds" not in second.user_attrs
    assert second.user_attrs["duplicate_of"] == first.number and second.values == first.values


@pytest.mark.slow
def test_size_as_a_third_objective_gives_a_three_objective_study_and_front(
    tmp_path, capsys, monkeypatch
):
    """``objectives: [accuracy, latency, size]``: every trial priced at its TFLite file's
    predicted size, the study minimizing it, the front non-dominated in all three (not only in
    latency and accuracy), and the report drawing that front pairwise."""
    from nas.export import predicted_size_bytes
    from nas.search import nondominated, open_study

    monkeypatch.chdir(tmp_path)
    spec_path = _spec(tmp_path, name="sized", trials=16, objectives=["accuracy", "latency", "size"])
    assert main(["search", str(spec_path), "--json", "--workers", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    spec = load_spec(spec_path)
    study = open_study(spec)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    space = get_space("ofa_mbv3")
    trials = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        config = space.parse(t.user_attrs["config"])
        assert t.user_attrs["size_kb"] == pytest.approx(predicted_size_bytes(space, config) / 1024)
        assert t.values[2] == pytest.approx(t.user_attrs["size_kb"])
        trials.setdefault(t.user_attrs["config"], t)
    points = [
        (t.user_attrs["latency_ms"]["note10"], -t.user_attrs["accuracy"], t.user_attrs["size_kb"])
        for t in trials.values()
    ]
    front = {list(trials)[i] for i in nondominated(points)}
    assert {row["config"] for row in summary["pareto"]} == front
    client = mlflow.tracking.MlflowClient()
    exp = client.get_experiment_by_name("sized")
    children = client.search_runs([exp.experiment_id], filter_string="tags.`nas.role` = 'trial'")
    assert children and all(r.data.metrics["size_kb"] > 0 for r in children)
    artifacts = {a.path for a in client.list_artifacts(summary["parent_run_id"], "report")}
    assert "report/pareto_pairs.png" in artifacts


def test_a_joint_config_is_priced_at_its_file_size_and_logs_each_layers_precision():
    """What a trial of ``apq(ofa_mbv3_small)`` is priced and logged with: its predicted file
    size at its layers' precisions (an int8 layer costs fewer bytes than the same layer in
    fp32), and one ``precision.<module path>`` parameter per layer for its MLflow child run."""
    from nas.export import predicted_size_bytes
    from nas.search import SearchJob

    spec = load_spec(REPO / "runs" / "fashion_mnist_apq.yaml")
    job = SearchJob(spec, track=False)
    config = job.space.sample(np.random.default_rng(0))
    params = job._precisions(config)
    assert params == {
        f"precision.{path}": dtype
        for path, dtype in zip(job.space.layer_paths(config), config.dtypes, strict=True)
    }
    assert set(params.values()) == {"fp32", "fp16", "int8"}
    size = job._size(config)["size_kb"] * 1024
    assert size == predicted_size_bytes(job.space, config)
    fp32 = job.space.parse(str(config.base))  # the same model, every layer fp32
    int8 = dataclasses.replace(fp32, dtypes=("int8",) * len(fp32.dtypes))
    assert predicted_size_bytes(job.space, int8) < size < predicted_size_bytes(job.space, fp32)
