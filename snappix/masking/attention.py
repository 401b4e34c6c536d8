"""Attention-guided masking (UMT / VideoMamba ``--mask_type attention``; ``docs/methods/videomamba.md``).

Per frame, the visible tokens are drawn **without replacement** with probability proportional to a
per-token score (a teacher's CLS-to-patch attention averaged over heads, or saliency), so
high-score tokens are more likely to stay visible. Exactly ``N_vis = H'W' - int(mask_ratio * H'W')``
tokens per frame are visible (the reference draws a full weighted permutation and keeps its first
``N_vis``; drawing ``N_vis`` without replacement is the same distribution). The mask is per frame,
not a tube.

Scores are floored at ``eps`` times the frame's largest score (and at ``eps`` for an all-zero frame) so
that every frame has enough positive weights for the exact count.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .grid import resolve_rng, token_grid

__all__ = ["attention_guided_mask", "AttentionGuidedMasking"]


def _visible_per_frame(tokens_per_frame: int, mask_ratio: float) -> int:
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return tokens_per_frame - int(mask_ratio * tokens_per_frame)


def _floor(scores: torch.Tensor, eps: float) -> torch.Tensor:
    peak = scores.amax(dim=-1, keepdim=True)
    return torch.maximum(scores, torch.where(peak > 0, peak * eps, torch.full_like(peak, eps)))


@torch.no_grad()
def attention_guided_mask(scores: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None,
                          eps: float = 1e-6) -> torch.Tensor:
    """Attention-guided encoder mask on the device (UMT / VideoMamba §4.2).

    Args:
        scores: float ``(B, T', H' * W')`` non-negative per-token scores (e.g. CLS attention of a frozen
            teacher, averaged over heads), any device.
        mask_ratio: hidden fraction per frame (VideoMamba 0.8: 40 of 196 visible).
        generator: ``torch.Generator`` on the scores' device, for reproducible masks.
        eps: relative floor of the scores (see the module doc).

    Returns:
        bool ``(B, T' * H' * W')``, True = hidden; exactly ``H'W' - int(mask_ratio * H'W')`` visible per frame.

    Raises:
        ValueError: ``scores`` not 3-D, negative or non-finite scores, ``mask_ratio`` outside [0, 1).
    """
    if scores.dim() != 3:
        raise ValueError(f"scores must be (B, T', H'*W'), got shape {tuple(scores.shape)}")
    if not bool(torch.isfinite(scores).all()) or bool((scores < 0).any()):
        raise ValueError("scores must be finite and non-negative")
    b, t, s = scores.shape
    vis = _visible_per_frame(s, mask_ratio)
    weights = _floor(scores.float(), eps).reshape(b * t, s)
    keep = torch.multinomial(weights, vis, replacement=False, generator=generator)
    mask = torch.ones(b * t, s, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, keep, False)
    return mask.reshape(b, t * s)


class AttentionGuidedMasking:
    """Data-side attention-guided masking with numpy (scores from saliency, or stored teacher attention).

    ``__call__(scores, rng)``: float ``(T', H', W')`` (or ``(T', H' * W')``) non-negative scores ->
    bool ``(N,)``, True = hidden; exactly ``H'W' - int(mask_ratio * H'W')`` visible in every frame,
    drawn without replacement with probability proportional to the (floored) scores.

    Raises:
        ValueError: ``mask_ratio`` outside [0, 1), scores of the wrong size or negative.
    """

    def __init__(self, input_size: Sequence[int], mask_ratio: float, eps: float = 1e-6):
        self.t, self.h, self.w = token_grid(input_size)
        self.per_frame = self.h * self.w
        self.num_visible_per_frame = _visible_per_frame(self.per_frame, mask_ratio)
        self.num_masked = (self.per_frame - self.num_visible_per_frame) * self.t
        self.eps = eps

    def __call__(self, scores, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = resolve_rng(rng)
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if s.size != self.t * self.per_frame:
            raise ValueError(f"scores have {s.size} values, the token grid {self.t}x{self.h}x{self.w} has "
                             f"{self.t * self.per_frame}")
        if not np.isfinite(s).all() or (s < 0).any():
            raise ValueError("scores must be finite and non-negative")
        s = s.reshape(self.t, self.per_frame)
        mask = np.ones((self.t, self.per_frame), dtype=bool)
        for t in range(self.t):
            peak = s[t].max()
            w = np.maximum(s[t], peak * self.eps if peak > 0 else self.eps)
            keep = rng.choice(self.per_frame, self.num_visible_per_frame, replace=False, p=w / w.sum())
            mask[t, keep] = False
        return mask.reshape(-1)

    def __repr__(self) -> str:
        return (f"AttentionGuidedMasking(({self.t}, {self.h}, {self.w}), visible "
                f"{self.num_visible_per_frame}/frame)")
