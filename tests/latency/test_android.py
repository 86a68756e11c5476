"""The adb path, with a stand-in `adb` on PATH whose `shell … benchmark_model` runs the host LiteRT
benchmark and prints benchmark_model's documented output format."""

from __future__ import annotations

import os
import stat
import sys
import textwrap

import pytest

from nas.latency._android import AdbError, AdbTarget, parse_benchmark_output
from tests.conftest import REPO

SAMPLE_OLD = """\
STARTING!
Num threads: [1]
Running benchmark for at least 10 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=10 first=1450 curr=1203 min=1190 max=1450 avg=1235.5 std=71

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=1210 curr=1201 min=1185 max=1302 avg=1212.25 std=18

Inference timings in us: Init: 3456, First inference: 1450, Warmup (avg): 1235.5, Inference (avg): 1212.25
"""
SAMPLE_NEW = """\
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112
INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=6.37432e+04 std=60716 p5=49620 median=51891 p95=68628
INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
"""


def test_parser_takes_the_timed_block_not_the_warmup():
    e = parse_benchmark_output(SAMPLE_OLD)
    assert (e.mean, e.std, e.count) == (pytest.approx(1.21225), pytest.approx(0.018), 50)


def test_parser_prefers_the_median_and_reads_scientific_notation():
    e = parse_benchmark_output(SAMPLE_NEW)
    assert (e.mean, e.count) == (pytest.approx(51.891), 1000)


def test_parser_error_shows_the_output():
    with pytest.raises(AdbError, match="(?s)no timing line.*segfault"):
        parse_benchmark_output("segfault")


def test_benchmark_command_pins_threads_and_cores(tmp_path):
    t = AdbTarget(serial="R58M", benchmark_model=tmp_path / "bm", threads=1, cpu_mask="f0")
    cmd = t.benchmark_command("/data/local/tmp/nas/layer.tflite")
    assert cmd[:6] == ["adb", "-s", "R58M", "shell", "taskset", "f0"]
    assert (
        "--num_threads=1" in cmd
        and "--num_runs=50" in cmd
        and "--graph=/data/local/tmp/nas/layer.tflite" in cmd
    )
    with pytest.raises(ValueError, match="cpu_mask"):
        AdbTarget(serial="x", benchmark_model=tmp_path, cpu_mask="cores4-7")


FAKE_ADB = textwrap.dedent('''\
    #!{python}
    """Stand-in adb: a 'device' is a folder; benchmark_model runs the host LiteRT timer."""
    import shutil, sys, pathlib
    args = sys.argv[1:]
    assert args[0] == "-s", args
    dev = pathlib.Path({device!r}) / args[1]
    args = args[2:]
    def local(p): return dev / p.lstrip("/")
    if args[0] == "push":
        local(args[2]).parent.mkdir(parents=True, exist_ok=True); shutil.copy(args[1], local(args[2]))
    elif args[:2] == ["shell", "mkdir"] or args[:2] == ["shell", "chmod"]:
        local(args[-1]).mkdir(parents=True, exist_ok=True) if args[1] == "mkdir" else None
    elif args[:2] == ["shell", "taskset"]:
        binary = local(args[3]); assert binary.is_file(), "benchmark_model was not pushed"
        opts = dict(a[2:].split("=", 1) for a in args[4:])
        sys.path.insert(0, {repo!r})
        from nas.export import time_tflite
        e = time_tflite(str(local(opts["graph"])), threads=int(opts["num_threads"]), runs=int(opts["num_runs"]))
        us = e.mean * 1000
        print(f"count={{e.count}} first={{us:.0f}} curr={{us:.0f}} min={{us:.0f}} max={{us:.0f}} avg={{us:.2f}} std={{e.std * 1000:.0f}} p5={{us:.0f}} median={{us:.2f}} p95={{us:.0f}}")
        print(f"Inference timings in us: Init: 100, First inference: {{us:.0f}}, Warmup (avg): {{us:.0f}}, Inference (avg): {{us:.2f}}")
    else:
        sys.exit("fake adb: unsupported " + " ".join(args))
''')


@pytest.mark.slow
def test_calibrate_over_adb_with_a_stand_in_adb(tmp_path, monkeypatch):
    from nas.cli import main
    from nas.latency import build_latency
    from search_spaces import get_space

    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(
        FAKE_ADB.format(python=sys.executable, device=str(tmp_path / "phones"), repo=str(REPO))
    )
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    bm = tmp_path / "benchmark_model"
    bm.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    space = get_space("ofa_mbv3_small")
    # calibrate only the layers of the smallest subnet: restrict the catalogue for speed
    wanted, resolution = space.layers(space.smallest()), space.smallest().resolution
    monkeypatch.setattr(
        type(space),
        "all_layers",
        lambda self, r: [layer for layer in wanted if r == space.smallest().resolution],
    )
    out = tmp_path / "lut"
    rc = main(
        [
            "lut",
            "calibrate",
            "--space",
            "ofa_mbv3_small",
            "--resolution",
            str(resolution),
            "--device",
            "adb:FAKE01",
            "--benchmark-model",
            str(bm),
            "--out",
            str(out),
            "--device-name",
            "fakephone",
        ]
    )
    assert rc == 0
    assert (tmp_path / "phones" / "FAKE01" / "data/local/tmp/nas/benchmark_model").is_file()
    model = build_latency(out, space)
    assert model.device.name == "fakephone" and model.device.threads == 1
    assert model.predict(space.smallest()).ms > 0
    assert len(model.table(resolution)) == len({layer.key for layer in wanted})
