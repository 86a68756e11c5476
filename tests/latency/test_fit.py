"""``nas lut fit``: a new device's arch table from a few timings, through the CLI, on the shipped
HELP NAS-Bench-201 tables (pixel3 plays the new device; its own table gives the "timings" and the
truth on every architecture the fit did not see)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.stats import spearmanr

from nas.cli import main
from nas.latency import load_device, load_table, read_timings
from nas.paths import assets_root

LUTS = assets_root() / "latency_luts"
OTHERS = ("pixel2", "samsung_a50", "samsung_s7", "essential_ph_1", "raspi4")


@pytest.fixture(scope="module")
def pixel3():
    return load_table(LUTS / "pixel3" / "nb201" / "arch.yaml.gz")


def _write_csv(path, rows):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config", "ms"])
        w.writerows(rows)
    return path


def test_suggest_then_fit_writes_a_table_that_ranks_untimed_architectures(tmp_path, capsys, pixel3):
    sources = [str(LUTS / d) for d in OTHERS]
    assert main(["lut", "fit", "--space", "nb201", "--sources", *sources, "--suggest", "10"]) == 0
    suggested = capsys.readouterr().out.split()
    assert len(suggested) == len(set(suggested)) == 10
    assert all(c in pixel3.entries for c in suggested)

    timings = _write_csv(tmp_path / "t.csv", [(c, pixel3.mean(c)) for c in suggested])
    out = tmp_path / "my_phone"
    argv = ["lut", "fit", "--space", "nb201", "--sources", *sources, "--timings", str(timings)]
    assert main([*argv, "--out", str(out), "--soc", "Snapdragon 845"]) == 0
    said = capsys.readouterr().out
    assert "from 10 timings and 5 sources" in said and "held-out MAPE" in said

    device = load_device(out / "device.yaml")
    assert (device.kind, device.name, device.soc) == ("arch_table", "my_phone", "Snapdragon 845")
    assert "10 whole-model timing(s)" in device.provenance
    assert all(d in device.provenance for d in OTHERS)
    fitted = load_table(out / "nb201" / "arch.yaml.gz")
    assert len(fitted.entries) == len(pixel3.entries) == 15625
    assert {e.count for e in fitted.entries.values()} == {0}
    untimed = sorted(set(pixel3.entries) - set(suggested))
    truth = np.array([pixel3.mean(c) for c in untimed])
    guess = np.array([fitted.mean(c) for c in untimed])
    assert spearmanr(truth, guess).statistic > 0.9
    assert np.median(np.abs(guess / truth - 1)) < 0.2


def test_bad_timings_are_named_by_file_and_line(tmp_path, capsys):
    sources = ["--sources", str(LUTS / "pixel2"), str(LUTS / "raspi4")]
    bad = _write_csv(tmp_path / "bad.csv", [("a", "1.5"), ("b", "fast")])
    with pytest.raises(Exception, match=r"bad\.csv:3: ms must be a number, got 'fast'"):
        read_timings(bad)
    rc = main(["lut", "fit", "--space", "nb201", *sources, "--timings", str(bad), "--out", "x"])
    assert rc == 2 and "bad.csv:3" in capsys.readouterr().err

    unknown = _write_csv(tmp_path / "unknown.csv", [("not|an|arch", "3.0")] * 1)
    rc = main(["lut", "fit", "--space", "nb201", *sources, "--timings", str(unknown), "--out", "x"])
    assert rc == 2 and "'not|an|arch'" in capsys.readouterr().err


def test_a_per_layer_table_is_not_a_source(capsys):
    host = str(LUTS / "host-x86-litert")
    assert main(["lut", "fit", "--space", "nb201", "--sources", host, "--suggest", "3"]) == 2
    err = capsys.readouterr().err
    assert "host-x86-litert" in err and "not an arch_table" in err
