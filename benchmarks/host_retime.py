"""A host table on another machine (issue 16): what the automatic check and re-timing cost.

    .venv/bin/python benchmarks/host_retime.py [--lut latency_luts/host-x86-litert] \
        [--space ofa_mbv3_small]

1. ``build_latency`` on the table as a job starts it, with this machine's earlier re-timing of
   it removed but the converted files kept (``<cache>/layers``, ``<cache>/subnets``): the check,
   then, when the table was timed on another machine, the whole re-timing with its whole-model
   fit. Prints the seconds (and those of a first re-timing, when there was none yet).
2. The check alone on the machine that timed a table: this machine's re-timing copied as a table
   folder of its own (a user's calibrated host table); must not re-time, and costs what?
   ``--checks N`` repeats it N times, each in a fresh process (how often a slow spell of a
   shared host outlasts the check's budget and would re-time needlessly).
3. The same job start a second time (the re-timing is known): seconds.

Then validate the table the job prices with, end to end on 50 random subnets:
``nas lut validate --lut latency_luts/host-x86-litert --space ofa_mbv3_small --n 50``.
Run with nothing else on the machine: the check compares timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _in_fresh_process(code: str) -> dict:
    """Run ``code`` (which prints one JSON line last) in a new interpreter: no memo carries."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


_START = """
import json, time, logging
import nas
from nas.paths import resolve
from nas.latency import build_latency
from search_spaces import get_space
logging.basicConfig(level=logging.WARNING)
space = get_space({space!r})
lut = resolve({lut!r})
start = time.perf_counter()
model = build_latency(lut, space, dtype="fp32")
print(json.dumps({{"seconds": time.perf_counter() - start, "priced_with": str(model.lut_dir),
                  "retimed": model.lut_dir != lut}}))
"""

_CHECK = """
import json
import nas
from nas.latency._host import check_host
from nas.latency._table import load_device, load_table
from pathlib import Path
from search_spaces import get_space
lut = Path({lut!r})
table = load_table(sorted((lut / {space!r}).glob("*.yaml"))[-1])
check = check_host(load_device(lut / "device.yaml"), table, get_space({space!r}))
print(json.dumps({{"ratio": check.ratio, "same_machine": check.same_machine,
                  "seconds": check.seconds}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lut", default="latency_luts/host-x86-litert")
    parser.add_argument("--space", default="ofa_mbv3_small")
    parser.add_argument("--checks", type=int, default=1, help="repeat the check N times")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from nas.latency._host import HostFingerprint, _retiming_dir
    from nas.paths import resolve

    lut = resolve(args.lut)
    here = HostFingerprint.here()
    local = _retiming_dir(lut, here)
    start = _START.format(space=args.space, lut=str(lut))
    report: dict = {"machine": here.describe(), "load_1min_before": os.getloadavg()[0]}
    if not local.is_dir():  # converts what is not cached yet (layers, the fit's subnets)
        report["first_retiming"] = _in_fresh_process(start)
    shutil.rmtree(local, ignore_errors=True)
    report["retiming_with_cached_files"] = _in_fresh_process(start)
    report["next_job_start"] = _in_fresh_process(start)
    if local.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            own = Path(tmp) / lut.name
            shutil.copytree(local, own)
            checks = []
            for _ in range(max(1, args.checks)):
                began = time.perf_counter()
                checks.append(_in_fresh_process(_CHECK.format(space=args.space, lut=str(own))))
                checks[-1]["process_seconds"] = time.perf_counter() - began
            report["check_on_calibrating_machine"] = checks[0]
            if len(checks) > 1:
                seconds = sorted(c["seconds"] for c in checks)
                report["checks_on_calibrating_machine"] = {
                    "n": len(checks),
                    "same_machine": sum(c["same_machine"] for c in checks),
                    "median_seconds": seconds[len(seconds) // 2],
                    "max_seconds": seconds[-1],
                    "ratios": sorted(round(c["ratio"], 3) for c in checks),
                }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
