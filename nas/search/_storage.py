"""Where a study lives: a journal file in ``runs/<name>/`` (one machine), or ``search.storage``, an
Optuna RDB URL (PostgreSQL for a cluster: ``postgresql://user:password@host/db``; SQLite).

With a database the driver holds the study's PostgreSQL advisory lock for its whole run (one
driver per study, whichever machine it runs on; the server drops the lock when the driver's
connection dies), records Optuna heartbeats for the trials it has in flight, and fails and
re-queues trials whose heartbeat went stale (``optuna.storages.fail_stale_trials``: a driver
killed mid-trial). The journal has no heartbeat: the driver's lock file
(``runs/<name>/driver.lock``) makes every RUNNING trial found at start a dead driver's, failed and
re-queued at once.

A trial is three writes: its creation; its parameters, attributes and first heartbeat
(:func:`batched_writes`); its result with its last attributes (:func:`tell`). On the journal,
three appends, fsynced when the trial finishes (:class:`_JournalFile`); on PostgreSQL, three
transactions, the statements of each sent together (psycopg's pipeline mode), then committed."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file
from optuna.storages.journal._storage import JournalOperation

from nas.errors import SpecError, first_line
from nas.spec import RunSpec
from nas.tracking import redact_urls

__all__ = [
    "Heartbeat",
    "batched_writes",
    "check_storage",
    "open_storage",
    "recover_interrupted",
    "storage_label",
    "storage_url",
    "study_lock",
]

logger = logging.getLogger(__name__)

#: PostgreSQL URL schemes that SQLAlchemy would give to psycopg2 (not installed): psycopg 3
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def storage_url(url: str) -> str:
    """``url`` with PostgreSQL's bare scheme given the installed driver (psycopg 3)."""
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def storage_label(spec: RunSpec) -> str:
    """Where the spec's study lives, for messages (the URL without a password)."""
    if not spec.search.storage:
        return str(spec.run_dir() / "study.journal")
    return redact_urls(spec.search.storage)


def check_storage(spec: RunSpec) -> None:
    """``search.storage`` names a database this process can open: SQLAlchemy reads the URL,
    knows its dialect and imports its driver; a SQLite file's folder can be written, a server
    answers (nothing is created).

    Raises:
        SpecError: naming the field, with the URL's password left out.
    """
    url = spec.search.storage
    if not url:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    label = storage_label(spec)
    try:
        parsed = make_url(storage_url(url))
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as e:
        why = str(e).replace(url, label)
        raise SpecError(f"search.storage = {label!r} cannot be opened: {why}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            from nas.paths import check_writable

            check_writable(Path(parsed.database).parent, f"search.storage ({label}): its folder")
        return
    import sqlalchemy as sa

    wait = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
    engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool, connect_args=wait)
    try:
        with engine.connect() as conn:  # a server that is down or refuses us: named now
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as e:
        raise _unreachable(spec, e) from None
    finally:
        engine.dispose()


def _requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A failed interrupted trial's parameters, asked again (``requeued_from`` its number): those
    it recorded, over those it was queued with (a queued trial whose parameters a power cut
    took, :class:`_JournalFile`)."""
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    study.enqueue_trial(params, user_attrs={"requeued_from": trial.number}, skip_if_exists=False)


def _unreachable(spec: RunSpec, e: Exception) -> SpecError:
    why = first_line(getattr(e, "orig", None) or e, limit=10_000)
    label = storage_label(spec)
    return SpecError(f"search.storage = {label!r} cannot be reached: {redact_urls(why)}")


#: how long a study call waits for its database to come back (a restart, a fail-over)
PATIENCE_SECONDS = 120.0

#: the RDB storage's calls that go to the database (those Optuna's cache calls included, the
#: private ones; a public call that only delegates to one of them is left to it)
_DATABASE_CALLS = (
    "create_new_study delete_study set_study_user_attr set_study_system_attr "
    "get_study_id_from_name get_study_name_from_id get_study_directions get_study_user_attrs "
    "get_study_system_attrs get_trial_user_attrs get_trial_system_attrs get_all_studies "
    "_create_new_trial get_trial_param _set_trial_param set_trial_state_values "
    "set_trial_intermediate_value set_trial_user_attr set_trial_system_attr "
    "get_trial_id_from_study_id_trial_number get_trial _get_trials _get_best_trial_id "
    "record_heartbeat _get_stale_trial_ids"
).split()


def _connection_lost(e: BaseException) -> bool:
    """A database error that a retry can cure (the server is down or dropped the connection),
    anywhere in the chain of causes (Optuna wraps them in ``StorageInternalError``)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError

    seen: BaseException | None = e
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, OperationalError | InterfaceError | PendingRollbackError):
            return True  # (a rolled-back connection: Optuna's fallback query ran on it)
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _patiently(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, tried again while the database is unreachable, up to
    :data:`PATIENCE_SECONDS` (one warning line)."""
    deadline, pause, said = time.monotonic() + PATIENCE_SECONDS, 0.5, False
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as e:
            if not _connection_lost(e) or time.monotonic() > deadline:
                raise
            if not said:
                logger.warning(
                    "the study's database is unreachable (%s); retrying for up to %.0f s",
                    redact_urls(first_line(e.__cause__ or e)),
                    PATIENCE_SECONDS,
                )
                said = True
            time.sleep(pause)
            pause = min(2 * pause, 5.0)


def _patient(method: Any) -> Any:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _patiently(method, self, *args, **kwargs)

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class _PatientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose calls wait for a database that went away (restarted, failed
    over) to come back, up to :data:`PATIENCE_SECONDS`, instead of ending the study."""


for _name in _DATABASE_CALLS:
    setattr(_PatientRDBStorage, _name, _patient(getattr(optuna.storages.RDBStorage, _name)))


def open_storage(spec: RunSpec) -> Any:
    """The spec's Optuna storage: a journal file, or an RDB storage with heartbeats
    (``search.heartbeat_seconds``) whose stale trials are failed and re-queued.

    Raises:
        SpecError: the database cannot be reached (naming the field, no password).
    """
    if not spec.search.storage:
        from optuna.storages import JournalStorage

        spec.run_dir().mkdir(parents=True, exist_ok=True)
        return JournalStorage(_JournalFile(str(spec.run_dir() / "study.journal")))
    from sqlalchemy.exc import SQLAlchemyError

    beat = spec.search.heartbeat_seconds
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return _PatientRDBStorage(
                storage_url(spec.search.storage),
                # a restarted server: every pooled connection is checked before it is used
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=beat,
                grace_period=3 * beat,
                heartbeat_stale_trial_callback=_requeue,
            )
        except SQLAlchemyError as e:
            raise _unreachable(spec, e) from None


class _JournalFile(JournalFileBackend):
    """The study's journal file: Optuna's, each append written before it returns (other
    processes read it; a driver killed a moment later loses nothing), fsynced only when it
    finishes a trial or writes anything but a running trial's creation, parameters and
    attributes. Those ride on the next fsync, which makes everything written before it durable,
    instead of one fsync per append (three per trial, half the driver's time on a predictor
    study: ``benchmarks/study_load.py``). A power cut can lose what the trials in flight wrote
    since: on resume such a trial is absent, or RUNNING without its parameters and re-queued
    with those it was queued with, if any (:func:`_requeue`); a finished trial is never lost."""

    #: what rides on the next fsync (and a CREATE_TRIAL of a running trial)
    RIDING = frozenset(
        {
            JournalOperation.SET_TRIAL_PARAM,
            JournalOperation.SET_TRIAL_USER_ATTR,
            JournalOperation.SET_TRIAL_SYSTEM_ATTR,
        }
    )

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        with get_lock_file(self._lock), open(self._file_path, "ab") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            if not all(self._rides(log) for log in logs):
                os.fsync(f.fileno())

    def _rides(self, log: dict[str, Any]) -> bool:
        if log["op_code"] == JournalOperation.CREATE_TRIAL:
            return (
                log.get("state", optuna.trial.TrialState.RUNNING) == optuna.trial.TrialState.RUNNING
            )
        return log["op_code"] in self.RIDING


def recover_interrupted(study: optuna.Study, at_start: bool = False) -> int:
    """Trials a dead driver left RUNNING, failed and queued again; how many.

    A storage with heartbeats fails those whose heartbeat is stale (Optuna's
    ``fail_stale_trials``; the driver calls this again while it runs, so a trial of a driver
    killed a moment ago is taken up once its grace period is over), and ``at_start`` those that
    never recorded one (a driver killed between creating a trial and its first heartbeat; this
    driver holds the study's lock and has asked nothing yet, so they are a dead driver's). The
    journal's every RUNNING trial is a dead driver's (this driver holds the study's lock)."""
    if _heartbeat_seconds(study._storage) is not None:
        # one query on the heartbeats (this driver holds the lock: what it finds is failed)
        n = len(study._storage._get_stale_trial_ids(study._study_id))
        if n:
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        if at_start:
            n += _fail_and_requeue(study, _never_beaten(study))
    else:
        n = _fail_and_requeue(
            study, study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        )
    if n:
        logger.info("re-queued %d trial(s) left running by an interrupted driver", n)
    return n


def _fail_and_requeue(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> int:
    for trial in trials:
        study._storage.set_trial_user_attr(
            trial._trial_id, "error", "interrupted: the driver stopped mid-trial"
        )
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        _requeue(study, trial)
    return len(trials)


def _never_beaten(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's RUNNING trials without a heartbeat record (an RDB storage's)."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        return []
    rdb = getattr(study._storage, "_backend", study._storage)
    beat = models.TrialHeartbeatModel
    with _create_scoped_session(rdb.scoped_session) as session:
        beaten = {
            trial_id
            for (trial_id,) in session.query(beat.trial_id).filter(
                beat.trial_id.in_([t._trial_id for t in running])
            )
        }
    return [t for t in running if t._trial_id not in beaten]


class _Writes:
    """Stands in for the study's storage on one trial (``trial.storage``) inside
    :func:`batched_writes`: keeps its parameter and attribute writes; reads pass through."""

    def __init__(self, trial: optuna.trial.Trial) -> None:
        self.storage, self.trial = trial.storage, trial
        self.params: list[tuple[int, str, float, Any]] = []
        #: (trial id, "user" | "system", key, value, whether the trial had the key already)
        self.attrs: list[tuple[int, str, str, Any, bool]] = []
        #: the trial's first heartbeat recorded by the same write (a storage with heartbeats)
        self.heartbeat = False
        #: (trial id, final state, values, when): the trial finished by the same write
        self.finish: tuple[int, optuna.trial.TrialState, list[float] | None, datetime] | None = None

    def set_trial_param(self, trial_id: int, name: str, value: float, dist: Any) -> None:
        self.params.append((trial_id, name, value, dist))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        had = key in self.trial._cached_frozen_trial.user_attrs
        self.attrs.append((trial_id, "user", key, value, had))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        had = key in self.trial._cached_frozen_trial.system_attrs
        self.attrs.append((trial_id, "system", key, value, had))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


@contextlib.contextmanager
def _kept(trial: optuna.trial.Trial) -> Iterator[_Writes]:
    """Inside, the trial's writes are kept (a :class:`_Writes` stands in for its storage)."""
    storage = trial.storage
    writes = _Writes(trial)
    trial.storage = writes
    try:
        yield writes
    finally:
        trial.storage = storage


@contextlib.contextmanager
def batched_writes(trial: optuna.trial.Trial, heartbeat: bool = False) -> Iterator[None]:
    """Inside, the trial's ``suggest_*``, ``set_user_attr`` and ``set_constraint`` are kept, and
    written at the end in one write: one journal append or one database
    transaction, instead of one per parameter (a subnet of ``ofa_mbv3`` has 46). The trial reads
    back what it suggested from its own cache, as Optuna's ``Trial`` always does."""
    with _kept(trial) as writes:
        writes.heartbeat = heartbeat
        yield
    if writes.params or writes.attrs or writes.heartbeat:
        _write_all(writes.storage, writes)


def tell(
    study: optuna.Study,
    trial: optuna.trial.Trial,
    values: Sequence[float] | None = None,
    state: optuna.trial.TrialState = optuna.trial.TrialState.COMPLETE,
    **user_attrs: Any,
) -> optuna.trial.FrozenTrial:
    """``study.tell(trial, values, state)`` with the trial's last user attributes, all in one
    write (one journal append, one transaction) instead of one per attribute, one for the result
    and two reads of the trial; the finished trial. The sampler's ``after_trial`` runs first, as
    in ``study.tell``. A value that is not finite takes Optuna's own path (the trial FAILs)."""
    done = optuna.trial.TrialState.COMPLETE
    values = None if values is None else [float(v) for v in values]
    if state == done and (values is None or not all(math.isfinite(v) for v in values)):
        with batched_writes(trial):
            for key, value in user_attrs.items():
                trial.set_user_attr(key, value)
        return study.tell(trial, values)
    with _kept(trial) as writes:
        for key, value in user_attrs.items():
            trial.set_user_attr(key, value)
    finished = copy.copy(trial._cached_frozen_trial)
    finished.state, finished.values = state, values
    finished.datetime_complete = datetime.now()
    study._thread_local.cached_all_trials = None  # as study.tell
    try:
        study.sampler.after_trial(study, trial._cached_frozen_trial, state, values)
    finally:
        writes.finish = (trial._trial_id, state, values, finished.datetime_complete)
        _write_all(study._storage, writes)
    return finished


def _write_all(storage: Any, writes: _Writes) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages._cached_storage import _CachedStorage

    if isinstance(storage, JournalStorage):
        _write_journal(storage, writes)
    elif isinstance(storage, _CachedStorage) and isinstance(
        storage._backend, optuna.storages.RDBStorage
    ):
        _patiently(_write_rdb, storage, writes)
    else:  # another storage: its own writes, one by one
        for trial_id, name, value, dist in writes.params:
            storage.set_trial_param(trial_id, name, value, dist)
        for trial_id, kind, key, value, _ in writes.attrs:
            getattr(storage, f"set_trial_{kind}_attr")(trial_id, key, value)
        if writes.finish is not None:
            trial_id, state, values, _ = writes.finish
            storage.set_trial_state_values(trial_id, state, values)
        if writes.heartbeat and _heartbeat_seconds(storage) is not None:
            storage.record_heartbeat(writes.trial._trial_id)


def _write_journal(storage: Any, writes: _Writes) -> None:
    from optuna.distributions import distribution_to_json
    from optuna.storages.journal._storage import JournalOperation

    worker = storage._replay_result.worker_id
    logs = [
        {
            "op_code": JournalOperation.SET_TRIAL_PARAM,
            "worker_id": worker,
            "trial_id": trial_id,
            "param_name": name,
            "param_value_internal": value,
            "distribution": distribution_to_json(dist),
        }
        for trial_id, name, value, dist in writes.params
    ]
    ops = {
        "user": JournalOperation.SET_TRIAL_USER_ATTR,
        "system": JournalOperation.SET_TRIAL_SYSTEM_ATTR,
    }
    for trial_id, kind, key, value, _ in writes.attrs:
        logs.append(
            {
                "op_code": ops[kind],
                "worker_id": worker,
                "trial_id": trial_id,
                f"{kind}_attr": {key: value},
            }
        )
    if writes.finish is not None:
        trial_id, state, values, when = writes.finish
        logs.append(
            {
                "op_code": JournalOperation.SET_TRIAL_STATE_VALUES,
                "worker_id": worker,
                "trial_id": trial_id,
                "state": state,
                "values": values,
                "datetime_complete": when.astimezone(UTC).isoformat(timespec="microseconds"),
            }
        )
    with storage._thread_lock:
        storage._backend.append_logs(logs)
        storage._sync_with_backend()


@dataclasses.dataclass
class _Rows:
    """What one batch writes to a database, as rows (:func:`_rows`)."""

    #: trials that must still be running (the finishing one is checked by its update)
    running: list[int]
    #: (trial id, final state, when: naive UTC, as TrialModel stores it)
    finish: tuple[int, optuna.trial.TrialState, datetime] | None
    #: (model, trial id, key, value): attributes the trial had, updated in place (or inserted
    #: if their row is missing)
    updates: list[tuple[Any, int, str, Any]]
    #: table -> its new rows
    inserts: dict[Any, list[dict[str, Any]]]
    #: the trial whose first heartbeat is written (the database's clock stamps it)
    heartbeat: int | None


def _rows(cached: Any, writes: _Writes) -> _Rows:
    """``writes`` as rows; a parameter's distribution checked against the study's as Optuna
    checks it (and the study's cache told of a new one)."""
    from optuna.distributions import check_distribution_compatibility, distribution_to_json
    from optuna.storages._rdb import models

    tables = {"user": models.TrialUserAttributeModel, "system": models.TrialSystemAttributeModel}
    finishing = writes.finish[0] if writes.finish is not None else None
    touched = {w[0] for w in writes.params} | {w[0] for w in writes.attrs}
    rows = _Rows(
        running=sorted(touched - {finishing}), finish=None, updates=[], inserts={}, heartbeat=None
    )
    for trial_id, name, value, dist in writes.params:
        study_id, _ = cached._trial_id_to_study_id_and_number[trial_id]
        known = cached._studies[study_id].param_distribution
        if name in known:
            check_distribution_compatibility(known[name], dist)
        else:
            known[name] = dist
        rows.inserts.setdefault(models.TrialParamModel.__table__, []).append(
            {
                "trial_id": trial_id,
                "param_name": name,
                "param_value": float(value),
                "distribution_json": distribution_to_json(dist),
            }
        )
    latest: dict[tuple[int, str, str], tuple[Any, bool]] = {}
    for trial_id, kind, key, value, had in writes.attrs:  # a key set twice: its last value
        first = latest.get((trial_id, kind, key))
        latest[trial_id, kind, key] = (value, had if first is None else first[1])
    for (trial_id, kind, key), (value, had) in latest.items():
        if had:
            rows.updates.append((tables[kind], trial_id, key, value))
        else:
            rows.inserts.setdefault(tables[kind].__table__, []).append(
                {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            )
    if writes.finish is not None:  # a running trial holds no values yet
        trial_id, state, values, when = writes.finish
        rows.finish = (trial_id, state, when.astimezone(UTC).replace(tzinfo=None))
        for objective, value in enumerate(values or []):
            stored, kind = models.TrialValueModel.value_to_stored_repr(value)
            rows.inserts.setdefault(models.TrialValueModel.__table__, []).append(
                {"trial_id": trial_id, "objective": objective, "value": stored,
                 "value_type": kind.name}
            )  # fmt: skip
    if writes.heartbeat and cached._backend.heartbeat_interval is not None:
        rows.heartbeat = writes.trial._trial_id  # its first: a new row
    return rows


def _on_postgresql(rdb: Any) -> bool:
    """The storage's database is PostgreSQL through psycopg 3 (pipeline mode)."""
    return rdb.engine.dialect.name == "postgresql" and rdb.engine.dialect.driver == "psycopg"


def _write_rdb(cached: Any, writes: _Writes) -> None:
    """One transaction: each trial checked once, its new parameters, attributes and values
    inserted in one statement each (Optuna's own path checks the trial again and flushes for
    every one). On PostgreSQL the statements go out together (:func:`_write_pipelined`)."""
    rdb = cached._backend
    with cached._lock:
        rows = _rows(cached, writes)
        if _on_postgresql(rdb):
            _write_pipelined(rdb, rows)
        else:
            _write_core(rdb, rows)


def _write_core(rdb: Any, rows: _Rows) -> None:
    """``rows`` in one transaction, a statement at a time (SQLAlchemy Core: no ORM work per
    row)."""
    import sqlalchemy as sa
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    trials = models.TrialModel.__table__

    def check(trial_id: int) -> None:
        state = conn.execute(
            sa.select(trials.c.state).where(trials.c.trial_id == trial_id)
        ).scalar_one_or_none()
        _refuse_unless_running(rdb, trial_id, state)

    with _create_scoped_session(rdb.scoped_session) as session:
        conn = session.connection()
        for trial_id in rows.running:
            check(trial_id)
        for model, trial_id, key, value in rows.updates:  # Optuna's upsert (it checks the trial)
            rdb._set_trial_attr_without_commit(session, model, trial_id, key, value)
        if rows.finish is not None:  # the running-state check is the update's own condition
            trial_id, state, when = rows.finish
            done = conn.execute(
                sa.update(trials)
                .where(trials.c.trial_id == trial_id)
                .where(trials.c.state == optuna.trial.TrialState.RUNNING)
                .values(state=state, datetime_complete=when)
            )
            if done.rowcount != 1:  # finished meanwhile, or gone: raises, all rolled back
                check(trial_id)
        for table, new in rows.inserts.items():
            conn.execute(sa.insert(table), new)
        if rows.heartbeat is not None:  # (its column's default: the database's clock)
            conn.execute(sa.insert(models.TrialHeartbeatModel.__table__), [
                {"trial_id": rows.heartbeat}
            ])  # fmt: skip


def _write_pipelined(rdb: Any, rows: _Rows) -> None:
    """``rows`` in one transaction on PostgreSQL, its statements sent together (psycopg's
    pipeline mode: one round trip for all, then one for the commit) and each table's new rows
    in one ``INSERT``; the states of the trials written to are read in the same round trip,
    with their rows locked, and the commit is sent only if they are all running."""
    import psycopg

    ids = rows.running + ([rows.finish[0]] if rows.finish is not None else [])
    with _psycopg(rdb) as pg:
        try:
            with pg.pipeline():  # leaving it: sent, and every result read
                states, finished = _send(pg, rdb.engine.dialect, rows)
        except psycopg.Error:  # a trial gone (its rows' foreign key), a duplicate, ...
            pg.rollback()
            _check_trials(rdb, pg, ids)
            raise
        found = dict(states.fetchall()) if rows.running else {}
        refused = any(found.get(t) != "RUNNING" for t in rows.running)
        if refused or (rows.finish is not None and finished.rowcount != 1):
            pg.rollback()  # a trial finished meanwhile, or gone
            _check_trials(rdb, pg, ids)
            raise optuna.exceptions.StorageInternalError(f"trials {ids} changed while written")
        pg.commit()


def _send(pg: Any, pg_dialect: Any, rows: _Rows) -> tuple[Any, Any]:
    """``rows``' statements, queued on the psycopg connection ``pg`` in pipeline mode; the
    cursors of the state check and of the finishing update."""
    from optuna.storages._rdb import models

    trials = models.TrialModel.__tablename__
    states = pg.cursor()
    if rows.running:
        states.execute(
            f"SELECT trial_id, state FROM {trials} WHERE trial_id = ANY(%s) FOR UPDATE",
            [rows.running],
        )
    finished = pg.cursor()
    if rows.finish is not None:
        trial_id, state, when = rows.finish
        finished.execute(
            f"UPDATE {trials} SET state = %s, datetime_complete = %s "
            "WHERE trial_id = %s AND state = 'RUNNING'",
            [state.name, when, trial_id],
        )
    cursor = pg.cursor()
    for model, trial_id, key, value in rows.updates:  # as Optuna's upsert
        cursor.execute(
            f"INSERT INTO {model.__tablename__} (trial_id, key, value_json) VALUES (%s, %s, %s) "
            "ON CONFLICT (trial_id, key) DO UPDATE SET value_json = EXCLUDED.value_json",
            [trial_id, key, json.dumps(value)],
        )
    for table, new in rows.inserts.items():
        columns = tuple(new[0])
        cursor.execute(_insert_json(table, columns, pg_dialect), [json.dumps(new, allow_nan=False)])
    if rows.heartbeat is not None:
        cursor.execute(
            f"INSERT INTO {models.TrialHeartbeatModel.__tablename__} (trial_id, "
            "heartbeat) VALUES (%s, CURRENT_TIMESTAMP)",
            [rows.heartbeat],
        )
    return states, finished


@functools.cache
def _insert_json(table: Any, columns: tuple[str, ...], dialect: Any) -> str:
    """``INSERT`` of many rows into ``table`` from one JSON array of them: the same short text
    whatever the number of rows (psycopg parses it once), one parameter to send."""
    record = ", ".join(f"{c} {table.c[c].type.compile(dialect=dialect)}" for c in columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT * FROM json_to_recordset(%s::json) AS r({record})"
    )


def _check_trials(rdb: Any, pg: Any, ids: list[int]) -> None:
    """Optuna's error for the first of trials ``ids`` that is not running (a new
    transaction on the psycopg connection ``pg``)."""
    from optuna.storages._rdb import models

    trials = models.TrialModel.__tablename__
    found = dict(
        pg.execute(
            f"SELECT trial_id, state FROM {trials} WHERE trial_id = ANY(%s)", [ids]
        ).fetchall()
    )
    pg.rollback()
    for trial_id in ids:
        _refuse_unless_running(rdb, trial_id, found.get(trial_id))


def _refuse_unless_running(rdb: Any, trial_id: int, state: Any) -> None:
    """Optuna's errors for writing to trial ``trial_id`` in ``state`` (a TrialState or its
    name; None: no such trial): KeyError, or ``UpdateFinishedTrialError`` when finished."""
    if state is None:
        raise KeyError(f"No trial with trial id {trial_id} exists.")
    if isinstance(state, str):
        state = optuna.trial.TrialState[state]
    rdb.check_trial_is_updatable(trial_id, optuna.trial.TrialState(state))


@contextlib.contextmanager
def _psycopg(rdb: Any) -> Iterator[Any]:
    """A connection of the storage's pool, as psycopg's own ``Connection``, for one write;
    back in the pool after it, rolled back unless committed. A psycopg error is raised as
    SQLAlchemy raises it (``OperationalError``, ``IntegrityError``, ...), so that a lost
    connection is retried (:func:`_patiently`) and dropped from the pool, as on SQLAlchemy's
    own calls."""
    import psycopg
    import sqlalchemy as sa

    try:
        raw = rdb.engine.raw_connection()
    except psycopg.Error as e:  # (the pool raises the driver's own errors)
        raise sa.exc.DBAPIError.instance(None, None, e, psycopg.Error) from e
    pg = raw.driver_connection
    try:
        yield pg
    except BaseException as e:
        if isinstance(e, psycopg.errors.PipelineAborted) and isinstance(
            e.__context__, psycopg.Error
        ):  # the statement's own error, hidden by the pipeline's
            e = e.__context__
        lost = pg.broken or pg.closed
        if lost:
            raw.invalidate()
        else:
            with contextlib.suppress(psycopg.Error):
                pg.rollback()
        if isinstance(e, psycopg.Error):
            raise sa.exc.DBAPIError.instance(
                None, None, e, psycopg.Error, connection_invalidated=lost
            ) from e
        raise
    finally:
        raw.close()


def _heartbeat_seconds(storage: Any) -> int | None:
    """The storage's heartbeat interval; None when it records no heartbeats (the journal)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return interval() if interval is not None else None


def _new_trial(study: optuna.Study) -> optuna.trial.Trial:
    """A new RUNNING trial of ``study``: ``optuna.Trial(study, storage.create_new_trial(...))``,
    without reading the new trial back when the storage (Optuna's cached RDB storage) keeps
    what its creation returned."""
    from optuna.storages._cached_storage import _CachedStorage

    storage = study._storage
    if not (
        isinstance(storage, _CachedStorage)
        and isinstance(storage._backend, optuna.storages.RDBStorage)
    ):
        return optuna.Trial(study, storage.create_new_trial(study._study_id))  # the journal
    frozen = _patiently(_create_rdb_trial, storage, study._study_id)
    return _trial_of(study, copy.deepcopy(frozen))


def _create_rdb_trial(cached: Any, study_id: int) -> optuna.trial.FrozenTrial:
    """A new RUNNING trial in one transaction, as ``RDBStorage._create_new_trial`` creates it
    (the study's row locked while the number is chosen), its number read from the study's last
    trial rather than counted over all of them (Optuna's count grows with the study: 10,000
    rows counted for the 10,000th trial), and added to the cache as
    ``_CachedStorage.create_new_trial`` adds it."""
    from optuna.storages._cached_storage import _StudyInfo

    rdb = cached._backend
    start = datetime.now()
    utc = start.astimezone(UTC).replace(tzinfo=None)  # naive UTC, as TrialModel stores it
    create = _create_pipelined if _on_postgresql(rdb) else _create_core
    trial_id, number = create(rdb, study_id, utc)
    frozen = optuna.trial.FrozenTrial(
        number=number,
        state=optuna.trial.TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=start,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=trial_id,
    )
    with cached._lock:  # once committed
        if study_id not in cached._studies:
            cached._studies[study_id] = _StudyInfo()
        cached._add_trials_to_cache(study_id, [frozen])
    return frozen


def _create_core(rdb: Any, study_id: int, start: datetime) -> tuple[int, int]:
    """The new trial's id and number: the study's row locked, the trial inserted numbered
    after the study's last trial (numbers follow trial ids within a study: Optuna's
    invariant)."""
    import sqlalchemy as sa
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    trials, studies = models.TrialModel.__table__, models.StudyModel.__table__
    with _create_scoped_session(rdb.scoped_session) as session:
        conn = session.connection()
        found = conn.execute(
            sa.select(studies.c.study_id).where(studies.c.study_id == study_id).with_for_update()
        ).scalar_one_or_none()
        if found is None:
            raise KeyError(f"No study with study_id {study_id} exists.")
        last = (
            sa.select(trials.c.number)
            .where(trials.c.study_id == study_id)
            .order_by(trials.c.trial_id.desc())
            .limit(1)
            .scalar_subquery()
        )
        trial_id, number = conn.execute(
            sa.insert(trials)
            .values(
                number=sa.func.coalesce(last, -1) + 1,
                study_id=study_id,
                state=optuna.trial.TrialState.RUNNING,
                datetime_start=start,
            )
            .returning(trials.c.trial_id, trials.c.number)
        ).one()
    return trial_id, number


def _create_pipelined(rdb: Any, study_id: int, start: datetime) -> tuple[int, int]:
    """:func:`_create_core` on PostgreSQL: the lock and the insert (the same statement, as SQL)
    sent together, then the commit."""
    import psycopg
    from optuna.storages._rdb import models

    trials, studies = models.TrialModel.__tablename__, models.StudyModel.__tablename__
    with _psycopg(rdb) as pg:
        try:
            with pg.pipeline():  # leaving it: sent, and every result read
                pg.execute(
                    f"SELECT study_id FROM {studies} WHERE study_id = %(study)s FOR UPDATE",
                    {"study": study_id},
                )
                new = pg.execute(
                    f"INSERT INTO {trials} (number, study_id, state, datetime_start) VALUES ("
                    f"COALESCE((SELECT number FROM {trials} WHERE study_id = %(study)s "
                    "ORDER BY trial_id DESC LIMIT 1), -1) + 1, %(study)s, 'RUNNING', %(start)s) "
                    "RETURNING trial_id, number",
                    {"study": study_id, "start": start},
                )
        except psycopg.errors.ForeignKeyViolation:
            raise KeyError(f"No study with study_id {study_id} exists.") from None
        trial_id, number = new.fetchone()
        pg.commit()
    return trial_id, number


def _trial_of(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.trial.Trial:
    """``optuna.Trial(study, frozen._trial_id)`` given the trial ``frozen`` its constructor
    would read from the storage (Optuna 5.0's ``Trial.__init__``, step by step; the test of
    ``batched_writes`` compares the two)."""
    from optuna import pruners

    trial = optuna.Trial.__new__(optuna.Trial)
    trial.study, trial._trial_id, trial.storage = study, frozen._trial_id, study._storage
    trial._cached_frozen_trial = frozen
    study.sampler.before_trial(pruners._filter_study(study, frozen), frozen)
    trial.relative_search_space = None
    trial._relative_params = None
    trial._fixed_params = frozen.system_attrs.get("fixed_params", {})
    return trial


class Heartbeat:
    """Records an Optuna heartbeat every ``storage.get_heartbeat_interval()`` seconds for each
    trial the driver has in flight (a thread; a no-op on a storage without heartbeats). A
    heartbeat that cannot be written (the database restarting) is tried again next beat."""

    def __init__(self, study: optuna.Study) -> None:
        self.storage = study._storage
        self.interval = _heartbeat_seconds(self.storage)
        self._trials: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_check = -float("inf")  # the first look is at once
        self._queue_may_hold = True

    def __enter__(self) -> Heartbeat:
        if self.interval is not None:
            self._thread = threading.Thread(target=self._beat, name="nas-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def add(self, trial: optuna.trial.Trial) -> None:
        """``trial`` is in flight, its first heartbeat written with its parameters
        (``batched_writes(trial, heartbeat=True)``): one every interval from now on."""
        if self.interval is None:
            return
        with self._lock:
            self._trials.add(trial._trial_id)

    def ask(self, study: optuna.Study) -> optuna.trial.Trial:
        """``study.ask()``, to be :meth:`add`-ed by the caller. The queue of waiting trials is
        read only while it may hold some: at start, and after :meth:`queued` (this driver is
        the study's only one, so only it queues trials: proposals, trials re-queued by
        recovery); once it is found empty, a trial is created without reading it, and built
        from what its creation returned (on PostgreSQL, a query over every unfinished trial
        and six reads of the new trial saved per trial). Optuna's warning that heartbeats are
        meant for ``Study.optimize`` is not raised: this driver keeps its trials' heartbeats."""
        study._thread_local.cached_all_trials = None  # as study.ask
        trial_id = study._pop_waiting_trial_id() if self._queue_may_hold else None
        if trial_id is not None:
            return optuna.Trial(study, trial_id)
        self._queue_may_hold = False
        return _new_trial(study)

    def queued(self) -> None:
        """Trials were queued (``enqueue_trial``): the next :meth:`ask` reads the queue."""
        self._queue_may_hold = True

    def remove(self, trial: optuna.trial.Trial) -> None:
        with self._lock:
            self._trials.discard(trial._trial_id)

    def recover_due(self) -> bool:
        """Time to look for stale trials again (once per interval)."""
        if self.interval is None or time.monotonic() - self._last_check < self.interval:
            return False
        self._last_check = time.monotonic()
        return True

    def _record(self, trial_id: int) -> None:
        try:
            self.storage.record_heartbeat(trial_id)
        except Exception as e:  # the next beat tries again; a stale trial is only re-asked
            logger.warning("heartbeat of trial id %d not written: %s", trial_id, e)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trials = list(self._trials)
            for trial_id in trials:
                self._record(trial_id)


def _lock_key(name: str) -> int:
    """The study's advisory-lock key: a signed 64-bit number from its name."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


@contextlib.contextmanager
def study_lock(spec: RunSpec) -> Iterator[None]:
    """With PostgreSQL storage, hold the study's advisory lock on a connection of its own for the
    duration (one driver per study on any machine); refuse, naming the holder, when another
    driver has it. Other storages: nothing (the journal is guarded by ``driver.lock``)."""
    url = spec.search.storage
    if not url or not storage_url(url).startswith("postgresql"):
        yield
        return
    import sqlalchemy as sa

    me = f"nas search pid {os.getpid()} on {socket.gethostname()}"
    engine = sa.create_engine(
        storage_url(url),
        poolclass=sa.pool.NullPool,
        connect_args={"application_name": me[:63]},
    )
    key = _lock_key(spec.name)
    try:
        conn = engine.connect()
    except sa.exc.SQLAlchemyError as e:
        raise _unreachable(spec, e) from None
    try:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not got:
            holder = conn.execute(
                sa.text(
                    "SELECT a.application_name, a.client_addr FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND l.objsubid = 1 "
                    "AND (l.classid::bigint << 32 | l.objid::bigint) = :k"
                ),
                {"k": key},
            ).first()
            who = (holder[0] or "another driver") if holder else "another driver"
            where = f" from {holder[1]}" if holder and holder[1] else ""
            raise SpecError(
                f"{who}{where} is running study {spec.name!r} in {storage_label(spec)}; wait "
                "for it to end or stop it, or give this run another name"
            )
        conn.commit()
        yield
    finally:
        conn.close()  # the server drops the lock with the session
        engine.dispose()
