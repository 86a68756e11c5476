"""A joint (architecture, pruned widths, per-layer precision) config exported as one ``.tflite``
file: every layer at the config's precision, read back from the file's tensors, and the PyTorch
simulation that scores the config during a search computing what the file computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.data import batches, load_fashion_mnist
from nas.export import export_subnet, exporter, file_layer_precisions, to_tflite, torch_to_keras
from nas.paths import assets_root
from nas.supernet import load_weights, recalibrate_bn, simulate_precisions
from search_spaces import get_space

SUPERNET = assets_root() / "checkpoints" / "ofa_mbv3_small_fashion_mnist" / "supernet.pt"


def _with_every_precision(space, seed: int = 0):
    rng = np.random.default_rng(seed)
    while True:
        config = space.sample(rng)
        if set(config.dtypes) == {"fp32", "fp16", "int8"} and config.dtypes[0] == "fp32":
            return config


@pytest.fixture(scope="module")
def exported(small_fmnist, tmp_path_factory):
    torch.manual_seed(0)
    dataset = load_fashion_mnist(small_fmnist, val_size=200)
    space = get_space("apq(ofa_mbv3_small)")
    config = _with_every_precision(space)
    resolution = space.input_shape(config)[1]
    subnet = space.build(config, load_weights(SUPERNET)["state_dict"])
    recalibrate_bn(
        subnet, batches(dataset.train, 100, dataset.preprocessing, resolution=resolution)
    )
    out = tmp_path_factory.mktemp("mixed")
    files = export_subnet(
        space, config, subnet, dataset, out, formats=["tflite-mixed", "tflite-fp32"]
    )
    return space, config, subnet, dataset, {f.format: f for f in files}


@pytest.mark.slow
def test_every_layer_of_the_file_runs_at_the_configs_precision(exported):
    space, config, _, _, files = exported
    mixed = files["tflite-mixed"]
    paths = space.layer_paths(config)
    got = file_layer_precisions(mixed.path, paths)
    # fp16 stores weights at half precision: a layer without weights (the pooling) computes in
    # fp32 either way, and reads back as fp32
    weightless = {"global_avg_pool"}
    want = [
        "fp32" if p in weightless and d == "fp16" else d
        for p, d in zip(paths, config.dtypes, strict=True)
    ]
    assert got == want
    # int8 and fp16 weights: smaller than the fp32 file, larger than nothing
    assert (
        0.2 * files["tflite-fp32"].size_bytes < mixed.size_bytes < files["tflite-fp32"].size_bytes
    )
    assert not mixed.parity_ok or exporter("tflite-mixed").parity_atol is None


@pytest.mark.slow
def test_the_size_a_search_prices_a_config_at_is_its_files_size(exported):
    """``nas.export.predicted_size_bytes`` (the search's size objective, from the config alone)
    within 2% of the bytes of the mixed file and of the fp32 file of the same subnet."""
    *_, files = exported
    for f in files.values():
        assert f.size_predicted_bytes is not None
        assert abs(f.size_predicted_bytes / f.size_bytes - 1) < 0.02, f


@pytest.mark.slow
def test_the_simulation_computes_what_the_file_computes(exported):
    space, config, subnet, dataset, files = exported
    resolution = space.input_shape(config)[1]
    calibration = batches(
        dataset.quantization_calibration(), 100, dataset.preprocessing, resolution=resolution
    )
    sim = simulate_precisions(subnet, space.layer_dtypes(config), (x for x, _ in calibration))
    x, _ = next(iter(batches(dataset.test, 100, dataset.preprocessing, resolution=resolution)))
    file_logits = exporter("tflite-mixed").open(files["tflite-mixed"].path)(x.numpy())
    with torch.no_grad():
        d_sim = np.abs(sim(x).numpy() - file_logits).mean()
        d_fp32 = np.abs(subnet(x).numpy() - file_logits).mean()
    # the quantization error the file has, the simulation has too (most of it)
    assert d_sim < 0.6 * d_fp32, (d_sim, d_fp32)


def test_an_all_fp32_simulation_is_the_model_itself():
    space = get_space("apq(ofa_mbv3_small)")
    config = space.largest()  # every layer fp32
    model = space.build(config).eval()
    sim = simulate_precisions(model, space.layer_dtypes(config), [])
    x = torch.randn(4, *space.input_shape(config))
    with torch.no_grad():
        assert torch.equal(sim(x), model(x))
    with pytest.raises(ValueError, match="int4"):
        simulate_precisions(model, dict.fromkeys(space.layer_paths(config), "int4"), [])


def test_tensor_names_of_a_converted_file_say_which_module_they_come_from_and_it_has_a_signature():
    from ai_edge_litert.interpreter import Interpreter

    space = get_space("ofa_mbv3_small")
    config = space.smallest()
    keras = torch_to_keras(space.build(config).eval(), space.input_shape(config))
    interpreter = Interpreter(model_content=to_tflite(keras))
    names = [t["name"] for t in interpreter.get_tensor_details()]
    # the signature a SavedModel's conversion writes, which LiteRT's signature runners read
    ((key, signature),) = interpreter.get_signature_list().items()
    assert key == "serving_default" and signature == {
        "inputs": keras.input_names,
        "outputs": keras.output_names,
    }
    c, h, w = space.input_shape(config)
    (logits,) = interpreter.get_signature_runner()(
        **{keras.input_names[0]: np.zeros((1, h, w, c), np.float32)}
    ).values()
    assert logits.shape == (1, 10)
    modules = {
        part.split("/")[1].split("-")[0] for n in names for part in n.split(";") if "/" in part
    }
    paths = space.layer_paths(config)
    owned = {space.owning_layer(m, paths) for m in modules}
    assert owned == set(range(len(paths)))  # every module is in a layer, every layer is there
