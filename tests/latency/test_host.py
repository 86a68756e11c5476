"""Host tables know the machine that timed them: a table timed elsewhere is re-timed here on first
use and kept per machine under the cache folder; a phone's table is never re-timed."""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import time

import numpy as np
import pytest
import yaml

from nas.latency import LayerTableLatency, build_latency, load_device, load_table, write_table
from nas.latency._host import (
    _CHECKED,
    HostCheck,
    HostFingerprint,
    layer_from_key,
    reference_keys,
)
from nas.paths import assets_root
from search_spaces import get_space

HOST = assets_root() / "latency_luts" / "host-x86-litert"
NOTE10 = assets_root() / "latency_luts" / "note10"


def test_every_layer_key_of_the_space_parses_back_to_its_layer():
    space = get_space("ofa_mbv3_small")
    for resolution in space.resolutions:
        for layer in space.all_layers(resolution):
            assert layer_from_key(layer.key) == layer


def test_reference_keys_are_fixed_fp32_keys_spread_over_the_table():
    table = load_table(HOST / "ofa_mbv3_small" / "28.yaml")
    keys = reference_keys(table)
    assert keys == reference_keys(table) and len(set(keys)) == 4
    assert all("-dtype:" not in k for k in keys)
    means = [table.mean(k) for k in keys]
    assert means == sorted(means) and means[0] < means[-1]


@pytest.mark.parametrize(
    ("cpu", "ratio", "same"),
    [
        ("AMD EPYC", 1.05, True),
        ("AMD EPYC", 0.93, True),
        ("AMD EPYC", 1.3, False),
        ("AMD EPYC", 0.5, False),
        ("Intel Xeon", 1.0, False),
    ],
)
def test_another_cpu_or_reference_timings_off_by_over_10pct_is_another_machine(cpu, ratio, same):
    here = HostFingerprint(cpu="AMD EPYC", cores=2, flags_sha="x", runtime_version="r")
    check = HostCheck(fingerprint=here, table_cpu=cpu, ratio=ratio, seconds=0.1)
    assert check.same_machine is same


@pytest.mark.parametrize(
    ("speeds", "attempts", "ratio", "table_cpu"),
    [
        ([1.0], 1, 1.0, "here"),  # the machine that timed the table: settled by the first attempt
        ([1.35, 1.3, 1.02, 1.4], 3, 1.02, "here"),  # a slow spell, then the undisturbed speed
        ([2.0, 0.6, 2.0], 2, 0.6, "here"),  # faster than the table: nothing slows it to "same"
        ([2.0] * 1000, None, 2.0, "here"),  # same CPU, other timings: until the budget is spent
        ([2.0] * 1000, 1, 2.0, "Other CPU"),  # another CPU model: settled by the first attempt
    ],
)
def test_the_check_retries_a_slow_spell_and_keeps_the_fastest_attempt(
    monkeypatch, speeds, attempts, ratio, table_cpu
):
    """Noise only makes a machine slower: the fastest attempt counts, attempts stop as soon as
    one is within 10% (or faster), and a machine of the table's CPU model that stays slower
    spends ``budget_s``; another CPU model needs no second attempt."""
    import nas.export._litert as litert
    import nas.latency._calibrate as calibrate
    from nas.export import Timing
    from nas.latency._host import check_host

    table = load_table(HOST / "ofa_mbv3_small" / "28.yaml")
    keys = reference_keys(table)
    speed = iter(speeds)
    calls = []

    def timed(files, **kwargs):
        calls.append(kwargs)
        s = next(speed)
        return [Timing(mean=table.mean(k) * s, std=0.0, count=200) for k in keys]

    monkeypatch.setattr(calibrate, "layer_file", lambda *a: b"")
    monkeypatch.setattr(litert, "time_round_robin", timed)  # what Reference.ratio times with
    here = HostFingerprint.here().cpu
    device = dataclasses.replace(
        load_device(HOST / "device.yaml"), soc=here if table_cpu == "here" else table_cpu
    )
    budget = 5.0 if attempts else 0.3  # attempts are 0.25 s apart
    check = check_host(device, table, get_space("ofa_mbv3_small"), budget_s=budget)
    assert check.ratio == pytest.approx(ratio)
    if attempts is not None:
        assert len(calls) == attempts
    else:
        assert 2 <= len(calls) <= 3 and check.seconds > 0.3
    assert all(c["rounds"] == 20 for c in calls)


@pytest.fixture(autouse=True)
def _retime_on(monkeypatch):
    monkeypatch.setenv("NAS_HOST_RETIME", "auto")


def test_retiming_can_be_turned_off_and_a_bad_value_is_named(monkeypatch, tmp_path):
    from nas.errors import SpecError

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NAS_HOST_RETIME", "off")
    assert build_latency(HOST, get_space("ofa_mbv3_small")).lut_dir == HOST
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv("NAS_HOST_RETIME", "sometimes")
    with pytest.raises(SpecError, match="NAS_HOST_RETIME"):
        build_latency(HOST, get_space("ofa_mbv3_small"))


def test_a_phone_table_is_never_retimed(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    predictor = build_latency(NOTE10, get_space("ofa_mbv3"))
    assert predictor.lut_dir == NOTE10 and not (tmp_path / "cache").exists()


#: the smallest subnet at 24 px (a table file of its own: 24.yaml)
SMALL_24 = "r24_k33e33_k33e33_k33e33_k33e33"


def _five_times_too_fast(tmp_path, space):
    """A host table folder holding the shipped entries of the smallest subnet at 24 px, made
    5x too fast: (folder, its entries)."""
    lut = tmp_path / "host-x86-litert"
    (lut / "ofa_mbv3_small").mkdir(parents=True)
    shutil.copy(HOST / "device.yaml", lut / "device.yaml")
    keys = [x.key for x in space.layers(space.parse(SMALL_24))]
    shipped = load_table(HOST / "ofa_mbv3_small" / "24.yaml")
    fast = {k: type(e)(e.mean / 5, e.std, e.count) for k, e in shipped.entries.items() if k in keys}
    write_table(lut / "ofa_mbv3_small" / "24.yaml", fast)
    return lut, fast


@pytest.mark.slow
def test_a_retiming_on_a_machine_busier_than_its_cores_prices_one_job_and_is_not_kept(
    monkeypatch, tmp_path, caplog
):
    """Real busy loops, one more than the cores, while a table is re-timed: the timing waits
    for a CPU, so that re-timing prices the job at hand (a ``.busy`` folder) and is not kept;
    once the loops stop, the next job re-times it for good."""
    import subprocess
    import sys

    import nas.latency._host as host

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(host, "machine_busy", lambda: False)  # the 1-minute load lags anyway
    monkeypatch.setattr(host, "RETIME_SPAN_S", 2.0)
    space = get_space("ofa_mbv3_small")
    lut, _ = _five_times_too_fast(tmp_path, space)
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range((os.cpu_count() or 1) + 1)
    ]
    try:
        _CHECKED.clear()
        with caplog.at_level("WARNING", logger="nas.latency._host"):
            busy = build_latency(lut, space).lut_dir
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    assert busy.name.endswith(".busy") and (busy / "device.yaml").is_file()
    assert "the machine was busy while host-x86-litert was re-timed" in caplog.text
    assert host._known_retiming(lut) is None  # not kept for later jobs

    _CHECKED.clear()  # the next job, on the machine now quiet: re-timed and kept
    kept = build_latency(lut, space).lut_dir
    assert kept == busy.with_name(busy.name.removesuffix(".busy"))
    assert host._known_retiming(lut) == kept


def test_cpu_watch_counts_the_time_a_thread_waited_for_a_cpu():
    """``CpuWatch``: the scheduler's run-queue wait of this thread, as a share of the time it
    wanted a CPU (its sleeps do not count)."""
    import subprocess
    import sys

    from nas.export import WAITED_MAX, CpuWatch

    def spin() -> float:
        with CpuWatch() as watch:
            time.sleep(0.1)
            end = time.perf_counter() + 1.0
            while time.perf_counter() < end:
                pass
        return watch.waited

    quiet = spin()
    # one busy loop on every core beside this thread: it waits for a CPU much of its time
    loop = "import time\nend = time.time() + 20\nwhile time.time() < end: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)  # the loops are running
        busy = spin()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert 0 <= quiet < busy and busy > WAITED_MAX, (quiet, busy)


@pytest.mark.slow
def test_a_host_table_timed_elsewhere_is_retimed_here_once_and_kept(monkeypatch, tmp_path, caplog):
    """A copy of a few host entries made 5x too fast (as if timed on a much faster machine):
    build_latency re-times them on this machine into the cache, prices with that, and a later
    job reuses the re-timing without timing anything."""
    import nas.latency._host as host

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(host, "machine_busy", lambda: False)  # decide even on a busy CI machine
    monkeypatch.setattr(host, "RETIME_SPAN_S", 2.0)  # the spans matter on a shared host only
    space = get_space("ofa_mbv3_small")
    config = space.parse(SMALL_24)
    lut, fast = _five_times_too_fast(tmp_path, space)

    _CHECKED.clear()
    with caplog.at_level("INFO", logger="nas.latency._host"):
        predictor = build_latency(lut, space)
    n = len(fast)
    assert f"re-timing host-x86-litert: {n}/{n} layers" in caplog.text  # progress, to the end
    local = predictor.lut_dir
    assert local != lut and local.is_relative_to(tmp_path / "cache" / "host_tables")
    retimed = load_table(local / "ofa_mbv3_small" / "24.yaml")
    assert set(retimed.entries) == set(fast)  # every entry, no more
    assert predictor.predict(config).ms > 2 * sum(e.mean for e in fast.values())
    device = load_device(local / "device.yaml")
    assert "re-timed by nas" in device.provenance and device.overhead_ms == {}
    assert yaml.safe_load((lut / "ofa_mbv3_small" / "24.yaml").read_text())  # source untouched
    assert load_table(lut / "ofa_mbv3_small" / "24.yaml").entries == fast

    _CHECKED.clear()  # a new job on this machine: the kept re-timing, nothing timed again
    monkeypatch.setattr(host, "check_host", lambda *a: pytest.fail("re-checked"))
    assert build_latency(lut, space).lut_dir == local


def test_round_robin_timing_gives_each_model_its_fastest_round():
    """The protocol tables, validation and exports share: every model once per round, a model's
    figure its fastest round's median; a bigger layer takes longer."""
    from nas.export import time_round_robin, time_tflite
    from nas.latency._calibrate import layer_tflite

    space = get_space("ofa_mbv3_small")
    layers = space.all_layers(24)
    small = next(x for x in layers if x.op == "AvgPool2D")
    big = max((x for x in layers if x.op == "expanded_conv"), key=lambda x: x.attr("expand"))
    files = [layer_tflite(space, small, "fp32"), layer_tflite(space, big, "fp32")]
    fast, slow = time_round_robin(files, runs=20, rounds=4)  # 4 rounds of 5 runs
    assert fast.count == slow.count == 20 and 0 < fast.mean < slow.mean
    assert fast.std >= 0 and time_tflite(files[1], runs=5).count == 5  # 5 rounds of 1 run
    assert time_tflite(files[1], runs=25, rounds=10).count == 20  # 10 rounds of 2 runs
    with pytest.raises(ValueError, match="rounds"):
        time_round_robin(files, rounds=0)


def test_several_tables_are_timed_in_one_round_robin_each_entry_into_its_own(tmp_path):
    """``measure_tables_into``: the missing layers of every (table, precision) are timed
    together, and each timing lands in its own table under its own key; keys already there
    are kept as they are."""
    from nas.latency._calibrate import HostTimer, measure_tables_into
    from nas.latency._table import Entry

    space = get_space("ofa_mbv3_small")
    layers = space.all_layers(24)
    small = next(x for x in layers if x.op == "AvgPool2D")
    big = max((x for x in layers if x.op == "expanded_conv"), key=lambda x: x.attr("expand"))
    one, other = tmp_path / "24.yaml", tmp_path / "28.yaml"
    write_table(one, {f"{small.key}-dtype:int8": Entry(123.0, 0.0, 1)})  # kept as it is
    measure_tables_into(  # one file holds both precisions, as a host table's do
        [(one, "fp32", [small, big]), (one, "int8", [small, big]), (other, "fp32", [small])],
        space,
        HostTimer(runs=10),
        cache_dir=tmp_path / "layers",
    )
    a, b = load_table(one), load_table(other)
    int8 = {f"{small.key}-dtype:int8", f"{big.key}-dtype:int8"}
    assert set(a.entries) == {small.key, big.key} | int8 and set(b.entries) == {small.key}
    assert 0 < a.mean(small.key) < a.mean(big.key) and a.entries[big.key].count == 10
    assert a.mean(f"{small.key}-dtype:int8") == 123.0 and a.mean(f"{big.key}-dtype:int8") > 0


def test_round_robin_spreads_its_rounds_over_the_span():
    """``span_s``: round r starts no earlier than ``r / rounds * span_s`` after the first, so
    a slow spell shorter than the span cannot cover every round."""
    from nas.export import round_robin

    starts: list[float] = []
    (timing,) = round_robin(
        [lambda: starts.append(time.perf_counter())], runs=4, rounds=4, span_s=0.6
    )
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert timing.count == 4 and min(gaps) >= 0.14 and starts[-1] - starts[0] >= 0.44
    starts.clear()
    round_robin([lambda: starts.append(time.perf_counter())], runs=4, rounds=4)
    assert starts[-1] - starts[0] < 0.1  # no span: no pauses
    with pytest.raises(ValueError, match="span_s"):
        round_robin([lambda: None], span_s=-1)


def test_the_whole_model_fit_is_least_squares_per_precision_and_rejects_nonsense(monkeypatch):
    """After a re-timing, the whole subnets timed with it fit ``scale`` and ``overhead_ms`` per
    precision (here their timings are given: 1.3 x the layer sum - 0.2 ms for fp32, and a
    nonsense 10 x for int8, which is not kept)."""
    import nas.latency._host as host

    space = get_space("ofa_mbv3_small")
    configs = host.fit_subnets(space)
    assert len(configs) == host.N_FIT and configs == host.fit_subnets(space)  # always the same
    table = LayerTableLatency(HOST, space, dtype="fp32", device=load_device(HOST / "device.yaml"))
    sums = np.array([table.layer_sum(c)[0] for c in configs])
    measured = {"fp32": list(1.3 * sums - 0.2), "int8": list(10.0 * sums)}
    device = load_device(HOST / "device.yaml")
    fitted = host.fit_whole_models(HOST, device, space, configs, measured)
    assert fitted.scale["fp32"] == pytest.approx(1.3) and "int8" not in fitted.scale
    assert fitted.overhead_ms["fp32"] == pytest.approx(-0.2)
    monkeypatch.setenv("NAS_HOST_RETIME", "off")  # the shipped table as it is
    predictor = build_latency(HOST, space)
    plain = predictor.predict(get_space("ofa_mbv3_small").largest()).ms
    fitted_predictor = type(predictor)(HOST, predictor.space, device=fitted)
    layer_sum = predictor.layer_sum(predictor.space.largest())[0]
    assert fitted_predictor.predict(predictor.space.largest()).ms == pytest.approx(
        1.3 * layer_sum - 0.2
    ) and plain != pytest.approx(1.3 * layer_sum - 0.2)
