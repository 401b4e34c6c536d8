"""A frozen image teacher's CLS attention, the score of attention-guided masking (UMT / VideoMamba).

VideoMamba's masked pretraining (``docs/methods/videomamba.md``, after Li et al., "Unmasked Teacher", ICCV 2023)
applies an image ViT teacher to every frame of the full clip, takes the **last block's attention from
the CLS token to the patches, averaged over heads**, and draws each frame's visible tokens with
probability proportional to it (:func:`snappix.masking.attention.attention_guided_mask`).

:func:`cls_attention` does this for a timm ``VisionTransformer`` with a class token: a forward pre-hook on
the last block's ``attn`` captures that module's input (the normed residual stream, ``norm1(x)`` in a
pre-LN block), the forward stops there, and the CLS row of ``softmax(q k^T * scale)`` is recomputed from
``attn.qkv`` (and ``attn.q_norm`` / ``attn.k_norm`` when present). No timm private attention internals
(fused or not) are relied on, and the last block's MLP and the head are never run.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["cls_attention"]


class _Captured(Exception):
    """Raised by the hook to stop the teacher's forward once the last attention's input is known."""

    def __init__(self, x: torch.Tensor):
        super().__init__("captured")
        self.x = x


def _cls_row(attn: nn.Module, x: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """CLS-to-patch attention probabilities of one timm ``Attention`` on its input ``x (B, N, D)``,
    averaged over heads: float32 ``(B, N - num_prefix)``."""
    b, n, _ = x.shape
    heads = int(attn.num_heads)
    qkv = attn.qkv(x)
    head_dim = int(getattr(attn, "head_dim", qkv.shape[-1] // (3 * heads)))
    q, k, _ = qkv.reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, hd)
    q_norm, k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
    if q_norm is not None:
        q = q_norm(q)
    if k_norm is not None:
        k = k_norm(k)
    scale = float(getattr(attn, "scale", head_dim ** -0.5))
    logits = (q[:, :, :1].float() * scale) @ k.float().transpose(-2, -1)  # (B, heads, 1, N): the CLS query
    probs = logits.softmax(dim=-1)[:, :, 0, num_prefix:]  # (B, heads, N - num_prefix)
    return probs.mean(dim=1)


@torch.no_grad()
def cls_attention(vit: nn.Module, frames: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Per-frame CLS-to-patch attention of an image ViT teacher (UMT / VideoMamba §4.2 mask score).

    Args:
        vit: timm ``VisionTransformer`` with a class token (``vit.cls_token``, at position 0) and
            ``vit.blocks[-1].attn`` a timm ``Attention`` (``qkv``, ``num_heads``, ``scale``). Put a frozen
            teacher in evaluation mode first (``vit.eval()``; dropout before the last block would
            otherwise be active).
        frames: float ``(B, C, T, H, W)``, already normalised the way the teacher expects, ``H, W`` its
            image size. ``C = 1`` is repeated to the teacher's 3 input channels (grey clips).
        batch_size: frames per teacher forward (None: all ``B * T`` at once).

    Returns:
        float32 ``(B, T, H' * W')`` on ``frames``' device: for every frame, the last block's attention
        probabilities from the CLS query to the ``H' * W'`` patch tokens (row-major), averaged over heads.
        Non-negative; each row sums to at most 1 (the rest of the softmax mass is on the prefix tokens:
        CLS and register tokens, ``vit.num_prefix_tokens``). Feed it to
        :func:`snappix.masking.attention.attention_guided_mask` (one teacher frame per student slot).

    Raises:
        ValueError: ``frames`` not 5-D, or a channel count the teacher cannot take.
        TypeError: a model without a class token or without ``blocks[-1].attn.qkv``.
    """
    if frames.dim() != 5:
        raise ValueError(f"frames must be (B, C, T, H, W), got shape {tuple(frames.shape)}")
    if getattr(vit, "cls_token", None) is None or not hasattr(vit, "blocks") or len(vit.blocks) == 0:
        raise TypeError("cls_attention needs a timm VisionTransformer with a class token (cls_token) and blocks")
    attn = getattr(vit.blocks[-1], "attn", None)
    if attn is None or not hasattr(attn, "qkv") or not hasattr(attn, "num_heads"):
        raise TypeError("the teacher's last block has no timm Attention with a fused qkv projection")
    b, c, t, h, w = frames.shape
    proj = getattr(getattr(vit, "patch_embed", None), "proj", None)
    in_chans = getattr(proj, "in_channels", c)
    x = frames.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if c != in_chans:
        if c != 1:
            raise ValueError(f"frames have {c} channels, the teacher takes {in_chans}")
        x = x.expand(-1, in_chans, -1, -1)
    num_prefix = int(getattr(vit, "num_prefix_tokens", 1))

    def hook(module, args, kwargs):
        raise _Captured(args[0] if args else kwargs["x"])

    handle = attn.register_forward_pre_hook(hook, with_kwargs=True)
    rows = []
    try:
        for chunk in x.split(batch_size or x.shape[0]):
            try:
                vit.forward_features(chunk)
            except _Captured as cap:
                rows.append(_cls_row(attn, cap.x, num_prefix))
            else:  # pragma: no cover - a model that never calls its last attention
                raise TypeError("the teacher's forward_features never reached blocks[-1].attn")
    finally:
        handle.remove()
    scores = torch.cat(rows)
    return scores.reshape(b, t, scores.shape[-1])
