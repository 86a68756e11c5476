"""The actor pool's one failure policy, on a real embedded Ray with a tiny actor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nas.errors import NASError
from nas.pool import ActorPool


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


class Squarer:
    """Squares numbers; ``die_on`` kills its process once (marker file), ``fail_on`` raises."""

    def __init__(self, marker: str, die_on: int = -1, fail_on: int = -1, slow: float = 0) -> None:
        self.marker, self.die_on, self.fail_on = Path(marker), die_on, fail_on
        if self.marker.exists():  # a replacement: starts slowly (a node being provisioned)
            import time

            time.sleep(slow)

    def ping(self) -> str | None:
        return None

    def square(self, x: int) -> tuple[int, int]:
        if x == self.die_on:
            try:
                self.marker.open("x").close()
                os._exit(137)
            except FileExistsError:
                pass
        if x == self.fail_on:
            raise ZeroDivisionError(f"cannot square {x}")
        return x * x, os.getpid()


def _pool(ray, tmp_path, **kw) -> ActorPool:
    args = (str(tmp_path / "died"), kw.pop("die_on", -1), kw.pop("fail_on", -1), kw.pop("slow", 0))
    cls = ray.remote(num_cpus=0)(Squarer)
    return ActorPool(cls, args, size=2, what="a squarer", **kw)


def test_every_result_arrives_once_with_its_item(ray_cluster, tmp_path):
    with _pool(ray_cluster, tmp_path, max_failures=3) as pool:
        for x in range(10):
            pool.submit(x, "square", x)
        done = list(pool.as_completed())
    assert sorted(c.item for c in done) == list(range(10))
    assert all(c.ok and c.value[0] == c.item**2 for c in done)
    assert len({c.value[1] for c in done}) == 2  # both workers took work


def test_a_dead_worker_is_replaced_and_its_item_run_again(ray_cluster, tmp_path):
    with _pool(ray_cluster, tmp_path, die_on=3, max_failures=3) as pool:
        for x in range(6):
            pool.submit(x, "square", x)
        done = {c.item: c for c in pool.as_completed()}
        assert pool.failures == 1
    assert (tmp_path / "died").is_file()  # a worker process really exited
    assert sorted(done) == list(range(6)) and all(c.ok for c in done.values())
    assert done[3].value[0] == 9
    assert len(done[3].worker_deaths) == 1 and done[3].worker_deaths[0].startswith("worker died")


def test_a_replacement_gets_work_only_once_it_has_started(ray_cluster, tmp_path):
    """A replacement that Ray cannot start yet (here: 60 s to start; on a cluster: no room once
    a node is lost) is never given the task; the live worker runs it and the rest."""
    import time

    start = time.monotonic()
    with _pool(ray_cluster, tmp_path, die_on=3, slow=60, max_failures=3) as pool:
        for x in range(8):
            pool.submit(x, "square", x)
        done = {c.item: c for c in pool.as_completed()}
    assert time.monotonic() - start < 45  # nobody waited for the replacement
    assert sorted(done) == list(range(8)) and all(c.ok for c in done.values())
    assert len(done[3].worker_deaths) == 1
    survivors = {c.value[1] for c in done.values()}
    assert len(survivors) == 2  # the worker that died (before 3) and the live one: no third


def test_a_raising_task_is_a_failed_completion_and_the_pool_goes_on(ray_cluster, tmp_path):
    with _pool(ray_cluster, tmp_path, fail_on=2, max_failures=3) as pool:
        for x in range(5):
            pool.submit(x, "square", x)
        done = {c.item: c for c in pool.as_completed()}
    assert not done[2].ok and "ZeroDivisionError: cannot square 2" in done[2].error
    assert all(done[x].ok for x in (0, 1, 3, 4))


def test_reaching_the_failure_bound_raises_one_error_naming_the_last_failure(ray_cluster, tmp_path):
    with _pool(ray_cluster, tmp_path, fail_on=7, max_failures=2) as pool:
        for _ in range(4):
            pool.submit(7, "square", 7)
        with pytest.raises(NASError, match=r"max_failures=2.*ZeroDivisionError: cannot square 7"):
            list(pool.as_completed())


def test_close_kills_every_actor(ray_cluster, tmp_path):
    pool = _pool(ray_cluster, tmp_path, max_failures=1)
    actors = list(pool._all)
    pool.close()
    # ray.kill is asynchronous: a call sent at once may still be answered; within 30 s, none is
    import time

    deadline = time.monotonic() + 30
    with pytest.raises(ray_cluster.exceptions.RayActorError):
        while time.monotonic() < deadline:
            ray_cluster.get(actors[0].ping.remote(), timeout=30)
            time.sleep(0.2)


def test_sizes_and_bounds_below_one_are_rejected(ray_cluster):
    with pytest.raises(ValueError, match="size >= 1"):
        ActorPool(object, size=0, max_failures=1)
    with pytest.raises(ValueError, match="max_failures >= 1"):
        ActorPool(object, size=1, max_failures=0)
