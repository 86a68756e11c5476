"""One pool of Ray actors with one failure policy, shared by every parallel stage (search trials,
NetAdapt proposals, end-of-search exports).

The policy:

- a worker that dies (``RayActorError``: OOM kill, segfault, node lost) is replaced by a fresh
  actor built from the same arguments, and the task it held is queued again, first in line; a
  replacement is given work once it answers ``ping()`` (never while Ray cannot place it: a lost
  node's CPUs are gone, and the pool goes on with the workers it has until there is room);
- a task that raises is reported to the caller as a failed :class:`Completion` (the caller
  decides: the search marks the trial FAIL, NetAdapt drops the proposal);
- both count as failures; at ``max_failures`` the pool raises one :class:`~nas.errors.NASError`
  that names the last error, so a broken evaluator cannot loop forever;
- every actor is killed when the pool closes (``with`` block or :meth:`ActorPool.close`).

Not thread safe: one driver thread submits and collects.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from nas.cluster import wait_ready
from nas.errors import NASError

__all__ = ["ActorPool", "Completion"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Completion:
    """One finished task: ``value`` when it returned, else ``error`` (the task raised).
    ``worker_deaths``: workers that died holding this task before it ran to the end."""

    item: Any
    value: Any = None
    error: str | None = None
    seconds: float = 0.0
    worker_deaths: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclasses.dataclass
class _Task:
    item: Any
    method: str
    args: tuple[Any, ...]
    deaths: tuple[str, ...] = ()


class ActorPool:
    """``size`` actors of ``actor_class`` (a ``ray.remote`` class), each built with ``args``.

    ``submit(item, method, *args)`` queues ``actor.method(*args)`` for the next idle actor;
    ``item`` is the caller's handle, given back on its :class:`Completion`. Collect with
    :meth:`next_completed` (one at a time, e.g. to dispatch more work in between) or
    :meth:`as_completed` (until nothing is pending).

    ``label``: how a task's item is named in log lines (default ``repr``).

    ``ready``: wait on start for every actor's ``ping()`` (None when it could build what it
    holds, else a message why not, raised as one :class:`NASError`).

    Raises:
        ValueError: ``size`` or ``max_failures`` below 1.
        NASError: an actor could not start, or ``max_failures`` failures were reached.
    """

    def __init__(
        self,
        actor_class: Any,
        args: Sequence[Any] = (),
        *,
        size: int,
        max_failures: int,
        what: str = "a worker",
        ready: bool = True,
        label: Callable[[Any], str] = repr,
    ) -> None:
        if size < 1:
            raise ValueError(f"`size >= 1` must hold, but got ({size=}).")
        if max_failures < 1:
            raise ValueError(f"`max_failures >= 1` must hold, but got ({max_failures=}).")
        self._actor_class, self._args = actor_class, tuple(args)
        self.size, self.max_failures, self.what = size, max_failures, what
        self.label = label
        self.failures = 0
        self.last_error: str | None = None
        self._all: list[Any] = []
        self._idle: list[Any] = []
        self._queue: collections.deque[_Task] = collections.deque()
        self._inflight: dict[Any, tuple[Any, _Task, float]] = {}
        #: replacements not yet ready: their ping() -> the actor
        self._starting: dict[Any, Any] = {}
        try:
            for _ in range(size):
                self._idle.append(self._new_actor())
            if ready:
                wait_ready(self._idle, what)
        except BaseException:
            self.close()
            raise

    # ---- lifecycle -----------------------------------------------------------------------
    def _new_actor(self) -> Any:
        actor = self._actor_class.remote(*self._args)
        self._all.append(actor)
        return actor

    def close(self) -> None:
        """Kill every actor this pool started (dead ones included); pending work is dropped."""
        import ray

        for actor in self._all:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - an actor already gone is what we want
                pass
        self._all, self._idle = [], []
        self._starting.clear()
        self._queue.clear()
        self._inflight.clear()

    def __enter__(self) -> ActorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- work ----------------------------------------------------------------------------
    @property
    def free(self) -> int:
        """Idle actors with no queued task waiting for them: how much more to submit now."""
        return max(0, len(self._idle) - len(self._queue))

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet handed back (queued or running)."""
        return len(self._queue) + len(self._inflight)

    def submit(self, item: Any, method: str, *args: Any) -> None:
        self._queue.append(_Task(item, method, args))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            actor, task = self._idle.pop(), self._queue.popleft()
            ref = getattr(actor, task.method).remote(*task.args)
            self._inflight[ref] = (actor, task, time.perf_counter())

    def next_completed(self, timeout: float | None = None) -> Completion | None:
        """The next task to finish (its worker already has the next queued task), or None when
        nothing is pending or ``timeout`` seconds passed."""
        import ray

        while self._inflight or (self._queue and self._starting):
            waiting = [*self._inflight, *self._starting]
            ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
            if not ready:
                return None
            if ready[0] in self._starting:
                self._started(ready[0])
                continue
            actor, task, sent = self._inflight.pop(ready[0])
            seconds = time.perf_counter() - sent
            try:
                value = ray.get(ready[0])
            except ray.exceptions.RayActorError as e:
                self._requeue(actor, task, f"worker died: {e}")
                continue
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None) or e
                error = f"{type(cause).__name__}: {cause}"
                self._idle.append(actor)
                self._dispatch()
                logger.warning("%s: %s failed: %s", self.what, self.label(task.item), error)
                self._count_failure(error)
                return Completion(
                    task.item, error=error, seconds=seconds, worker_deaths=task.deaths
                )
            self._idle.append(actor)
            self._dispatch()
            return Completion(task.item, value=value, seconds=seconds, worker_deaths=task.deaths)
        return None

    def as_completed(self) -> Iterator[Completion]:
        """Every pending task's completion, in the order they finish."""
        while self.pending:
            done = self.next_completed()
            if done is not None:
                yield done

    def _requeue(self, dead: Any, task: _Task, error: str) -> None:
        logger.warning(
            "%s died on %s (%s): replacing it and running the task again",
            self.what,
            self.label(task.item),
            error,
        )
        self._count_failure(error)
        task.deaths = (*task.deaths, error)
        self._queue.appendleft(task)
        actor = self._new_actor()
        self._starting[actor.ping.remote()] = actor
        self._dispatch()

    def _started(self, ping: Any) -> None:
        """A replacement answered: idle and given work, or (it could not start) a failure."""
        import ray

        actor = self._starting.pop(ping)
        try:
            error = ray.get(ping)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
            error = f"worker died: {e}"
        if error:
            self._count_failure(f"a replacement could not start: {error}")  # bounded
            actor = self._new_actor()
            self._starting[actor.ping.remote()] = actor
            return
        self._idle.append(actor)
        self._dispatch()

    def _count_failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.failures >= self.max_failures:
            raise NASError(
                f"{self.what}: {self.failures} failed tasks reached the bound "
                f"(max_failures={self.max_failures}), giving up; last error: {error}"
            )
