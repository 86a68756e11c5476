"""Contract suite run over every filter-importance criterion in nas.registry.CRITERIA, and what
each built-in one computes (APoZ: Hu et al. 2016; first-order Taylor: Molchanov et al. 2017)."""

from __future__ import annotations

import pytest
import torch

from nas.prune import FilterCriterion, make_criterion
from nas.registry import CRITERIA
from search_spaces import get_space

SPACE = get_space("ofa_mbv3_small")


def _model():
    torch.manual_seed(0)
    config = SPACE.smallest()
    model = SPACE.build(config).train()  # a criterion must leave the mode as it found it
    shape = SPACE.input_shape(config)
    gen = torch.Generator().manual_seed(1)
    data = [
        (torch.randn(16, *shape, generator=gen), torch.randint(0, 10, (16,), generator=gen))
        for _ in range(3)
    ]
    return config, model, lambda: iter(data)


@pytest.mark.parametrize("name", CRITERIA.names())
def test_criterion_scores_every_filter_finitely_deterministically_and_leaves_the_model(name):
    config, model, batches = _model()
    units = [u.name for u in SPACE.units(config)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    criterion = make_criterion(name)
    assert isinstance(criterion, FilterCriterion) and criterion.name == name
    if not criterion.needs_data:

        def batches():  # noqa: F811
            raise AssertionError("a criterion without data drew batches")

    scores = criterion.scores(SPACE, model, units, batches)
    assert set(scores) == set(units)
    for unit in SPACE.units(config):
        s = scores[unit.name]
        assert s.shape == (unit.width,) and torch.isfinite(s).all() and (s >= 0).all()
    again = make_criterion(name).scores(SPACE, model, units, batches)
    assert all(torch.equal(scores[u], again[u]) for u in units)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", CRITERIA.names())
def test_a_dead_filter_scores_lowest_and_is_pruned_first(name):
    """A filter whose BatchNorm drives every output to -10 (ReLU and h-swish give exactly 0):
    no other filter of its unit scores lower, and pruning one filter removes it."""
    config, model, batches = _model()
    unit = SPACE.units(config)[1]
    bn = SPACE.unit_output(model, unit.name).bn
    dead = 5
    with torch.no_grad():
        bn.weight[dead], bn.bias[dead] = 0.0, -10.0
    scores = make_criterion(name).scores(SPACE, model, [unit.name], batches)[unit.name]
    assert scores[dead] == scores.min()
    others = torch.cat([scores[:dead], scores[dead + 1 :]])
    assert (others > scores[dead]).sum() >= unit.width // 2  # not a constant score


def _unit_activations(model, unit: str, batches, with_grad: bool):
    out, acts = [], {}
    h = SPACE.unit_output(model, unit).register_forward_hook(
        lambda _m, _i, o: acts.__setitem__("a", o)
    )
    for x, y in batches():
        logits = model(x)
        g = None
        if with_grad:
            g = torch.autograd.grad(
                torch.nn.functional.cross_entropy(logits, y, reduction="sum"), acts["a"]
            )[0]
        out.append((acts["a"].detach(), g))
    h.remove()
    return out


def test_apoz_is_one_minus_the_share_of_off_activations_per_image():
    config, model, batches = _model()
    model.eval()
    unit = SPACE.units(config)[2].name
    got = make_criterion("apoz").scores(SPACE, model, [unit], batches)[unit]
    with torch.no_grad():
        acts = torch.cat([a for a, _ in _unit_activations(model, unit, batches, False)])
    expected = 1 - (acts <= 0).float().mean(dim=(0, 2, 3))
    assert torch.allclose(got, expected, atol=1e-6)
    assert 0 < got.min() and got.max() <= 1


def test_taylor_is_the_mean_absolute_activation_times_gradient_per_image():
    config, model, batches = _model()
    model.eval()
    unit = SPACE.units(config)[-1].name
    got = make_criterion("taylor").scores(SPACE, model, [unit], batches)[unit]
    pairs = _unit_activations(model, unit, batches, True)
    expected = torch.cat([(a * g).mean(dim=(2, 3)).abs() for a, g in pairs]).mean(dim=0)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-9)
    model.zero_grad(set_to_none=True)
