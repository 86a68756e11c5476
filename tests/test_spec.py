from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from nas.errors import SpecError
from nas.spec import load_spec, spec_from_dict
from tests.conftest import REPO


def test_shipped_supernet_specs_load_and_chain():
    """The shipped checkpoint is two trainings: the first stage at 24-28 px and depth 2-4,
    then the whole space from the first stage's weights into the shipped file."""
    spec = load_spec(REPO / "runs" / "fashion_mnist_supernet.yaml")
    assert spec.name == "fashion_mnist_supernet" and spec.space == "ofa_mbv3_small"
    assert [p.name for p in spec.supernet.phases] == ["full", "kernel", "depth", "expand"]
    assert spec.supernet.phases[-1].expands == (3, 4, 6)
    assert {p.resolutions for p in spec.supernet.phases[1:]} == {(24, 28)}
    extend = load_spec(REPO / "runs" / "fashion_mnist_supernet_extend.yaml")
    assert extend.resolve_path(extend.supernet.init_weights) == spec.output_path(
        spec.supernet.checkpoint
    )
    shipped = extend.output_path(extend.supernet.checkpoint).resolve()
    assert shipped == REPO / "nas/assets/checkpoints/ofa_mbv3_small_fashion_mnist/supernet.pt"
    assert (
        extend.supernet.phases[0].depths == (1, 2, 3, 4)
        and not extend.supernet.phases[0].resolutions
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "bogus": 1}, "unknown field 'bogus'"),
        (
            {"name": "x", "supernet": {"batchsize": 3}},
            r"unknown field 'supernet.batchsize'.*batch_size",
        ),
        (
            {"name": "x", "space": "resnet"},
            r"space = 'resnet' must be one of \[.*'ofa_mbv3', 'ofa_mbv3_small'.*\]",
        ),
        (
            {"name": "x", "dataset": {"name": "cifar"}},
            r"dataset.name = 'cifar' must be one of \['fashion_mnist', 'image_folder'\]",
        ),
        (
            {"name": "x", "evaluator": {"kind": "oracle"}},
            r"evaluator.kind = 'oracle' must be one of \[.*'predictor', 'supernet'.*\]",
        ),
        (
            {"name": "x", "search": {"sampler": "cmaes"}},
            r"search.sampler = 'cmaes' must be one of \['apq', 'compound', 'gp', 'nsga2', "
            r"'random', 'surrogate', 'tpe'\]",
        ),
        (
            {"name": "x", "export": {"formats": ["tflite-fp32", "coreml"]}},
            r"export.formats\[1\] = 'coreml' must be one of \[.*'tflite-fp32'.*\]",
        ),
        (
            {"name": "x", "supernet": {"batch_size": "big"}},
            "supernet.batch_size must be an integer",
        ),
        (
            {"name": "x", "supernet": {"phases": [{"name": "a", "epochs": 0, "lr": 0.1}]}},
            r"phase 'a'.epochs = 0 must be >= 1",
        ),
        (
            {"name": "x", "supernet": {"phases": [{"name": "a", "lr": 0.1}]}},
            r"missing required field 'supernet.phases\[0\].epochs'",
        ),
        ({"name": "x", "dataset": {"name": "image_folder"}}, "dataset.root is required"),
        (
            {"name": "x", "space": "quantized(ofa_mbv3_small)"},
            r"space \(wrapper\) = 'quantized' must be one of "
            r"\['apq', 'int8', 'mixed_precision', 'pruned'\]",
        ),
        ({"name": "x", "space": "pruned(ofa_mbv3_small"}, r"space: 'pruned\(ofa_mbv3_small'"),
    ],
)
def test_bad_fields_are_named(data, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(data)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(listy)


def test_a_spec_names_a_wrapped_space():
    spec = spec_from_dict({"name": "x", "space": "mixed_precision(pruned(ofa_mbv3_small))"})
    assert spec.space == "mixed_precision(pruned(ofa_mbv3_small))"


def test_a_job_reads_shipped_files_but_writes_beside_the_spec(tmp_path):
    from nas.paths import assets_root

    spec_file = tmp_path / "job.yaml"
    spec_file.write_text("space: ofa_mbv3_small\n")
    spec = load_spec(spec_file)
    shipped = "checkpoints/ofa_mbv3_small_fashion_mnist/supernet.pt"
    assert spec.resolve_path(shipped) == assets_root() / shipped
    assert spec.output_path(shipped) == tmp_path / shipped


def test_name_defaults_to_the_file_stem(tmp_path):
    f = tmp_path / "my_job.yaml"
    f.write_text("space: ofa_mbv3_small\n")
    assert load_spec(f).name == "my_job"


def test_spec_module_imports_no_engine_module():
    """nas.spec validates names against nas.registry; importing it pulls in no engine module
    (the spaces, export, search, ...) nor their heavy libraries, only the core (torch comes with
    ``nas`` itself, for the torchvision trap in nas._compat)."""
    code = (
        "import sys, nas.spec; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('nas', 'search_spaces', 'optuna', 'tensorflow', 'mlflow', 'ray')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert ast.literal_eval(out.strip()) == [
        "nas",
        "nas._compat",
        "nas.errors",
        "nas.paths",
        "nas.registry",
        "nas.spec",
    ]


def test_the_budgets_a_model_is_picked_under():
    """One list of budgets for the search's sampler and the export's aliases: the export's, else
    the search's constraint, else none."""

    def budgets(search: dict, export: dict) -> list[float]:
        spec = spec_from_dict(
            {"name": "x", "space": "ofa_mbv3_small", "search": search, "export": export}
        )
        return spec.budgets_ms()

    assert budgets({"max_latency_ms": 2.0}, {"budgets_ms": [0.5, 1.0]}) == [0.5, 1.0]
    assert budgets({"max_latency_ms": 2.0}, {}) == [2.0]
    assert budgets({}, {}) == []
