"""Knowledge distillation in fine-tuning (``export.distill``, ``netadapt.distill``): the loss is
Hinton's mix, the teacher resolves from the spec, and distilling moves the student to it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.errors import SpecError
from nas.jobs import distillation, subnet_evaluator
from nas.paths import assets_root
from nas.spec import spec_from_dict
from nas.supernet import Distillation, finetune
from tests.conftest import tiny_spec_dict

SHIPPED = assets_root() / "checkpoints" / "ofa_mbv3_small_fashion_mnist" / "supernet.pt"


def test_loss_is_alpha_ce_plus_t2_kl_of_teacher_over_student_and_trains_the_student_only():
    torch.manual_seed(0)
    teacher = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    student = torch.randn(8, 3, requires_grad=True)
    loss = Distillation(teacher, alpha=0.3, temperature=2.0).loss(student, x, y, 0.0)
    p_t = F.softmax(teacher(x).detach() / 2, dim=1)
    kl = (p_t * (p_t.log() - F.log_softmax(student / 2, dim=1))).sum(1).mean()
    want = 0.3 * F.cross_entropy(student, y) + 0.7 * 4 * kl
    assert loss.item() == pytest.approx(want.item())
    loss.backward()
    assert student.grad is not None and teacher.weight.grad is None
    same = teacher(x).detach()  # a student that already answers as the teacher: no KL term
    assert float(Distillation(teacher, alpha=0.0).loss(same, x, y, 0.0)) == pytest.approx(
        0, abs=1e-6
    )
    ce = F.cross_entropy(student, y, label_smoothing=0.1).item()
    only_ce = Distillation(teacher, alpha=1.0).loss(student.detach(), x, y, 0.1)
    assert only_ce.item() == pytest.approx(ce)


def _spec(small_fmnist, tmp_path, **distill):
    data = tiny_spec_dict(small_fmnist, tmp_path, checkpoint=str(SHIPPED))
    data["export"] = {"finetune_epochs": 1, "distill": distill}
    return spec_from_dict(data)


def test_spec_names_the_bad_distill_field(small_fmnist, tmp_path):
    with pytest.raises(SpecError, match=r"export\.distill\.alpha = 2"):
        _spec(small_fmnist, tmp_path, alpha=2)
    with pytest.raises(SpecError, match=r"netadapt\.distill\.temperature = 0"):
        spec_from_dict(
            {"name": "x", "netadapt": {"budget_ratio": 0.5, "distill": {"temperature": 0}}}
        )
    with pytest.raises(SpecError, match=r"export\.distill\.teachr"):
        _spec(small_fmnist, tmp_path, teachr="largest")


@pytest.mark.slow
def test_distilling_from_the_largest_subnet_moves_the_smallest_towards_it(small_fmnist, tmp_path):
    spec = _spec(small_fmnist, tmp_path, teacher="largest", alpha=0.0, temperature=2.0)
    space, evaluator = subnet_evaluator(spec)
    distill = distillation(spec, "export", evaluator)
    assert not any(p.requires_grad for p in distill.teacher.parameters())
    config = space.smallest()
    x = evaluator.dataset.preprocessing.apply(evaluator.dataset.test.images[:300])
    x = F.interpolate(x, size=(config.resolution,) * 2, mode="bilinear", align_corners=False)

    def gap(model) -> float:  # KL(teacher || student) on test images neither trained on
        with torch.no_grad():
            return float(
                F.kl_div(
                    F.log_softmax(model(x), 1),
                    F.log_softmax(distill.teacher(x), 1),
                    log_target=True,
                    reduction="batchmean",
                )
            )

    student = evaluator.subnet(config)
    before = gap(student)
    finetune(student, evaluator.dataset, config.resolution, 1, lr=0.01, batch_size=50,
             distill=distill)  # fmt: skip
    assert gap(student) < 0.8 * before, (before, gap(student))

    # a teacher from a file: an exported program, answering as the module it was exported from;
    # a pickled module (torch.save: unpickling runs code), a state dict or a bogus name is one
    # clear error
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(distill.teacher, (x[:2],), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "teacher.pt2")
    file_spec = _spec(small_fmnist, tmp_path, teacher=str(tmp_path / "teacher.pt2"))
    from_file = distillation(file_spec, "export", evaluator)
    assert isinstance(from_file.teacher, torch.nn.Module)
    with torch.no_grad():
        assert torch.allclose(from_file.teacher(x[:8]), distill.teacher(x[:8]), atol=1e-5)
    logits, labels = student(x[:8]), evaluator.dataset.test.labels[:8]
    same = Distillation(distill.teacher, alpha=from_file.alpha, temperature=from_file.temperature)
    assert torch.allclose(  # the same loss from the file as from the module
        from_file.loss(logits, x[:8], labels, 0.0), same.loss(logits, x[:8], labels, 0.0)
    )
    torch.save(distill.teacher, tmp_path / "pickled.pt")
    torch.save(distill.teacher.state_dict(), tmp_path / "weights.pt")
    for name in ("pickled.pt", "weights.pt"):
        with pytest.raises(
            SpecError, match=rf"export\.distill\.teacher: .*{name} is not an exported program"
        ):
            distillation(
                _spec(small_fmnist, tmp_path, teacher=str(tmp_path / name)), "export", evaluator
            )
    with pytest.raises(SpecError, match=r"export\.distill\.teacher = 'biggest' is neither"):
        distillation(_spec(small_fmnist, tmp_path, teacher="biggest"), "export", evaluator)
