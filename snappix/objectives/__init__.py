"""Pretraining objectives: ``objective(outputs, batch) -> (loss, metrics)``, one module each.

* :class:`~snappix.objectives.pixel_mae.PixelMAELoss`: VideoMAE / VideoMAEv2 / SnapPix masked pixel
  reconstruction on per-tubelet normalised targets.
* :class:`~snappix.objectives.reconstruction.CodedReconstructionLoss`: SnapPix's reconstruction study
  (global-normalised targets, PSNR).
* :class:`~snappix.objectives.distillation.DistillationLoss`: masked feature distillation (UMT / VideoMamba
  §3.4): ``2 - 2 cos`` between the student's features and a frozen teacher's at CLS and the visible tokens.

Saccade-VSSL (import from the modules; docs/methods/saccade.md, "Objectives"):
:mod:`~snappix.objectives.instance_nce` (memory-bank NCE), :mod:`~snappix.objectives.pixpro` (within-fixation
prediction), :mod:`~snappix.objectives.prototypes` (PCL with faiss k-means) and :mod:`~snappix.objectives.saccade`
(the trained model with the objectives' heads, and the combined loss with its batch transform and epoch hook).
"""

from .distillation import DistillationLoss
from .pixel_mae import PixelMAELoss
from .reconstruction import CodedReconstructionLoss, psnr

__all__ = ["PixelMAELoss", "CodedReconstructionLoss", "DistillationLoss", "psnr", "build_objective"]


def build_objective(task: str, tubelet_size: int, patch_size: int, normalize_target: bool = True):
    """``--task pretrain`` (masked pixel MAE), ``--task reconstruction`` (SnapPix §4) or ``--task distill``
    (masked feature distillation, :class:`DistillationLoss`; the sizes are not used).

    Raises:
        ValueError: unknown task.
    """
    if task == "pretrain":
        return PixelMAELoss(tubelet_size, patch_size, normalize_target)
    if task == "reconstruction":
        return CodedReconstructionLoss(tubelet_size, patch_size)
    if task == "distill":
        return DistillationLoss()
    raise ValueError(f"unknown task {task!r}; valid: pretrain, reconstruction, distill")


# Finetuning / evaluation: cross-entropy with label smoothing or mixup soft targets, top-1/top-5.
from .classification import ClassificationLoss, topk_accuracy  # noqa: E402

__all__ += ["ClassificationLoss", "topk_accuracy"]
