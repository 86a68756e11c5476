"""What a user sees in the terminal: a real `nas search` with export, run as a user runs it (a
subprocess), prints one progress bar, its results and nothing from the libraries underneath."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from nas._compat import _ENV
from nas.cli import main
from nas.paths import assets_root
from tests.conftest import REPO, tiny_spec_dict

HOST_LUT = assets_root() / "latency_luts" / "host-x86-litert"

#: absl/glog (``I0000 00:00:1795445574.397942 6942 port.cc:153] ...``) and what TF/LiteRT print
_NATIVE = re.compile(
    r"^\w\d{4} |\w\d{4} \d\d:\d\d:\d+\.\d+ "
    r"|cuInit|absl::|oneDNN|XNNPACK|cuda drivers|fully_quantize"
)
#: one state of the progress bar, ``100%|██████████| 3/3 [02:13<00:00, 44.56s/trial, hv=0.9511]``
_BAR = re.compile(r"\d+%\|[^|]*\| \d+/\d+ \[[^\]]*\]")
#: a library's log line (``2026/11/23 14:48:58 INFO mlflow...``, ``2026-11-23 14:49:00,748 ...``)
_TIMESTAMPED = re.compile(r"^\d{4}[-/]\d\d[-/]\d\d[ T]\d\d:\d\d")


@pytest.fixture(scope="module")
def supernet_spec(small_fmnist, tmp_path_factory):
    """A tiny trained supernet and a search spec over it (both devices, one exported model each)."""
    out = tmp_path_factory.mktemp("terminal")
    data = tiny_spec_dict(small_fmnist, out, phases=[{"name": "full", "epochs": 1, "lr": 0.1}])
    path = out / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["train-supernet", str(path), "--quiet", "--no-mlflow"]) == 0
    data.update(
        evaluator={"kind": "supernet", "val_images": 100},
        devices=[{"lut": str(HOST_LUT)}, {"lut": str(HOST_LUT), "dtype": "int8"}],
        search={"sampler": "random", "trials": 3, "workers": 1},
        export={"k": 1},
    )
    return data, out


def _run_nas(*argv: str, **environ: str) -> str:
    """``nas ARGV`` in a fresh interpreter, stdout and stderr together as a terminal shows them.
    The variables nas._compat sets are removed, so the child has to set them up itself;
    ``environ`` adds variables."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV} | environ
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def _write(data: dict, folder, name: str):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**data, "name": name}))
    return path


@pytest.mark.slow
def test_search_with_export_prints_one_bar_and_the_results_only(supernet_spec):
    data, folder = supernet_spec
    # a machine's first job: its layer files (the tables' reference layers) converted here too
    output = _run_nas("search", str(_write(data, folder, "term")), NAS_CACHE_DIR=str(folder / "c"))

    # what tqdm draws is separated by \r; every other line is a line of text
    segments = [s.strip() for s in re.split(r"[\r\n]", output) if s.strip()]
    bars = [s for s in segments if _BAR.fullmatch(s)]
    lines = [s for s in segments if not _BAR.fullmatch(s)]
    assert bars, output
    noisy = [
        s
        for s in lines
        if _NATIVE.search(s)
        or _TIMESTAMPED.match(s)
        or re.search(r"Warning|WARNING", s)
        or re.match(r"(warning|error): (?!nas[.:])", s)  # a library's logger, not nas's
        or re.search(r"Downloading artifacts|Created version|Registered model", s)
    ]
    assert noisy == [], output
    assert len(bars) == len(set(bars)), output  # each state of the bar drawn once
    assert "DEBUG" not in output, output
    # each state of the bar drawn once (tqdm's closing redraw of the final state aside)
    drawn = bars[:-1]
    assert len(drawn) == len(set(drawn)), output
    assert any(s.startswith("3 trials complete") for s in lines), output
    assert any(s.startswith("registered term-host-x86-litert-int8") for s in lines), output


@pytest.mark.slow
def test_verbose_flag_shows_debug_logs(supernet_spec):
    data, folder = supernet_spec
    spec = _write(data, folder, "loud")
    output = _run_nas("-v", "search", str(spec), "--trials", "1", "--no-export", "--no-mlflow")
    assert re.search(r"^\S+ \S+ DEBUG nas[.:]", output, re.M), output


def test_native_runtime_lines_go_to_the_debug_logger_and_other_output_stays(capfd, caplog):
    """LiteRT's, TensorFlow's and ExecuTorch's native lines (``[threadpool.cpp:66] ...``) leave
    the terminal for ``nas.native`` at DEBUG; anything else written meanwhile is kept."""
    import logging
    import os

    from nas._compat import native_logs

    with caplog.at_level(logging.DEBUG, logger="nas.native"), native_logs():
        os.write(2, b"[threadpool.cpp:66] Resetting threadpool to 1 threads.\n")
        os.write(2, b"[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version\n")
        os.write(2, b"a line of the user's own\n")
    err = capfd.readouterr().err
    assert "Resetting" not in err and "cpuinfo" not in err and "a line of the user's own" in err
    assert "Resetting threadpool" in caplog.text
