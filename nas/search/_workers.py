"""The Ray actor: holds one evaluator (supernet + data, or a predictor) and scores configs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

__all__ = [
    "FAULTS_ENV",
    "EvaluatorWorker",
    "InjectedFault",
    "make_worker_class",
    "parse_faults",
]

#: fault injection for resilience tests and drills, e.g. ``raise_every=4,die_once=/tmp/died``:
#: every 4th evaluation of a worker raises InjectedFault; the first evaluation to find
#: ``/tmp/died`` absent creates it and kills its worker process (as an OOM kill would);
#: ``slow_ms=200``: every evaluation takes 200 ms more (a study that lasts, for a drill)
FAULTS_ENV = "NAS_INJECT_FAULTS"


class InjectedFault(RuntimeError):
    pass


def parse_faults(text: str) -> dict[str, str]:
    """The faults ``NAS_INJECT_FAULTS`` asks for (checked by the driver before Ray starts).

    Raises:
        SpecError: an unknown fault, or ``raise_every`` not an integer >= 1 (named).
    """
    from nas.errors import SpecError

    faults = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = item.partition("=")
        if key not in ("raise_every", "die_once", "slow_ms") or not value:
            raise SpecError(
                f"{FAULTS_ENV}: unknown fault {item!r} (raise_every=N, die_once=FILE, slow_ms=N)"
            )
        if key in ("raise_every", "slow_ms") and not (value.isdigit() and int(value) >= 1):
            raise SpecError(f"{FAULTS_ENV}: {key}={value!r} must be an integer >= 1")
        faults[key] = value
    return faults


def _node_address() -> str:
    """The address of the Ray node this worker runs on (its hostname outside Ray)."""
    import socket

    try:
        import ray

        return ray.util.get_node_ip_address() if ray.is_initialized() else socket.gethostname()
    except Exception:
        return socket.gethostname()


class EvaluatorWorker:
    """Stateless with respect to the study: the driver sends config strings, gets metrics back.
    ``inputs``: what the evaluator's ``load_inputs`` read in the driver (Ray resolves the object
    reference the driver passes), so that the worker reads no file of the driver's machine."""

    def __init__(
        self, spec_dict: dict[str, Any], threads: int, inputs: dict[str, Any] | None = None
    ) -> None:
        import torch

        import nas  # noqa: F401  (torchvision/ofa import trap inside the worker process)
        from nas.errors import NASError, first_line
        from nas.search._evaluators import build_evaluator
        from nas.spec import spec_from_dict

        torch.set_num_threads(threads)
        self.faults = parse_faults(os.environ.get(FAULTS_ENV, ""))
        self.calls = 0
        self.node = _node_address()
        self.error: str | None = None
        try:
            self.evaluator = build_evaluator(spec_from_dict(spec_dict), inputs)
        except NASError as e:  # reported by ping(): one clear message, not a remote traceback
            self.error = str(e)
        except Exception as e:  # a broken node or input: one line too
            self.error = f"{type(e).__name__}: {first_line(e)}"

    def evaluate(self, config_text: str) -> dict[str, float]:
        self.calls += 1
        if "die_once" in self.faults:
            marker = Path(self.faults["die_once"])
            try:
                marker.open("x").close()  # exactly one evaluation, across processes, gets here
                os._exit(137)
            except FileExistsError:
                pass
        every = int(self.faults.get("raise_every", 0))
        if every and self.calls % every == 0:
            raise InjectedFault(f"injected fault on evaluation {self.calls} of {config_text}")
        start = time.perf_counter()
        if "slow_ms" in self.faults:
            time.sleep(int(self.faults["slow_ms"]) / 1000)
        config = self.evaluator.space.parse(config_text)
        accuracy = self.evaluator.accuracy(config)
        return {
            "accuracy": accuracy,
            "eval_seconds": time.perf_counter() - start,
            "node": self.node,
        }

    def ping(self) -> str | None:
        """None when the evaluator is ready, else why it could not be built."""
        return self.error


def make_worker_class(threads: int):
    """The Ray actor class; ``NAS_INJECT_FAULTS`` of the driver travels to the workers (also on a
    cluster, whose processes do not share the driver's environment)."""
    import ray

    options: dict[str, Any] = {"num_cpus": threads}
    if os.environ.get(FAULTS_ENV):
        parse_faults(os.environ[FAULTS_ENV])  # a typo fails here, in the driver
        options["runtime_env"] = {"env_vars": {FAULTS_ENV: os.environ[FAULTS_ENV]}}
    return ray.remote(**options)(EvaluatorWorker)
