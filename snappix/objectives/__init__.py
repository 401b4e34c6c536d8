"""Pretraining objectives: ``objective(outputs, batch) -> (loss, metrics)``, one module each.

* :class:`~snappix.objectives.pixel_mae.PixelMAELoss`: VideoMAE / VideoMAEv2 / SnapPix masked pixel
  reconstruction on per-tubelet normalised targets.
* :class:`~snappix.objectives.reconstruction.CodedReconstructionLoss`: SnapPix's reconstruction study
  (global-normalised targets, PSNR).
"""

from .pixel_mae import PixelMAELoss
from .reconstruction import CodedReconstructionLoss, psnr

__all__ = ["PixelMAELoss", "CodedReconstructionLoss", "psnr", "build_objective"]


def build_objective(task: str, tubelet_size: int, patch_size: int, normalize_target: bool = True):
    """``--task pretrain`` (masked pixel MAE) or ``--task reconstruction`` (SnapPix §4).

    Raises:
        ValueError: unknown task.
    """
    if task == "pretrain":
        return PixelMAELoss(tubelet_size, patch_size, normalize_target)
    if task == "reconstruction":
        return CodedReconstructionLoss(tubelet_size, patch_size)
    raise ValueError(f"unknown task {task!r}; valid: pretrain, reconstruction")


# Finetuning / evaluation: cross-entropy with label smoothing or mixup soft targets, top-1/top-5.
from .classification import ClassificationLoss, topk_accuracy  # noqa: E402

__all__ += ["ClassificationLoss", "topk_accuracy"]
