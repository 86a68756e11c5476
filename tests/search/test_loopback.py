"""A Ray that nas starts (no ``RAY_ADDRESS``) listens on 127.0.0.1 only: its GCS, raylet,
workers, agents and metrics ports, as ``ss`` lists them."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess

import pytest

from nas.cluster import LOOPBACK_ENV, init_ray

pytestmark = pytest.mark.slow


def _parent(pid: int) -> int:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _mine(pid: int) -> bool:
    """``pid`` is this process or one of its descendants."""
    while pid > 1:
        if pid == os.getpid():
            return True
        pid = _parent(pid)
    return False


def _listening() -> list[tuple[str, str]]:
    """(local address, process) of every TCP/UDP socket listening in this process's tree."""
    out = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[4]
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line):
            if _mine(int(pid)):
                found.append((local, name))
    return found


def _loopback(local: str) -> bool:
    host = local.rsplit(":", 1)[0].strip("[]")
    if host.startswith("::ffff:"):
        host = host[len("::ffff:") :]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", "0.0.0.0" read as an address elsewhere
        return False


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss")
def test_an_embedded_ray_listens_on_loopback_only(monkeypatch):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    ray.shutdown()
    try:
        assert init_ray(2)

        @ray.remote(num_cpus=1)
        class Echo:
            def node(self) -> str:
                return ray.util.get_node_ip_address()

        actor = Echo.remote()  # a worker process, started after init
        assert ray.get(actor.node.remote()) == "127.0.0.1"
        assert ray.get(ray.remote(lambda: 42).remote()) == 42
        sockets = _listening()
        names = {name for _, name in sockets}
        assert {"gcs_server", "raylet"} <= names, sockets
        exposed = [(local, name) for local, name in sockets if not _loopback(local)]
        assert not exposed, exposed
        # the switch is not left set for what this process starts or joins later
        assert LOOPBACK_ENV not in os.environ
    finally:
        ray.shutdown()
