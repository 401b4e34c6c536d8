"""Within-fixation prediction at conv5, PixPro-style (Saccade-VSSL, Lai et al., IEEE TCSVT 2023,
https://doi.org/10.1109/TCSVT.2023.3301698; pixel propagation of Xie et al., "Propagate Yourself", CVPR 2021,
https://arxiv.org/abs/2011.10043). See docs/methods/saccade.md, "Objectives".

A video contributes ``2 * focus_num`` clips in the order ``[A_0 .. A_{n-1}, B_0 .. B_{n-1}]`` (clip B of a
fixation starts half a fixation after clip A). With ``P`` a ``1 x 1 x 1`` convolution applied to the conv5 maps:

* ``F_A`` = the projected A maps of one video stacked along time, ``(C, n * T', H', W')`` (fixation-major);
  ``F_B`` likewise;
* ``prop(F)``: values ``V = L2norm_c(Conv1x1(F))``, similarities ``S_ij = max(cos(F_i, F_j), c) ** p`` over all
  ``L = n T' H' W'`` positions (294 at 3 x 2 x 7 x 7), output ``y_i = sum_j S_ij V_j`` (``pro_p`` = 1 for R3D and
  4 for R(2+1)D, ``pro_clamp_value`` c = 0);
* ``L_pred = (L1(prop(F_B), sg(F_A)) + L1(prop(F_A), sg(F_B))) / 2`` (mean absolute error; ``sg`` = stop
  gradient: the targets are the online network's own features, there is no momentum encoder).

The trainable part (``P`` and the value convolution) is :class:`PixProHead`, a submodule of the trained model
(the engine optimises model parameters only); :class:`PixProLoss` holds nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["propagate", "split_views", "PixProHead", "PixProLoss"]


def propagate(feat: torch.Tensor, value: torch.Tensor, p: float = 1.0, clamp: float = 0.0) -> torch.Tensor:
    """Pixel propagation ``y_i = sum_j max(cos(f_i, f_j), clamp) ** p * v_j / |v_j|``.

    Args:
        feat: ``(B, C, T, H, W)`` features whose cosine similarities weigh the propagation.
        value: ``(B, C_v, T, H, W)`` values (normalised here along channels).
        p: exponent (> 0). For ``p < 1`` a 1e-6 is added to the clamped similarities first (a zero to a
            fractional power has no finite gradient), as the reference does.
        clamp: lower bound of the similarities (0 keeps only positive ones).

    Returns:
        ``(B, C_v, T, H, W)``, the dtype of ``value``.
    """
    b, c, t, h, w = feat.shape
    f = F.normalize(feat.flatten(2), dim=1)  # (B, C, L)
    v = F.normalize(value.flatten(2), dim=1)
    sim = torch.bmm(f.transpose(1, 2), f).clamp(min=clamp)  # (B, L, L), sim[i, j] = cos(f_i, f_j)
    if p < 1:
        sim = sim + 1e-6
    sim = sim ** p
    out = torch.bmm(v, sim.transpose(1, 2))  # out[:, :, i] = sum_j sim[i, j] v[:, :, j]
    return out.reshape(b, value.shape[1], t, h, w)


def split_views(maps: torch.Tensor, clips_per_video: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B * 2n, C, T, H, W)`` maps in the order ``[A_0..A_{n-1}, B_0..B_{n-1}]`` per video ->
    ``F_A``, ``F_B`` of shape ``(B, C, n * T, H, W)`` (the n clips stacked along time, fixation-major).

    Raises:
        ValueError: an odd ``clips_per_video``, or a batch that is not a multiple of it.
    """
    n2 = clips_per_video
    if n2 < 2 or n2 % 2 or maps.shape[0] % n2:
        raise ValueError(f"PixPro needs an even number of clips per video (A clips then B clips) and a batch of "
                         f"whole videos; got clips_per_video={n2} and {maps.shape[0]} clips")
    _, c, t, h, w = maps.shape
    grouped = maps.reshape(-1, n2, c, t, h, w)

    def stack(part: torch.Tensor) -> torch.Tensor:
        return part.permute(0, 2, 1, 3, 4, 5).reshape(part.shape[0], c, -1, h, w)

    return stack(grouped[:, : n2 // 2]), stack(grouped[:, n2 // 2:])


class PixProHead(nn.Module):
    """The trainable part of the prediction: projector ``P`` and value convolution (both ``1 x 1 x 1``, with bias).

    Args:
        dim: conv5 width (512).
        pro_p: similarity exponent ``p`` (R3D 1, R(2+1)D 4).
        pro_clamp_value: similarity lower bound (0).
        clips_per_video: ``2 * focus_num`` (6).

    ``forward(conv5)``: conv5 maps ``(B * clips_per_video, dim, T', H', W')`` in the clip layout of
    :func:`split_views` -> ``{"pix_target_a": F_A, "pix_target_b": F_B, "pix_pred_a": prop(F_B),
    "pix_pred_b": prop(F_A)}``, each ``(B, dim, n T', H', W')``.
    """

    def __init__(self, dim: int = 512, pro_p: float = 1.0, pro_clamp_value: float = 0.0,
                 clips_per_video: int = 6) -> None:
        super().__init__()
        if pro_p <= 0:
            raise ValueError(f"pro_p must be > 0, got {pro_p}")
        self.projector = nn.Conv3d(dim, dim, 1)
        self.value = nn.Conv3d(dim, dim, 1)
        self.pro_p, self.pro_clamp_value, self.clips_per_video = float(pro_p), float(pro_clamp_value), clips_per_video

    def prop(self, feat: torch.Tensor) -> torch.Tensor:
        """``prop(F)`` (module docstring) of ``(B, dim, T, H, W)`` features."""
        return propagate(feat, self.value(feat), self.pro_p, self.pro_clamp_value)

    def forward(self, conv5: torch.Tensor) -> dict[str, torch.Tensor]:
        fa, fb = split_views(self.projector(conv5), self.clips_per_video)
        return {"pix_target_a": fa, "pix_target_b": fb, "pix_pred_a": self.prop(fb), "pix_pred_b": self.prop(fa)}


class PixProLoss:
    """``loss, metrics = PixProLoss()(outputs, batch)``: ``(L1(pix_pred_a, sg(pix_target_a)) + L1(pix_pred_b,
    sg(pix_target_b))) / 2`` in float32 (``batch`` unused). Metrics: ``{"pred_loss": float}``.

    Raises:
        KeyError: one of the four outputs of :class:`PixProHead` missing; ValueError: mismatched shapes.
    """

    def __call__(self, outputs: dict, batch: dict | None = None) -> tuple[torch.Tensor, dict]:
        parts = []
        for side in ("a", "b"):
            pred, target = outputs[f"pix_pred_{side}"], outputs[f"pix_target_{side}"]
            if pred.shape != target.shape:
                raise ValueError(f"pix_pred_{side} {tuple(pred.shape)} != pix_target_{side} {tuple(target.shape)}")
            parts.append(F.l1_loss(pred.float(), target.detach().float()))
        loss = (parts[0] + parts[1]) / 2
        return loss, {"pred_loss": loss.item()}
