"""Classification objective for finetuning and evaluation (VideoMAE / SnapPix recipe; ``docs/methods/snappix.md`` §5).

``ClassificationLoss(smoothing, mixup_active)`` is an objective in the engine's sense:
``objective(outputs, batch) -> (loss, {"loss", "acc1", "acc5"})``.

* Soft targets: when the batch carries ``target`` (``(B, K)`` float, rows summing to 1, added by
  :meth:`snappix.data.mixup.VideoMixup.batch_transform`), the loss is timm's
  ``SoftTargetCrossEntropy`` ``mean_b sum_k -target[b, k] * log_softmax(logits)[b, k]``. Label smoothing
  is then already inside the target (timm's ``mixup_target``), so ``smoothing`` is not applied again.
* Hard labels: otherwise ``batch["label"]`` (int ``(B,)``) with timm's ``LabelSmoothingCrossEntropy``
  ``(1 - s) * NLL + s * mean_k(-log_softmax)`` for ``smoothing = s > 0``, or plain cross-entropy for
  ``s = 0`` (the evaluation loss SnapPix reports; ``docs/methods/snappix.md`` §6).

Accuracy (percent, 0-100, top-k averaged over samples like VideoMAE's ``accuracy``) is measured
against a hard label per clip: ``batch["label"]`` without soft targets; with soft targets, the
**dominant label** ``argmax(target)`` -- the class with the largest mixing weight, i.e. the clip's own
label when ``lam >= 0.5`` and its partner's when the CutMix box covers more than half the frame
(``lam = 0.5`` ties resolve to the lower class index). Training accuracy under mixup is therefore an
indicator only; the reported numbers come from evaluation without mixup.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

__all__ = ["ClassificationLoss", "topk_accuracy"]


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, topk: tuple[int, ...] = (1, 5)) -> list[float]:
    """Percentage of rows whose label is among the ``k`` highest logits, for each ``k`` in ``topk``.

    Args:
        logits: ``(B, K)`` scores (any float dtype; only the ranking matters).
        labels: ``(B,)`` int class indices in ``[0, K)``.
        topk: the ``k`` values; ``k > K`` is clamped to ``K`` (always 100 %).

    Returns:
        One float per ``k``, in percent (0-100). An empty batch gives ``nan``.
    """
    if logits.shape[0] == 0:
        return [float("nan")] * len(topk)
    maxk = min(max(topk), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices  # (B, maxk), best first
    hit = top.eq(labels.reshape(-1, 1).to(top.device))
    return [hit[:, :min(k, maxk)].any(dim=1).float().mean().item() * 100.0 for k in topk]


class ClassificationLoss:
    """Cross-entropy objective over classifier logits, with soft (mixup) or label-smoothed hard targets.

    Args:
        smoothing: label smoothing for hard labels (SnapPix ``--smoothing 0.1``); ``0`` = plain
            cross-entropy, the evaluation loss. Ignored for soft targets (mixup smooths them itself).
        mixup_active: the training batches are mixed, so ``batch["target"]`` must be present; a batch
            without it raises instead of silently training on hard labels (a forgotten
            ``batch_transform``).

    Call:
        ``outputs``: logits ``(B, K)`` (or a mapping with ``"logits"``), any float dtype; the loss is
        computed in float32. ``batch``: ``label`` int ``(B,)``, optional ``target`` float ``(B, K)``.

    Returns:
        ``(loss, {"loss": float, "acc1": float, "acc5": float})``: scalar float32 loss tensor; accuracies
        in percent (see the module docstring for the label used under mixup).

    Raises:
        KeyError: no ``label`` (and no ``target``), or ``mixup_active`` without ``target``.
        ValueError: ``smoothing`` outside ``[0, 1)``; logits not 2-D; target shape not ``(B, K)``.
    """

    def __init__(self, smoothing: float = 0.1, mixup_active: bool = False):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)
        self.mixup_active = bool(mixup_active)
        self.soft_criterion = SoftTargetCrossEntropy()
        self.hard_criterion = (LabelSmoothingCrossEntropy(self.smoothing) if self.smoothing > 0
                               else torch.nn.CrossEntropyLoss())

    def __repr__(self) -> str:
        return f"ClassificationLoss(smoothing={self.smoothing}, mixup_active={self.mixup_active})"

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs
        if logits.dim() != 2:
            raise ValueError(f"ClassificationLoss expects logits (B, K), got shape {tuple(logits.shape)}")
        logits = logits.float()
        target = batch.get("target")
        if target is None and self.mixup_active:
            raise KeyError("ClassificationLoss(mixup_active=True) got a batch without 'target': pass the mixup's "
                           "batch_transform to the training loop (fit(..., batch_transform=mixup.batch_transform))")
        if target is not None:
            target = target.to(device=logits.device, dtype=torch.float32)
            if target.shape != logits.shape:
                raise ValueError(f"soft target shape {tuple(target.shape)} != logits shape {tuple(logits.shape)}")
            loss = self.soft_criterion(logits, target)
            hard = target.argmax(dim=1)  # the dominant label
        else:
            if "label" not in batch:
                raise KeyError("ClassificationLoss needs batch['label'] (int class indices) or batch['target']")
            hard = torch.as_tensor(batch["label"], device=logits.device).long().reshape(-1)
            loss = self.hard_criterion(logits, hard)
        with torch.no_grad():
            acc1, acc5 = topk_accuracy(logits.detach(), hard, (1, 5))
        return loss, {"loss": loss.item(), "acc1": acc1, "acc5": acc5}
