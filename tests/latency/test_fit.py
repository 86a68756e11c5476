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


def test_sources_of_two_kinds_are_refused_naming_each(capsys):
    sources = [str(LUTS / "pixel2"), str(LUTS / "host-x86-litert")]
    assert main(["lut", "fit", "--space", "nb201", "--sources", *sources, "--suggest", "3"]) == 2
    err = capsys.readouterr().err
    assert "pixel2 (arch_table)" in err and "host-x86-litert (layer_table)" in err


def test_a_host_setting_fitted_from_a_few_subnets_timed_here_predicts_others(tmp_path, capsys):
    """The real LiteRT path: 4 subnets timed here at 2 threads, a layer table fitted from the
    shipped fp32 1-thread table, then 2 other subnets timed here and predicted."""
    from nas.latency import LayerTableLatency, time_here
    from search_spaces import get_space

    out = tmp_path / "host-2-threads"
    argv = ["lut", "fit", "--space", "ofa_mbv3_small", "--device", "host", "--n", "4"]
    assert main([*argv, "--threads", "2", "--span-s", "0", "--out", str(out)]) == 0
    assert "from 4 timings" in capsys.readouterr().out

    device = load_device(out / "device.yaml")
    assert (device.kind, device.name, device.threads) == ("layer_table", "host-2-threads", 2)
    assert "4 whole-model timing(s)" in device.provenance and "host-x86-litert" in device.provenance
    assert set(device.overhead_ms) == {"fp32"}
    for resolution in get_space("ofa_mbv3_small").resolutions:
        source = load_table(LUTS / "host-x86-litert" / "ofa_mbv3_small" / f"{resolution}.yaml")
        table = load_table(out / "ofa_mbv3_small" / f"{resolution}.yaml")
        assert set(table.entries) == {k for k in source.entries if "-dtype:" not in k}
        assert {e.count for e in table.entries.values()} == {0}

    # the fit's accuracy, on timings taken together (this shared host's speed drifts by up to
    # 25% between minutes): 4 suggested subnets fitted through the CSV path, 2 others predicted
    space = get_space("ofa_mbv3_small")
    rng = np.random.default_rng(123)
    others = [space.sample(rng) for _ in range(2)]
    assert main(["lut", "fit", "--space", "ofa_mbv3_small", "--suggest", "4"]) == 0
    suggested = [space.parse(t) for t in capsys.readouterr().out.split()]
    measured = time_here(LUTS / "host-x86-litert", space, suggested + others, "fp32", 2, runs=50)
    timings = _write_csv(tmp_path / "t.csv", [(str(c), measured[str(c)]) for c in suggested])
    argv = ["lut", "fit", "--space", "ofa_mbv3_small", "--timings", str(timings), "--threads", "2"]
    assert main([*argv, "--out", str(tmp_path / "csv")]) == 0
    model = LayerTableLatency(
        tmp_path / "csv", space, dtype="fp32", device=load_device(tmp_path / "csv" / "device.yaml")
    )
    for config in others:
        assert model.predict(config).ms == pytest.approx(measured[str(config)], rel=0.25)


def test_a_layer_fit_names_a_config_the_space_cannot_read(tmp_path, capsys):
    timings = _write_csv(tmp_path / "t.csv", [("r99_nonsense", 1.0), ("a", 2.0), ("b", 3.0)])
    argv = ["lut", "fit", "--space", "ofa_mbv3_small", "--timings", str(timings)]
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert "'r99_nonsense' is not a ofa_mbv3_small config" in capsys.readouterr().err


def test_a_layer_fit_keeps_one_scale_until_it_has_the_timings_for_one_per_group():
    """Per-group scales need TIMINGS_PER_PARAMETER timings per parameter; with fewer, every group
    gets the single scale of the sums (with 10 noisy timings the groups' scales overfit)."""
    from nas.latency._fit import TIMINGS_PER_PARAMETER, _fit_scales

    rng = np.random.default_rng(0)
    truth, overhead = np.array([0.6, 1.0, 1.4, 2.0]), 0.05
    needed = TIMINGS_PER_PARAMETER * (len(truth) + 1)
    x = rng.uniform(0.01, 0.5, size=(needed + 10, len(truth)))
    y = overhead + x @ truth

    few_scales, few_overhead = _fit_scales(x[: needed - 1], y[: needed - 1])
    assert np.ptp(few_scales) == 0 and few_scales[0] > 0
    single, intercept = np.polyfit(x[: needed - 1].sum(axis=1), y[: needed - 1], 1)
    assert few_scales[0] == pytest.approx(single) and few_overhead == pytest.approx(intercept)

    scales, fitted_overhead = _fit_scales(x, y)  # exact timings: the groups are recovered
    assert scales == pytest.approx(truth, abs=0.05)
    assert fitted_overhead == pytest.approx(overhead, abs=0.01)
