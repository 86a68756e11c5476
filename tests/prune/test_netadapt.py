"""NetAdapt: the pruned-width space, filter surgery, on-demand table entries, and a whole run on a
tiny real supernet (real Ray workers, real LiteRT timing, real MLflow store) that is interrupted
and resumed."""

from __future__ import annotations

import dataclasses
import json
import shutil

import mlflow
import pytest
import torch
import yaml

from nas.cli import main
from nas.errors import ConfigError, MissingLatencyKeyError
from nas.jobs import load_job
from nas.latency import (
    LayerTableLatency,
    fill_missing,
    host_device_info,
    load_device,
    load_table,
    write_device,
    write_table,
)
from nas.paths import assets_root
from nas.prune import PrunedSpace, filter_norms, prune_to, widths_of
from nas.spec import spec_from_dict
from search_spaces import get_space
from tests.conftest import tiny_spec_dict

HOST_LUT = assets_root() / "latency_luts" / "host-x86-litert"


def _space() -> PrunedSpace:
    return PrunedSpace(get_space("ofa_mbv3_small"))


def test_pruned_space_prices_parses_and_rejects_bad_widths():
    space = _space()
    base = space.base.largest()
    start = space.unpruned(base)
    assert space.layers(start) == space.base.layers(base)
    assert space.parse(str(start)) == start and space.parse("largest") == start
    names = [u.name for u in space.units(base)]
    assert names[0] == "blocks.1.mid" and names[-2:] == ["final_expand", "feature_mix"]
    assert len(names) == 16 + 2  # 16 expanding blocks; the first block has no expansion

    half = space.uniform(base, 0.5)
    assert space.parse(str(half)) == half
    assert all(w % 8 == 0 and w < top for w, top in zip(half.widths, start.widths, strict=True))
    before, after = space.base.layers(base), space.layers(half)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed == sorted([u.layer_index for u in space.units(base)] + [19, 21])  # +pool, logits
    assert after[18].output_shape[-1] == after[20].input_shape[-1] == half.widths[-2]
    assert after[21].input_shape[-1] == half.widths[-1]
    assert space.macs(half) < space.base.macs(base) and space.params(half) < space.base.params(base)

    with pytest.raises(ConfigError, match="blocks.1.mid"):
        space.with_width(start, 0, 44)  # not a multiple of 8
    with pytest.raises(ConfigError, match="blocks.2.mid"):
        space.with_width(start, 1, 24)  # the block's input width: the table key would be ambiguous
    assert 24 not in space.smaller_widths(start, 1) and space.smaller_widths(start, 1)[0] == 136


def test_prune_unit_keeps_the_largest_filters_and_the_model_matches_its_config():
    torch.manual_seed(0)
    space = _space()
    base = space.base.smallest()
    model = space.base.build(base).eval()
    start = space.unpruned(base)
    norms = filter_norms(model, "blocks.3.mid")
    width = start.widths[2] - 16
    expected = (
        model.blocks[3]
        .conv.inverted_bottleneck.conv.weight[torch.sort(torch.topk(norms, width).indices).values]
        .clone()
    )
    config = space.with_width(start, 2, width)
    config = space.with_width(config, len(start.widths) - 1, 256)  # feature_mix too
    prune_to(model, space, config)
    assert widths_of(model, space, config) == config.widths
    assert torch.equal(model.blocks[3].conv.inverted_bottleneck.conv.weight, expected)
    assert sum(p.numel() for p in model.parameters()) == space.params(config)
    assert model(torch.randn(2, 1, 24, 24)).shape == (2, 10)


def _table_copy(tmp_path, *, this_host: bool, timed_here: int | None = None):
    """The shipped host table as this host's (or a phone's); ``timed_here``: a resolution whose
    fp32 entries are dropped, so that every entry a job prices there is timed on this machine,
    under the same conditions (the shipped ones were timed on another machine, maybe faster)."""
    lut = tmp_path / "lut"
    shutil.copytree(HOST_LUT, lut, ignore=shutil.ignore_patterns("validation"))
    if timed_here is not None:
        path = lut / "ofa_mbv3_small" / f"{timed_here}.yaml"
        kept = {k: e for k, e in load_table(path).entries.items() if "-dtype:" in k}
        write_table(path, kept)
    device = load_device(lut / "device.yaml")
    if this_host:  # what `nas lut calibrate` on this machine would have written
        here = host_device_info(1, "")
        device = type(device)(**{**device.__dict__, "soc": here.soc})
    else:
        device = type(device)(**{**device.__dict__, "soc": "a phone SoC"})
    write_device(lut / "device.yaml", device)
    if this_host:  # the table its reference layers come from, at this machine's speed
        from nas.latency._host import host_reference

        ref = host_reference(lut, _space())
        ratio = ref.ratio()  # a uniform scale keeps the same layers the reference ones
        entries = load_table(ref.table).entries
        write_table(
            ref.table,
            {k: dataclasses.replace(e, mean=e.mean * ratio) for k, e in entries.items()},
        )
    return lut


def test_entries_measured_for_a_shipped_table_go_to_this_machines_copy(tmp_path, monkeypatch):
    """A shipped host table (package data) is never written: the first entry measured here moves
    the predictor to this machine's copy under the cache folder, which later jobs price with."""
    import nas.latency._host as host
    from nas.latency._host import _known_retiming

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    shipped_root = tmp_path / "assets"
    lut = _table_copy(shipped_root / "latency_luts" / "host", this_host=True)
    monkeypatch.setattr(host, "assets_root", lambda: shipped_root)
    before = (lut / "ofa_mbv3_small" / "24.yaml").read_bytes()
    space = _space()
    start = space.unpruned(space.base.smallest())
    pruned = space.with_width(start, 0, space.smaller_widths(start, 0)[-1])
    model = LayerTableLatency(lut, space)
    assert fill_missing(model, space.layers(pruned), pruned.resolution, runs=10) == 1
    assert (lut / "ofa_mbv3_small" / "24.yaml").read_bytes() == before  # shipped file untouched
    assert model.lut_dir == _known_retiming(lut)
    assert model.lut_dir.is_relative_to(tmp_path / "cache")
    assert model.predict(pruned).ms > 0  # priced from the copy, with the new entry


def test_missing_entries_are_measured_on_this_host_and_never_guessed(tmp_path):
    space = _space()
    start = space.unpruned(space.base.smallest())
    pruned = space.with_width(start, 0, space.smaller_widths(start, 0)[-1])
    new_key = space.layers(pruned)[space.units(pruned.base)[0].layer_index].key

    foreign = LayerTableLatency(_table_copy(tmp_path / "a", this_host=False), space)
    with pytest.raises(MissingLatencyKeyError, match="expand:8"):
        foreign.predict(pruned)
    with pytest.raises(MissingLatencyKeyError, match="cannot measure"):
        fill_missing(foreign, space.layers(pruned), pruned.resolution)

    here = LayerTableLatency(_table_copy(tmp_path / "b", this_host=True), space)
    assert fill_missing(here, space.layers(pruned), pruned.resolution, runs=20) == 1
    table = load_table(here.table(pruned.resolution).path)
    # 20 runs in ten round-robin rounds of 2 (nas.export.time_round_robin)
    assert new_key in table and table.entries[new_key].count == 20
    assert here.predict(pruned).ms < here.predict(start).ms
    assert fill_missing(here, space.layers(pruned), pruned.resolution) == 0  # cached in the file


def test_entries_timed_on_demand_are_put_at_the_tables_speed(tmp_path):
    """The table's reference layers are timed in the same rounds as the new files, and the new
    entries are divided by their ratio to the table: a reference layer that is the very file
    being timed, with an entry of 1 ms, puts that file at about 1 ms on any machine, at any
    speed."""
    from nas.export import Reference
    from nas.latency import HostTimer
    from nas.latency._calibrate import layer_file

    space = _space()
    start = space.unpruned(space.base.smallest())
    layer = space.layers(start)[space.units(start.base)[0].layer_index]
    file = layer_file(space, layer, "fp32", tmp_path)
    timer = HostTimer(runs=40, reference=Reference((file,), (1.0,)))
    (timing,) = timer.many([file])
    assert timing.mean == pytest.approx(1.0, rel=0.25)
    assert timer.conditions is not None and 0 < timer.conditions.reference_ratio < 1


def test_entries_timed_far_from_the_tables_speed_are_refused(tmp_path):
    """Reference entries cut to a tenth: this machine times them ~10x their table, which no
    machine state a scale could put right explains; the new entries are refused and the table
    is left as it was. (A tenth, not a third: the copy's table is put at this machine's speed by
    one timing, which can be off; one clean-clone CI run timed entries cut to a third at 1.87x.)"""
    from nas.errors import LatencyTableError
    from nas.latency._host import host_reference

    space = _space()
    start = space.unpruned(space.base.smallest())
    pruned = space.with_width(start, 0, space.smaller_widths(start, 0)[-1])
    lut = _table_copy(tmp_path, this_host=True)
    tables = sorted((lut / "ofa_mbv3_small").glob("*.yaml"), key=lambda p: int(p.stem))
    top = load_table(tables[-1])  # where the reference layers come from
    write_table(
        tables[-1], {k: dataclasses.replace(e, mean=e.mean / 10) for k, e in top.entries.items()}
    )
    assert host_reference(lut, space) is not None
    before = (lut / "ofa_mbv3_small" / "24.yaml").read_bytes()
    model = LayerTableLatency(lut, space)
    with pytest.raises(
        LatencyTableError, match=r"refusing 1 entries timed beside the reference layers .* they ran"
    ):
        fill_missing(model, space.layers(pruned), pruned.resolution, runs=20)
    assert (lut / "ofa_mbv3_small" / "24.yaml").read_bytes() == before


@pytest.fixture
def _own_ray():
    """The job starts an embedded Ray in this process; stop it after the test, so that later
    tests (a cluster started with `ray start`) do not share the machine with it."""
    import ray

    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.usefixtures("_own_ray")
@pytest.mark.usefixtures("tracking_store")
# through a tracking server only: NetAdapt logs and registers with the code the search uses,
# which tests/tracking/test_registry.py runs on both stores (this test takes minutes a store)
@pytest.mark.parametrize("tracking_store", ["server"], indirect=True)
def test_netadapt_prunes_to_the_budget_resumes_tracks_and_exports(
    small_fmnist, tiny_supernet, tmp_path, capsys
):
    """Through an MLflow tracking server (``tracking_store``), as a cluster's job logs."""
    data = tiny_spec_dict(small_fmnist, tmp_path)
    shutil.copy(tiny_supernet, data["supernet"]["checkpoint"])
    dataset, space = load_job(spec_from_dict(data))
    lut = _table_copy(tmp_path, this_host=True, timed_here=24)  # smallest: r24
    data.update(
        name="netadapt_test",
        devices=[{"lut": str(lut)}],
        netadapt={
            "start": "smallest",
            "budget_ratio": 0.8,
            "initial_ratio": 0.08,
            "decay": 1.0,
            "short_term_steps": 2,
            "short_term_batch": 32,
            "val_images": 100,
            "criterion": "taylor",  # data-driven: scored on the driver, sent to the worker
            "criterion_images": 64,
            "long_term_epochs": 1,
            "workers": 1,
            "max_iterations": 1,
        },
        export={"formats": ["tflite-fp32"]},
    )
    spec_path = tmp_path / "netadapt_test.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    # a first run stopped by max_iterations, as an interrupted one would be, after iteration 1
    assert main(["netadapt", str(spec_path), "--json", "--quiet"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["iterations"] == 1 and first["latency_ms"] > first["target_latency_ms"]
    state_path = tmp_path / "runs" / "netadapt_test" / "netadapt" / "state.json"
    history_1 = json.loads(state_path.read_text())["history"]
    data["netadapt"]["criterion"] = "apoz"  # another criterion does not resume this run
    spec_path.write_text(yaml.safe_dump(data))
    assert main(["netadapt", str(spec_path), "--json", "--quiet"]) == 2
    assert "netadapt.criterion = taylor" in capsys.readouterr().err
    data["netadapt"]["criterion"] = "taylor"

    data["netadapt"]["max_iterations"] = 10
    spec_path.write_text(yaml.safe_dump(data))
    assert main(["netadapt", str(spec_path), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    state = json.loads(state_path.read_text())
    assert state["history"][0] == history_1[0]  # resumed, not redone
    assert result["run_id"] == first["run_id"]
    assert result["iterations"] > 1
    assert result["latency_ms"] <= result["target_latency_ms"] + 1e-9
    pruned = PrunedSpace(space).parse(result["config"])
    assert pruned.base == space.smallest() and pruned != PrunedSpace(space).unpruned(pruned.base)
    for row in state["history"]:
        assert row["latency_ms"] <= state["start_latency_ms"]
        kept = [p for p in row["proposals"] if p["unit"] == row["kept"]]
        assert kept[0]["val_accuracy"] == max(p["val_accuracy"] for p in row["proposals"])
        assert all(p["measured_ms"] > 0 for p in row["proposals"])

    (exported,) = result["exported"]
    assert exported["parity_ok"] and exported["latency_measured_ms"] > 0
    assert exported["latency_predicted_ms"] == pytest.approx(result["latency_ms"])

    client = mlflow.tracking.MlflowClient()
    children = client.search_runs(
        [client.get_experiment_by_name("netadapt_test").experiment_id],
        f"tags.mlflow.parentRunId = '{result['run_id']}'",
    )
    assert len(children) == sum(len(r["proposals"]) for r in state["history"])
    assert {"latency_predicted_ms", "latency_measured_ms", "val_accuracy"} <= set(
        children[0].data.metrics
    )
    # the first run's model (stopped short of the budget) and the final one are both versions
    versions = client.search_model_versions("name='netadapt_test-host-x86-litert'")
    assert sorted(v.tags["config"] for v in versions) == sorted([first["config"], result["config"]])


def test_proposals_find_the_widest_width_that_removes_enough_by_bisection():
    """On a table where fewer filters never cost more, bisection proposes, per unit, the same
    width as trying every width from the widest down, while pricing about log2(n) of them; the
    units are bisected in step, so that entries measured on demand are timed once per step (one
    ``price_all`` call), not once per width."""
    import math
    import types

    from nas.prune import NetAdaptJob

    space = _space()
    current = space.unpruned(space.base.largest())
    calls, rounds = [], []

    def price(config):
        calls.append(config)
        return 0.001 * sum(w * (i + 1) for i, w in enumerate(config.widths))

    def price_all(configs):
        rounds.append(len(configs))
        return [price(c) for c in configs]

    job = types.SimpleNamespace(space=space, price_all=price_all)
    job._priced_all = types.MethodType(NetAdaptJob._priced_all, job)
    latency, reduction = price(current), 0.2
    calls.clear()
    got = NetAdaptJob.proposals(job, current, latency, reduction)
    units = space.units(current.base)
    assert got and len(calls) < 10 * len(units)
    most = max(len(space.smaller_widths(current, i)) for i in range(len(units)))
    assert 2 <= len(rounds) <= 1 + math.ceil(math.log2(most)) and max(rounds) > 1
    for p in got:
        widths = space.smaller_widths(current, p.index)
        linear = next(
            w for w in widths if latency - price(space.with_width(current, p.index, w)) >= reduction
        )
        assert p.width == linear and p.latency_ms == pytest.approx(
            latency - 0.001 * (p.index + 1) * (current.widths[p.index] - p.width)
        )
    skipped = {u.name for u in units} - {p.unit for p in got}
    for index, unit in enumerate(units):
        if unit.name in skipped and space.smaller_widths(current, index):
            smallest = space.with_width(current, index, space.smaller_widths(current, index)[-1])
            assert latency - price(smallest) < reduction
