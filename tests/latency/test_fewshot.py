"""Few-shot latency (``nas.latency._fewshot``) on the shipped HELP NAS-Bench-201 tables, and the
tables themselves (``arch_table`` folders read by ``load_table``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from nas.errors import NASError
from nas.latency import load_device, load_table
from nas.latency._fewshot import (
    DESIGNS,
    FewShotError,
    choose_archs,
    fit_fewshot,
    nb201_ops,
    op_counts,
    op_features,
    smooth,
)
from nas.paths import assets_root

DEVICES = ("pixel2", "pixel3", "samsung_a50", "samsung_s7", "essential_ph_1", "raspi4")
WHOLE_MS = {"pixel2", "samsung_a50", "samsung_s7", "essential_ph_1"}
LUTS = assets_root() / "latency_luts"


@pytest.fixture(scope="module")
def help_tables():
    """All six tables, read once through the format's own loader (about 4 s each)."""
    return {d: load_table(LUTS / d / "nb201" / "arch.yaml.gz") for d in DEVICES}


@pytest.fixture(scope="module")
def help_latency(help_tables):
    archs = sorted(help_tables["pixel3"].entries)
    return archs, np.array([[help_tables[d].mean(a) for a in archs] for d in DEVICES])


def test_each_shipped_help_table_holds_all_15625_nb201_architectures(help_tables):
    keys = set(help_tables["pixel2"].entries)
    for device, table in help_tables.items():
        assert len(table) == 15625 and set(table.entries) == keys
        info = load_device(LUTS / device / "device.yaml")
        assert info.kind == "arch_table" and info.name == device
        assert "HELP" in info.provenance and "import_help_nb201.py" in info.provenance
        assert "MIT" in (LUTS / device / "LICENSE-HELP").read_text()
        means = np.array([e.mean for e in table.entries.values()])
        assert (means >= 0).all()
        assert (device in WHOLE_MS) == bool(np.all(means == np.round(means)))
    assert (
        "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
        in keys
    )


def test_pixel3_fitted_from_the_other_five_with_10_timings_ranks_above_0_95(help_latency):
    # measured: rho 0.977 +- 0.002 over seeds 0-9 (benchmarks/latency_fewshot.py, mix3-dopt+counts)
    archs, latency = help_latency
    ops = nb201_ops(archs)
    target = DEVICES.index("pixel3")
    sources = smooth(np.delete(latency, target, axis=0), op_features(ops, order=3))
    truth = latency[target]
    chosen = choose_archs(sources, 10, seed=0)
    fit = fit_fewshot(sources, chosen, truth[chosen], residual_features=op_counts(ops))
    test = np.setdiff1d(np.arange(len(truth)), chosen)
    assert spearmanr(fit.predictions[test], truth[test]).statistic > 0.95
    assert (fit.weights >= 0).all()


@pytest.mark.parametrize("design", DESIGNS)
def test_chosen_architectures_are_distinct_and_the_same_for_the_same_seed(design):
    sources = np.random.default_rng(0).gamma(2.0, size=(3, 500))
    # dopt draws its candidates from a pool: a pool smaller than the architectures varies by seed
    first = choose_archs(sources, 20, seed=4, design=design, pool=100)
    assert len(set(first.tolist())) == 20 and first.min() >= 0 and first.max() < 500
    assert np.array_equal(first, choose_archs(sources, 20, seed=4, design=design, pool=100))
    assert not np.array_equal(first, choose_archs(sources, 20, seed=5, design=design, pool=100))


def test_an_exact_mix_of_sources_is_recovered_without_a_penalty():
    sources = np.random.default_rng(1).gamma(2.0, size=(3, 200))
    truth = 1.5 + 0.7 * sources[0] + 2.0 * sources[2]
    chosen = np.arange(0, 200, 25)
    fit = fit_fewshot(sources, chosen, truth[chosen], alpha=0.0)
    np.testing.assert_allclose(fit.predictions, truth, rtol=1e-6)
    assert fit.weights[1] == pytest.approx(0.0, abs=1e-9)


def test_nb201_ops_and_features_follow_the_architecture_string():
    ops = nb201_ops(
        ["|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"]
    )
    assert ops.tolist() == [[3, 0, 4, 1, 2, 3]]
    assert op_counts(ops).tolist() == [[1, 1, 2, 1]]
    assert op_features(ops, order=1).shape == (1, 31) and op_features(ops, order=1).sum() == 7
    assert op_features(ops, order=2).shape == (1, 1 + 15 * 25)


def _bad(match, call, *args, **kwargs):
    with pytest.raises(FewShotError, match=match) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, NASError) and isinstance(info.value, ValueError)


def test_bad_arguments_raise_an_error_naming_the_argument():
    sources = np.random.default_rng(2).gamma(2.0, size=(4, 50))
    chosen = np.arange(10)
    timings = sources[0, chosen]
    _bad("n must be an int in 1..50", choose_archs, sources, 51)
    _bad("n must be", choose_archs, sources, 0)
    _bad("design must be one of", choose_archs, sources, 5, design="best")
    _bad("timings must have one value per chosen", fit_fewshot, sources, chosen, timings[:-1])
    _bad("chosen must index", fit_fewshot, sources, np.r_[chosen[:-1], 50], timings)
    _bad("chosen must not repeat", fit_fewshot, sources, np.r_[chosen[:-1], 0], timings)
    _bad("chosen: 4 timing.*5 parameters", fit_fewshot, sources, chosen[:4], timings[:4], alpha=0)
    _bad("chosen: 1 timing", fit_fewshot, sources, chosen[:1], timings[:1])
    _bad("timings must be finite", fit_fewshot, sources, chosen, np.r_[timings[:-1], np.nan])
    _bad(
        "residual_features must have one row",
        fit_fewshot,
        sources,
        chosen,
        timings,
        residual_features=np.ones((49, 2)),
    )
    _bad("sources must be finite", choose_archs, np.r_[sources, [[np.inf] * 50]], 5)
    _bad("features must have one row per architecture", smooth, sources, np.ones((49, 3)))
    _bad("archs\\[0\\] is not a NAS-Bench-201", nb201_ops, ["|conv~0|"])
