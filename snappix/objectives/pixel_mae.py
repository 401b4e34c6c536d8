"""Masked pixel reconstruction loss (VideoMAE, NeurIPS'22; VideoMAE V2, CVPR'23; SnapPix §3.3).

Targets are tubelets of the *raw* clip (``tubelet x patch x patch x C`` values in the layout of
:func:`snappix.models.patchify.patchify`), taken at the positions the decoder predicts. With
``normalize_target`` each tubelet is normalised by its own mean and unbiased std,
``(v - mu) / (sigma + 1e-6)``. The loss is the per-token MSE averaged over the tokens that are both
predicted by the decoder and hidden from the encoder (VideoMAEv2 dual masking; with VideoMAE v1
the predicted set is exactly the hidden set).
"""

from __future__ import annotations

import torch

from snappix.models.patchify import patchify


class PixelMAELoss:
    """``loss, metrics = PixelMAELoss(tubelet, patch)(outputs, batch)``.

    Args (call):
        outputs: ``pred`` float ``(B, N_q, P)`` and ``query_mask`` bool ``(B, N)`` (True = predicted);
            ``pred[:, j]`` is the ``j``-th predicted position in ascending token index.
        batch: ``video`` float ``(B, C, T, H, W)`` (the raw clip, before any sensor) and
            ``encoder_mask`` bool ``(B, N)`` (True = hidden from the encoder).

    Returns:
        scalar loss (float32) and ``{"loss": float, "tokens_in_loss": float}`` (per clip).

    Raises:
        ValueError: shapes that do not match, or no token both hidden and predicted.
    """

    def __init__(self, tubelet_size: int = 2, patch_size: int = 8, normalize_target: bool = True, eps: float = 1e-6):
        self.tubelet_size, self.patch_size = tubelet_size, patch_size
        self.normalize_target, self.eps = normalize_target, eps

    def targets(self, video: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        """Tubelet targets ``(B, N_q, P)`` at the predicted positions (normalised if configured)."""
        tokens = patchify(video.float(), self.tubelet_size, self.patch_size)
        if tokens.shape[:2] != query_mask.shape:
            raise ValueError(f"video gives {tuple(tokens.shape[:2])} tokens but query_mask is {tuple(query_mask.shape)}")
        if self.normalize_target:
            mean = tokens.mean(dim=-1, keepdim=True)
            std = tokens.var(dim=-1, unbiased=True, keepdim=True).sqrt()
            tokens = (tokens - mean) / (std + self.eps)
        return tokens[query_mask].reshape(tokens.shape[0], -1, tokens.shape[-1])

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        pred, query = outputs["pred"], outputs["query_mask"]
        target = self.targets(batch["video"], query)
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} does not match target {tuple(target.shape)}")
        hidden = batch["encoder_mask"].to(query.device)[query].reshape(target.shape[:2]).float()
        if hidden.sum() == 0:
            raise ValueError("no token is both hidden from the encoder and predicted by the decoder")
        per_token = (pred.float() - target).pow(2).mean(dim=-1)
        loss = (per_token * hidden).sum() / hidden.sum()
        return loss, {"loss": loss.item(), "tokens_in_loss": hidden.sum().item() / hidden.shape[0]}
