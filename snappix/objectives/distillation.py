"""Masked feature distillation loss (Unmasked Teacher, Li et al., ICCV 2023, https://arxiv.org/abs/2303.16058;
VideoMamba's masked pretraining, Li et al., ECCV 2024, https://arxiv.org/abs/2403.06977, §3.4).

A frozen, unmasked teacher gives one feature per token of the grid plus a clip-level one; the student, which
saw only the visible tokens, predicts the teacher's features at the clip-level row and at the visible tokens.
The loss per row is ``2 - 2 cos(student, teacher)`` (the squared distance of the two unit vectors), averaged
over the rows compared, the clip-level one included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["DistillationLoss"]


class DistillationLoss:
    """``loss, metrics = DistillationLoss()(outputs, batch)``; holds no parameters.

    Args (call):
        outputs: the student's features, float ``(B, 1 + N_vis, D)`` (any float dtype; row 0 the clip-level
            token, rows 1.. the visible tokens in ascending token order).
        batch: ``teacher_targets`` float ``(B, 1 + N, D)`` (row 0 the teacher's clip-level token, rows 1.. every
            token of the grid in spatial-first order; L2-normalised) and ``encoder_mask`` bool ``(B, N)`` (or any
            ``(B, ...)`` with N trailing entries), True = hidden from the student.

    The teacher rows at ``[0] + [1 + i for visible i]`` (ascending, the student's order) are compared with the
    student's rows. Both sides are L2-normalised again (defensively) in float32.

    Returns:
        scalar float32 loss in [0, 4] (0: identical directions, 4: opposite), differentiable w.r.t. the
        student's features; metrics ``{"loss": float, "cos": float}`` (the mean cosine over the compared rows).

    Raises:
        ValueError: tensors that are not 3-D, a batch-size or feature-width mismatch, a mask whose token count is
            not the teacher's N, unequal visible counts across samples, or a student row count other than
            ``1 + N_vis``.
        TypeError: a non-bool mask.
        KeyError: ``teacher_targets`` or ``encoder_mask`` missing from the batch.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps

    def teacher_rows(self, targets: torch.Tensor, encoder_mask: torch.Tensor) -> torch.Tensor:
        """Teacher rows at CLS and the visible positions: ``(B, 1 + N_vis, D)`` float32, in the student's order.

        Raises:
            ValueError / TypeError: see the class docstring.
        """
        if targets.dim() != 3 or targets.shape[1] < 1:
            raise ValueError(f"teacher_targets must be (B, 1 + N, D), got {tuple(targets.shape)}")
        if not isinstance(encoder_mask, torch.Tensor) or encoder_mask.dtype != torch.bool:
            raise TypeError(f"encoder_mask must be a bool tensor (True = hidden), got "
                            f"{getattr(encoder_mask, 'dtype', type(encoder_mask).__name__)}")
        b, n = targets.shape[0], targets.shape[1] - 1
        if encoder_mask.dim() < 2 or encoder_mask.shape[0] != b or encoder_mask[0].numel() != n:
            raise ValueError(f"encoder_mask {tuple(encoder_mask.shape)} does not match teacher_targets "
                             f"{tuple(targets.shape)} (expected (B={b}, N={n}): one entry per teacher token row)")
        visible = ~encoder_mask.reshape(b, n).to(targets.device)
        counts = visible.sum(dim=1)
        if b > 1 and bool((counts != counts[0]).any()):
            raise ValueError(f"encoder_mask: every sample must keep the same number of tokens, got visible counts "
                             f"{counts.tolist()[:8]}")
        keep = torch.cat([visible.new_ones(b, 1), visible], dim=1)  # the clip-level row is always compared
        return targets[keep].reshape(b, -1, targets.shape[-1]).float()

    def __call__(self, outputs: torch.Tensor, batch: dict) -> tuple[torch.Tensor, dict]:
        student = outputs
        if not isinstance(student, torch.Tensor) or student.dim() != 3:
            raise ValueError(f"student features must be a (B, 1 + N_vis, D) tensor, got "
                             f"{tuple(student.shape) if isinstance(student, torch.Tensor) else type(student).__name__}")
        targets = batch["teacher_targets"]
        if targets.dim() != 3 or targets.shape[0] != student.shape[0] or targets.shape[-1] != student.shape[-1]:
            raise ValueError(f"teacher_targets {tuple(targets.shape)} do not match the student's features "
                             f"{tuple(student.shape)}: expected (B, 1 + N, D) with the same B and D")
        teacher = self.teacher_rows(targets, batch["encoder_mask"])
        if teacher.shape[1] != student.shape[1]:
            raise ValueError(f"the student gives {student.shape[1]} rows but the mask leaves {teacher.shape[1] - 1} "
                             f"visible tokens (+ 1 clip-level row): the student and the loss must see the same mask")
        s = F.normalize(student.float(), dim=-1, eps=self.eps)
        t = F.normalize(teacher.to(s.device), dim=-1, eps=self.eps)
        cos = (s * t).sum(dim=-1)  # (B, 1 + N_vis)
        loss = (2.0 - 2.0 * cos).mean()
        return loss, {"loss": loss.item(), "cos": cos.mean().item()}
