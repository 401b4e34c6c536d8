"""A frozen ViT teacher's last-block attention, the score of attention-guided masking (UMT / VideoMamba).

VideoMamba's masked pretraining (``docs/methods/videomamba.md``; Li et al. 2024,
https://arxiv.org/abs/2403.06977, after Li et al., "Unmasked Teacher", ICCV 2023,
https://arxiv.org/abs/2303.16058) applies an image ViT teacher to every frame of the full clip, takes the
**last block's attention from the CLS token to the patches, averaged over heads**, and draws each frame's
visible tokens with probability proportional to it (:func:`snappix.masking.attention.attention_guided_mask`).

Two entry points share one computation (a forward pre-hook on the last block's ``attn`` captures that
module's input, the normed residual stream ``norm1(x)`` of a pre-LN block, and ``softmax(q k^T * scale)`` is
recomputed from its fused ``qkv`` projection in float32, with ``q_norm`` / ``k_norm`` when present; no timm
private attention internals, fused or not, are relied on):

* :func:`cls_attention`: the CLS row only; the forward stops at the last attention (the last MLP and the
  head never run). For masks alone.
* :func:`forward_with_attention` / :func:`vit_attention_and_tokens`: the **whole** network runs once and
  returns both the attention scores and its output tokens, so a distillation teacher gives its mask score
  and its targets from a single forward (:mod:`snappix.teachers`).

Works on timm ``Attention`` (``qkv`` Linear with bias) and on snappix's
:class:`~snappix.models.layers.Attention` (``qkv`` without bias plus ``q_bias`` / ``v_bias``).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["QUERY_MODES", "attention_scores", "cls_attention", "forward_with_attention", "vit_attention_and_tokens"]

#: ``"cls"``: the row of query 0 (the class token); ``"mean"``: every key's column averaged over all queries
QUERY_MODES = ("cls", "mean")


class _Captured(Exception):
    """Raised by the hook to stop the teacher's forward once the last attention's input is known."""

    def __init__(self, x: torch.Tensor):
        super().__init__("captured")
        self.x = x


def _hook_input(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["x"]


def _check_attention(attn: nn.Module | None) -> nn.Module:
    if attn is None or getattr(attn, "qkv", None) is None or not hasattr(attn, "num_heads"):
        raise TypeError("the teacher's last block has no attention with a fused qkv projection (qkv, num_heads)")
    return attn


def _query_keys(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled queries and keys of ``attn`` on its input ``x (B, N, D)``: float32 ``(B, heads, N, head_dim)`` each.

    The projection runs in float32 with autocast off; ``q_norm`` / ``k_norm`` (when not the identity) run
    in the caller's precision on the projected values, as the module itself would apply them.
    """
    b, n, _ = x.shape
    heads = int(attn.num_heads)
    bias = attn._qkv_bias() if hasattr(attn, "_qkv_bias") else attn.qkv.bias  # snappix Attention: q / v bias
    with torch.autocast(x.device.type, enabled=False):
        qkv = F.linear(x.float(), attn.qkv.weight.float(), None if bias is None else bias.float())
    head_dim = int(getattr(attn, "head_dim", qkv.shape[-1] // (3 * heads)))
    q, k, _ = qkv.reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, hd)
    for name in ("q_norm", "k_norm"):
        norm = getattr(attn, name, None)
        if norm is not None and not isinstance(norm, nn.Identity):
            if name == "q_norm":
                q = norm(q.to(x.dtype)).float()
            else:
                k = norm(k.to(x.dtype)).float()
    scale = float(getattr(attn, "scale", head_dim ** -0.5))
    return q * scale, k


def attention_scores(attn: nn.Module, x: torch.Tensor, query: str = "cls", query_chunk: int = 256) -> torch.Tensor:
    """Attention probabilities of one attention module on its input, averaged over heads.

    Args:
        attn: a timm or snappix attention module (``qkv``, ``num_heads``; ``scale``, ``head_dim`` optional).
        x: its input, float ``(B, N, D)``.
        query: ``"cls"``: the row of query 0, ``softmax(q_0 k^T * scale)``; ``"mean"``: for each key, the
            probability it receives averaged over all N queries (computed ``query_chunk`` queries at a time,
            so the ``N x N`` matrix is never held at once).

    Returns:
        float32 ``(B, N)`` over **all** N tokens (prefix tokens included), non-negative; ``"cls"`` rows and
        ``"mean"`` rows each sum to 1.

    Raises:
        ValueError: an unknown ``query``.
    """
    if query not in QUERY_MODES:
        raise ValueError(f"query must be one of {QUERY_MODES}, got {query!r}")
    q, k = _query_keys(attn, x)
    with torch.autocast(x.device.type, enabled=False):
        if query == "cls":
            return (q[:, :, :1] @ k.transpose(-2, -1)).softmax(dim=-1)[:, :, 0].mean(dim=1)
        total = q.new_zeros(k.shape[:3])  # (B, heads, N): column sums
        for qs in q.split(query_chunk, dim=2):
            total += (qs @ k.transpose(-2, -1)).softmax(dim=-1).sum(dim=2)
        return total.mean(dim=1) / q.shape[2]


@torch.no_grad()
def forward_with_attention(attn: nn.Module, run: Callable[[], Any], query: str = "cls") -> tuple[torch.Tensor, Any]:
    """Run a network **once** and return its output together with the attention scores of ``attn``.

    A forward pre-hook on ``attn`` keeps that module's input while ``run()`` executes the whole network
    (under ``torch.no_grad``; the hook is removed afterwards, also on errors); the scores are then
    recomputed from the kept input with :func:`attention_scores` in float32.

    Args:
        attn: the attention module to read, usually the last block's (``blocks[-1].attn``).
        run: a callable with no arguments running the network, e.g. ``lambda: vit.forward_features(x)``.
        query: ``"cls"`` or ``"mean"`` (see :func:`attention_scores`).

    Returns:
        ``(scores, output)``: float32 ``(B, N)`` over all N tokens of ``attn``'s input, and whatever
        ``run()`` returned.

    Raises:
        TypeError: ``attn`` is not a fused-qkv attention, or ``run()`` called it not exactly once.
    """
    _check_attention(attn)
    seen: list[torch.Tensor] = []
    handle = attn.register_forward_pre_hook(lambda m, args, kwargs: seen.append(_hook_input(args, kwargs)),
                                            with_kwargs=True)
    try:
        output = run()
    finally:
        handle.remove()
    if len(seen) != 1:
        raise TypeError(f"the network called the hooked attention {len(seen)} times in one forward (expected once)")
    return attention_scores(attn, seen[0], query), output


def _check_vit(vit: nn.Module) -> nn.Module:
    """The last block's attention of a timm ViT with a class token (TypeError otherwise)."""
    if getattr(vit, "cls_token", None) is None or not hasattr(vit, "blocks") or len(vit.blocks) == 0:
        raise TypeError("the teacher must be a timm VisionTransformer with a class token (cls_token) and blocks")
    return _check_attention(getattr(vit.blocks[-1], "attn", None))


@torch.no_grad()
def vit_attention_and_tokens(vit: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One full forward of a timm ViT: CLS-to-patch attention of the last block and the final tokens.

    Args:
        vit: timm ``VisionTransformer`` with a class token at position 0 (in eval mode for a frozen teacher).
        images: float ``(N, C, H, W)``, normalised the way the teacher expects, at its image size.

    Returns:
        ``(attention, tokens)``: attention float32 ``(N, P)``, the last block's probabilities from the CLS
        query to the ``P = H' * W'`` patch tokens (row-major), averaged over heads, non-negative, each row
        summing to at most 1 (the rest is on the ``vit.num_prefix_tokens`` prefix tokens); tokens
        ``vit.forward_features(images)`` ``(N, prefix + P, D)`` (after the final ``norm``), in the
        computation's dtype.

    Raises:
        TypeError: a model without a class token or without ``blocks[-1].attn.qkv``.
    """
    attn = _check_vit(vit)
    scores, tokens = forward_with_attention(attn, lambda: vit.forward_features(images), "cls")
    return scores[:, int(getattr(vit, "num_prefix_tokens", 1)):], tokens


@torch.no_grad()
def cls_attention(vit: nn.Module, frames: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Per-frame CLS-to-patch attention of an image ViT teacher (UMT / VideoMamba §4.2 mask score).

    The forward stops at the last block's attention (cheaper than :func:`vit_attention_and_tokens` when
    only the mask is needed).

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
    attn = _check_vit(vit)
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
        raise _Captured(_hook_input(args, kwargs))

    handle = attn.register_forward_pre_hook(hook, with_kwargs=True)
    rows = []
    try:
        for chunk in x.split(batch_size or x.shape[0]):
            try:
                vit.forward_features(chunk)
            except _Captured as cap:
                rows.append(attention_scores(attn, cap.x, "cls")[:, num_prefix:])
            else:  # pragma: no cover - a model that never calls its last attention
                raise TypeError("the teacher's forward_features never reached blocks[-1].attn")
    finally:
        handle.remove()
    scores = torch.cat(rows)
    return scores.reshape(b, t, scores.shape[-1])
