"""SnapPix's reconstruction study (``docs/methods/snappix.md`` §4): coded image -> full video, nothing masked.

The target is the raw clip normalised with the global K710+SSV2 mean/std (no per-tubelet
normalisation); the loss is plain MSE over all tubelets; the validation metric is the PSNR
``10 log10(1 / MSE)`` of the de-normalised prediction clamped to [0, 1] against the raw [0, 1] clip.
"""

from __future__ import annotations

import torch

from snappix.data.constants import K710_SSV2_MEAN, K710_SSV2_STD
from snappix.models.patchify import patchify


def psnr(pred: torch.Tensor, target: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """Per-sample PSNR in dB of ``pred`` vs ``target`` (same shape ``(B, ...)``, values in [0, max])."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10.0 * torch.log10(max_value ** 2 / mse)


class CodedReconstructionLoss:
    """``loss, metrics = CodedReconstructionLoss(tubelet, patch)(outputs, batch)``.

    Args (call): ``outputs['pred']`` float ``(B, N, P)`` for all ``N`` tubelets (``query_mask`` all
    True), ``batch['video']`` float ``(B, C, T, H, W)`` in [0, 1].

    Returns:
        MSE loss on globally normalised targets and ``{"loss", "psnr"}`` (PSNR in dB, mean over clips).
    """

    def __init__(self, tubelet_size: int = 2, patch_size: int = 8, mean: float = K710_SSV2_MEAN,
                 std: float = K710_SSV2_STD):
        self.tubelet_size, self.patch_size, self.mean, self.std = tubelet_size, patch_size, mean, std

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        pred = outputs["pred"].float()
        raw = patchify(batch["video"].float(), self.tubelet_size, self.patch_size)
        if "query_mask" in outputs and not bool(outputs["query_mask"].all()):
            raise ValueError("reconstruction expects every tubelet to be predicted (masks all False)")
        if pred.shape != raw.shape:
            raise ValueError(f"pred {tuple(pred.shape)} does not match the {tuple(raw.shape)} tubelets")
        loss = (pred - (raw - self.mean) / self.std).pow(2).mean()
        with torch.no_grad():
            recon = (pred * self.std + self.mean).clamp(0, 1)
            value = psnr(recon, raw).mean().item()
        return loss, {"loss": loss.item(), "psnr": value}
