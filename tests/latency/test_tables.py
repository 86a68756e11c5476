from __future__ import annotations

import pytest
import yaml

from nas.errors import LatencyTableError, MissingLatencyKeyError
from nas.latency import (
    Entry,
    build_latency,
    load_device,
    load_table,
    write_table,
)
from nas.paths import assets_root
from search_spaces import get_space
from tests.conftest import FIXTURES

NOTE10 = assets_root() / "latency_luts" / "note10"


@pytest.mark.parametrize("resolution", [160, 224])
def test_note10_prediction_equals_the_hand_sum_of_the_raw_yaml(resolution):
    raw = yaml.safe_load((NOTE10 / "ofa_mbv3" / f"{resolution}.yaml").read_text())
    space = get_space("ofa_mbv3")
    model = build_latency(NOTE10, space)
    r, half = resolution, (resolution + 1) // 2
    # largest: depth 4 everywhere, kernel 7, expand 6; widths 24,32,48,96,136,192 (w1.2)
    keys = [
        f"Conv-input:{r}x{r}x3-output:{half}x{half}x24",
        f"expanded_conv-input:{half}x{half}x24-output:{half}x{half}x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0",
    ]
    size, cin = half, 24
    for width, stride, se, hs in (
        (32, 2, 0, 0),
        (48, 2, 1, 0),
        (96, 2, 0, 1),
        (136, 1, 1, 1),
        (192, 2, 1, 1),
    ):
        for b in range(4):
            s = stride if b == 0 else 1
            out = (size - 1) // s + 1
            keys.append(
                f"expanded_conv-input:{size}x{size}x{cin}-output:{out}x{out}x{width}"
                f"-expand:{cin * 6}-kernel:7-stride:{s}-idskip:{int(s == 1 and cin == width)}"
                f"-se:{se}-hs:{hs}"
            )
            size, cin = out, width
    keys += [
        f"Conv_1-input:{size}x{size}x192-output:{size}x{size}x1152",
        f"AvgPool2D-input:{size}x{size}x1152-output:1x1x1152",
        "Conv_2-input:1x1x1152-output:1x1x1536",
        "Logits-input:1x1x1536-output:1000",
    ]
    hand = sum(raw[k]["mean"] for k in keys)
    largest = space.parse(f"r{resolution}" + "_k7777e6666" * 5)
    assert model.predict(largest).ms == pytest.approx(hand, rel=1e-12)

    smallest = space.parse(f"r{resolution}" + "_k33e33" * 5)
    keys_small = [layer.key for layer in space.layers(smallest)]
    assert model.predict(smallest).ms == pytest.approx(
        sum(raw[k]["mean"] for k in keys_small), rel=1e-12
    )
    assert model.predict(smallest).ms < model.predict(largest).ms


# sha256 of OFA's published ofa/note10/<r>_lookup_table.yaml files
PUBLISHED_NOTE10_SHA256 = {
    160: "a2671a45e9400542679ed03de946b45d6a35010f9ab21834af3e7ba8341d36d1",
    176: "34223ae037d5719a5f33261bdfd9341f590a2999edf520f174309605dc06307c",
    192: "0ff5ca0649e56ad34a42d6a8a6f20adb5121c8d12d135299397b310472db79e2",
    208: "41aa63af766a8298354e6aa5ae69d512ac68656a6e7d0a4fa5dc725c8d438633",
    224: "c13a9bcb3f4becae844bce4897129c4e42975984c1029cbd5acb48c970136530",
}


def test_shipped_note10_tables_are_the_published_numbers_unchanged():
    import hashlib

    for r, digest in PUBLISHED_NOTE10_SHA256.items():
        ours = (NOTE10 / "ofa_mbv3" / f"{r}.yaml").read_bytes()
        assert hashlib.sha256(ours).hexdigest() == digest
    device = load_device(NOTE10 / "device.yaml")
    assert device.name == "note10" and "Once-for-All" in device.provenance


def test_missing_key_is_an_error_naming_key_and_table(tmp_path):
    space = get_space("ofa_mbv3")
    (tmp_path / "ofa_mbv3").mkdir()
    (tmp_path / "device.yaml").write_text((NOTE10 / "device.yaml").read_text())
    raw = yaml.safe_load((NOTE10 / "ofa_mbv3" / "224.yaml").read_text())
    victim = space.layers(space.largest())[5].key
    del raw[victim]
    (tmp_path / "ofa_mbv3" / "224.yaml").write_text(yaml.safe_dump(raw))
    model = build_latency(tmp_path, space)
    with pytest.raises(MissingLatencyKeyError, match=rf"{victim}.*224.yaml"):
        model.predict(space.largest())
    assert model.predict(space.parse("r224" + "_k33e33" * 5)).ms > 0  # other subnets still price
    with pytest.raises(MissingLatencyKeyError, match="dtype:int8"):
        model.at("int8").predict(space.smallest().__class__(224, (2,) * 5, (3,) * 10, (3,) * 10))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: {mean: -1}", "finite mean >= 0"),
        ("a: {mean: .nan}", "finite mean"),
        ("a: {std: 1}", "finite mean"),
        ("a: 3", "must map to"),
        ("a: {mean: 1, speed: 2}", "unknown fields"),
        ("[1, 2]", "non-empty mapping"),
        ("a: [unclosed", "not valid YAML"),
    ],
)
def test_strict_loading_names_the_entry(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(LatencyTableError, match=message):
        load_table(path)


def test_unsafe_yaml_is_rejected(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("a: !!python/object/apply:os.system ['true']")
    with pytest.raises(LatencyTableError):
        load_table(path)


def test_write_then_load_round_trips(tmp_path):
    entries = {"b": Entry(1.5, 0.1, 50), "a-dtype:int8": Entry(0.25, 0.01, 60)}
    write_table(tmp_path / "x.yaml", entries)
    assert dict(load_table(tmp_path / "x.yaml").entries) == entries


def test_proxylessnas_var_field_is_understood():
    table = load_table(FIXTURES / "ofa" / "proxylessnas_mobile_trim.yaml")
    assert len(table) > 10 and all(e.mean > 0 for e in table.entries.values())


@pytest.mark.slow
def test_validate_measures_whole_subnets_and_reports_against_the_table(tmp_path, capsys):
    import json
    import shutil

    from nas.cli import main

    lut = tmp_path / "host"
    shutil.copytree(assets_root() / "latency_luts" / "host-x86-litert", lut)
    argv = ["lut", "validate", "--lut", str(lut), "--space", "ofa_mbv3_small", "--n", "4"]
    argv += ["--span-s", "1"]  # rounds spread over 1 s (default 60)
    assert main([*argv, "--fit-overhead", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["n"] == 4 and {"within_10pct", "mape", "kendall_tau"} <= set(report)
    assert "cores" in report["machine"]  # which machine the measured side belongs to
    assert 0.0 <= report["within_10pct"] <= 1.0 and report["mape"] >= 0.0
    assert load_device(lut / "device.yaml").overhead_ms["fp32"] == pytest.approx(
        report["overhead_ms"]
    )  # the fitted overhead was written and used
    folder = lut / "validation" / "ofa_mbv3_small"
    assert (folder / "fp32-t1.json").is_file() and (folder / "fp32-t1.png").stat().st_size > 0
    assert main([*argv, "--min-within", "1.01"]) == 1  # below the bar: non-zero exit
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--span-s", "-1"])
    assert exit_.value.code == 2
    assert "--span-s: expected a number >= 0, got '-1'" in capsys.readouterr().err
