"""A search spread over two Ray nodes: a head node on this host and a second node in a network
namespace of its own (its own address, joined over a veth pair), as a second machine would; the
second node killed mid-study."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from nas.spec import load_spec
from tests.search.test_search import PREDICTOR
from tests.search.test_storage import _complete, _fault_spec, driver, wait_until
from tests.servers import free_port

RAY = Path(sys.executable).parent / "ray"
pytestmark = pytest.mark.slow


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


class TwoNodes:
    """Head node at ``head_ip`` (this host's end of the veth pair), second node at ``node_ip``
    inside network namespace ``netns``; Ray's token authentication on, one token for all. The
    second node also has a mount namespace of its own, where each folder of ``hide`` is an
    empty one: it sees none of the driver's files there, as another machine would not."""

    def __init__(self, hide: tuple[Path, ...] = ()) -> None:
        n = os.getpid() % 200 + 20
        self.netns, self.veth = f"nas{os.getpid()}", f"vn{os.getpid()}"
        self.head_ip, self.node_ip = f"10.213.{n}.1", f"10.213.{n}.2"
        self.port = free_port()
        self.temp = Path("/tmp") / f"r{os.getpid()}"  # short: Ray's socket paths are limited
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
        }
        self.env.pop("RAY_ADDRESS", None)
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", f"{self.veth}h", "type", "veth", "peer", "name", f"{self.veth}n")
        _run("ip", "link", "set", f"{self.veth}n", "netns", self.netns)
        _run("ip", "addr", "add", f"{self.head_ip}/24", "dev", f"{self.veth}h")
        _run("ip", "link", "set", f"{self.veth}h", "up")
        inside = ("ip", "netns", "exec", self.netns)
        _run(*inside, "ip", "addr", "add", f"{self.node_ip}/24", "dev", f"{self.veth}n")
        _run(*inside, "ip", "link", "set", f"{self.veth}n", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        common = ["--num-cpus=2", "--disable-usage-stats"]
        _run(
            str(RAY), "start", "--head", f"--node-ip-address={self.head_ip}",
            f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp}h",
            *common, env=self.env, timeout=180,
        )  # fmt: skip
        join = [
            str(RAY), "start", f"--address={self.head_ip}:{self.port}",
            f"--node-ip-address={self.node_ip}", f"--temp-dir={self.temp}n", *common,
        ]  # fmt: skip
        mounts = "".join(f"mount -t tmpfs nas-hidden {shlex.quote(str(d))} && " for d in hide)
        _run(
            *inside, "unshare", "--mount", "--propagation", "private", "sh", "-c",
            f"{mounts}exec {shlex.join(join)}", env=self.env, timeout=180,
        )  # fmt: skip

    @property
    def address(self) -> str:
        return f"{self.head_ip}:{self.port}"

    def sees(self, path: Path) -> tuple[bool, bool]:
        """Whether ``path`` exists for this host and for the second node's processes."""
        pids = _run("ip", "netns", "pids", self.netns).stdout.split()
        assert pids, "the second node has no process"
        return path.exists(), any(Path(f"/proc/{pid}/root{path}").exists() for pid in pids)

    def kill_second_node(self) -> None:
        """SIGKILL every process of the second node (all of them live in its namespace)."""
        pids = _run("ip", "netns", "pids", self.netns).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        self.kill_second_node()
        subprocess.run(  # this cluster's head only: `ray stop` would stop every Ray here
            ["pkill", "-9", "-f", f"{self.temp}h"], capture_output=True
        )
        subprocess.run(["pkill", "-9", "-f", f"{self.head_ip}:{self.port}"], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{self.veth}h"], capture_output=True)
        for suffix in ("h", "n"):
            shutil.rmtree(f"{self.temp}{suffix}", ignore_errors=True)


@pytest.fixture
def two_nodes(tmp_path):
    """Two nodes; the second one sees none of the test's files (``tmp_path``: the spec, the
    predictor it names, the runs folder)."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("network and mount namespaces need root, iproute2 and unshare")
    cluster = TwoNodes(hide=(tmp_path,))
    yield cluster
    cluster.close()


def test_a_search_spreads_over_two_nodes_and_survives_losing_one(tmp_path, postgres, two_nodes):
    """Four workers over two nodes of two CPUs, the second one without the driver's files (the
    predictor reaches its workers through Ray); the second node SIGKILLed mid-study: its trials
    are evaluated again on the head node and the study reaches its budget, with no trial lost
    or evaluated twice. Trials per minute on two nodes and on the one left are printed."""
    spec_path = _fault_spec(tmp_path, postgres, "two_nodes", trials=400, workers=4)
    predictor = tmp_path / "predictor.pth"  # a file of the driver's machine only
    shutil.copy(PREDICTOR, predictor)
    data = yaml.safe_load(spec_path.read_text())
    data["evaluator"]["predictor"] = str(predictor)
    spec_path.write_text(yaml.safe_dump(data))
    spec = load_spec(spec_path)
    assert spec.evaluator.predictor == str(predictor)
    assert two_nodes.sees(predictor) == (True, False)  # the head node has it, the second not
    env = {
        **two_nodes.env,
        "RAY_ADDRESS": two_nodes.address,
        "NAS_INJECT_FAULTS": "slow_ms=150",
        "NAS_RUNS_DIR": str(tmp_path / "runs"),
    }
    ips = {two_nodes.head_ip, two_nodes.node_ip}
    with driver(spec_path, "--no-mlflow", env=env) as proc:
        both = wait_until(
            spec,
            proc,
            lambda trials: len(trials) >= 60 and ips <= {t.user_attrs.get("node") for t in trials},
        )
        two_nodes.kill_second_node()
        killed_at = time.time()
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "died" in err  # the workers of the lost node, replaced or dropped, said so

    trials = _complete(spec)
    assert len(trials) == 400 and len(trials) > len(both) >= 60
    on = {
        ip: [t for t in both if t.user_attrs.get("node") == ip]
        for ip in (two_nodes.head_ip, two_nodes.node_ip)
    }
    assert all(on.values()), {ip: len(ts) for ip, ts in on.items()}  # spread over both nodes
    after = [t for t in trials if t.datetime_complete.timestamp() > killed_at + 5]
    # (a repeat of a subnet is answered from the study: no node evaluated it)
    assert after and {t.user_attrs["node"] for t in after if "node" in t.user_attrs} == {
        two_nodes.head_ip
    }
    evaluated = [t.user_attrs["config"] for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(evaluated) == len(set(evaluated))  # none evaluated twice

    def per_minute(ts: list[optuna.trial.FrozenTrial]) -> float:
        ts = sorted(ts, key=lambda t: t.datetime_complete)
        span = (ts[-1].datetime_complete - ts[0].datetime_complete).total_seconds()
        return 60 * (len(ts) - 1) / span

    print(
        f"\ntrials/min: two nodes {per_minute(both):.0f}, "
        f"the head node alone after the loss {per_minute(after):.0f}"
    )
