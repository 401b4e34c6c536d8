"""DistillationLoss (UMT / VideoMamba masked distillation): value range, which rows count, gradients, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snappix.objectives import DistillationLoss, build_objective

B, N, D = 2, 6, 8


def setup(seed: int = 0):
    """Teacher targets (B, 1 + N, D) unit rows; a mask hiding tokens {1, 4} and {0, 5}; the student rows
    equal to the teacher's at CLS + the visible tokens."""
    g = torch.Generator().manual_seed(seed)
    targets = F.normalize(torch.randn(B, 1 + N, D, generator=g), dim=-1)
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[0, [1, 4]] = True
    mask[1, [0, 5]] = True
    rows = [torch.cat([targets[b, :1], targets[b, 1:][~mask[b]]]) for b in range(B)]
    return targets, mask, torch.stack(rows)


def test_identical_features_give_zero_and_opposite_four():
    targets, mask, student = setup()
    loss_fn = DistillationLoss()
    loss, metrics = loss_fn(student, {"teacher_targets": targets, "encoder_mask": mask})
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert metrics["cos"] == pytest.approx(1.0, abs=1e-6) and metrics["loss"] == pytest.approx(0.0, abs=1e-6)
    loss, metrics = loss_fn(-student, {"teacher_targets": targets, "encoder_mask": mask})
    assert loss.item() == pytest.approx(4.0, abs=1e-5) and metrics["cos"] == pytest.approx(-1.0, abs=1e-6)


def test_scale_and_dtype_do_not_matter():
    targets, mask, student = setup()
    loss, _ = DistillationLoss()((3.0 * student).bfloat16(), {"teacher_targets": targets, "encoder_mask": mask})
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(0.0, abs=1e-2)


def test_matches_the_formula():
    targets, mask, _ = setup()
    student = torch.randn(B, 1 + N - 2, D)
    loss, metrics = DistillationLoss()(student, {"teacher_targets": targets, "encoder_mask": mask})
    expected = []
    for b in range(B):
        t = torch.cat([targets[b, :1], targets[b, 1:][~mask[b]]])
        expected.append(2 - 2 * F.cosine_similarity(student[b], t, dim=-1))
    torch.testing.assert_close(loss, torch.cat(expected).mean())
    assert metrics["cos"] == pytest.approx(1 - torch.cat(expected).mean().item() / 2, abs=1e-6)


def test_only_visible_tokens_and_cls_count():
    targets, mask, student = setup()
    loss_fn = DistillationLoss()
    base, _ = loss_fn(student, {"teacher_targets": targets, "encoder_mask": mask})
    hidden_changed = targets.clone()
    hidden_changed[0, 1 + 1] = -hidden_changed[0, 1 + 1]  # token 1 of sample 0 is hidden
    hidden_changed[1, 1 + 5] = F.normalize(torch.randn(D), dim=0)  # token 5 of sample 1 is hidden
    loss, _ = loss_fn(student, {"teacher_targets": hidden_changed, "encoder_mask": mask})
    assert loss.item() == pytest.approx(base.item(), abs=1e-7)
    visible_changed = targets.clone()
    visible_changed[1, 1 + 2] = -visible_changed[1, 1 + 2]  # token 2 of sample 1 is visible
    loss, _ = loss_fn(student, {"teacher_targets": visible_changed, "encoder_mask": mask})
    assert loss.item() == pytest.approx(4.0 / (B * (1 + N - 2)), abs=1e-5)
    cls_changed = targets.clone()
    cls_changed[0, 0] = -cls_changed[0, 0]
    loss, _ = loss_fn(student, {"teacher_targets": cls_changed, "encoder_mask": mask})
    assert loss.item() == pytest.approx(4.0 / (B * (1 + N - 2)), abs=1e-5)


def test_mask_of_other_shape_is_flattened():
    targets, mask, student = setup()
    loss, _ = DistillationLoss()(student, {"teacher_targets": targets, "encoder_mask": mask.reshape(B, 2, 3)})
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_the_student():
    targets, mask, _ = setup()
    student = torch.randn(B, 1 + N - 2, D, requires_grad=True)
    loss, _ = DistillationLoss()(student, {"teacher_targets": targets, "encoder_mask": mask})
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0
    assert not targets.requires_grad


def test_holds_no_parameters_and_build_objective():
    loss_fn = build_objective("distill", 2, 16)
    assert isinstance(loss_fn, DistillationLoss)
    assert not any(isinstance(v, torch.nn.Parameter) for v in vars(loss_fn).values())
    assert not isinstance(loss_fn, torch.nn.Module) or not list(loss_fn.parameters())


def test_errors():
    targets, mask, student = setup()
    loss_fn = DistillationLoss()
    with pytest.raises(ValueError, match="visible tokens"):  # one row too many
        loss_fn(torch.cat([student, student[:, :1]], dim=1), {"teacher_targets": targets, "encoder_mask": mask})
    with pytest.raises(ValueError, match="same B and D"):  # feature width
        loss_fn(student[..., :4], {"teacher_targets": targets, "encoder_mask": mask})
    with pytest.raises(ValueError, match="same B and D"):  # batch size
        loss_fn(student[:1], {"teacher_targets": targets, "encoder_mask": mask})
    with pytest.raises(ValueError, match="does not match teacher_targets"):  # mask over another grid
        loss_fn(student, {"teacher_targets": targets, "encoder_mask": torch.zeros(B, N + 1, dtype=torch.bool)})
    with pytest.raises(TypeError, match="bool"):
        loss_fn(student, {"teacher_targets": targets, "encoder_mask": mask.long()})
    unequal = mask.clone()
    unequal[0, 0] = True
    with pytest.raises(ValueError, match="same number"):
        loss_fn(student, {"teacher_targets": targets, "encoder_mask": unequal})
    with pytest.raises(ValueError, match=r"\(B, 1 \+ N_vis, D\)"):
        loss_fn(student[0], {"teacher_targets": targets, "encoder_mask": mask})
