"""Transformer layers of the video ViTs: multi-head self-attention and the pre-LN block.

The block follows ViT (Dosovitskiy et al., ICLR'21) as used by VideoMAE (Tong et al., NeurIPS'22),
VideoMAEv2 (Wang et al., CVPR'23) and SnapPix (Lin et al., DAC'25):

    x = x + DropPath(LS1(Attn(LN1(x))))
    x = x + DropPath(LS2(MLP(LN2(x))))

with LayerNorm eps 1e-6, a GELU MLP (timm ``Mlp``), optional layer scale (timm ``LayerScale``,
VideoMAE's ``init_values``) and stochastic depth (timm ``DropPath``).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerScale, Mlp, trunc_normal_
from torch import nn

__all__ = ["ATTN_IMPLS", "Attention", "Block", "LayerNorm", "init_weights", "set_attn_impl"]

ATTN_IMPLS = ("sdpa", "explicit")

#: LayerNorm with the eps every model here uses (1e-6, as VideoMAE / SnapPix).
LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class Attention(nn.Module):
    """Multi-head self-attention with VideoMAE's query/value bias.

    Args:
        dim: token width D (input and output).
        num_heads: number of heads h.
        qkv_bias: add learnable biases to the query and the value projections (``q_bias``, ``v_bias``,
            zero-initialised), as VideoMAE / SnapPix do. There is deliberately **no key bias**: a key bias
            adds ``q . b_k`` to every logit of a query row, a constant that the softmax cancels, so it
            would be a parameter without effect.
        head_dim: per-head width; default ``dim // num_heads``. The attention width is
            ``head_dim * num_heads``, which may be smaller than ``dim`` when ``num_heads`` does not
            divide it: SnapPix's super-tiny decoder has ``dim=128, num_heads=3`` -> head_dim 42 and
            attention width 126 (reproduced, so its checkpoints load); ``proj`` maps 126 back to 128.
        attn_drop: dropout on the attention probabilities (training only).
        proj_drop: dropout after the output projection.
        attn_impl: ``"sdpa"`` -> :func:`torch.nn.functional.scaled_dot_product_attention` (fused flash /
            memory-efficient kernels where available, never materialises the ``N x N`` matrix);
            ``"explicit"`` -> ``softmax(Q K^T / sqrt(head_dim)) V`` written out (the reference; for
            benchmarks and tests). Both compute the same function.

    Shapes:
        ``forward(x)``: ``x`` float ``(B, N, dim)`` -> ``(B, N, dim)``, same dtype.

    Raises:
        ValueError: ``attn_impl`` not in :data:`ATTN_IMPLS`, or ``head_dim < 1``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, head_dim: int | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, attn_impl: str = "sdpa") -> None:
        super().__init__()
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}")
        self.num_heads = num_heads
        self.head_dim = head_dim if head_dim is not None else dim // num_heads
        if self.head_dim < 1:
            raise ValueError(f"head_dim must be >= 1 (dim={dim}, num_heads={num_heads})")
        self.scale = self.head_dim ** -0.5
        self.attn_impl = attn_impl
        inner = self.head_dim * num_heads
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(inner))
            self.v_bias = nn.Parameter(torch.zeros(inner))
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(inner, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _qkv_bias(self) -> torch.Tensor | None:
        if self.q_bias is None:
            return None
        return torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = F.linear(x, self.qkv.weight, self._qkv_bias())
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, N, d)
        p = self.attn_drop if self.training else 0.0
        if self.attn_impl == "sdpa":
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=self.scale)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            x = F.dropout(attn, p) @ v
        x = x.transpose(1, 2).reshape(b, n, -1)
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, head_dim={self.head_dim}, attn_impl={self.attn_impl!r}"


class Block(nn.Module):
    """Pre-LN transformer block (ViT / VideoMAE).

    Args:
        dim: token width D.
        num_heads, qkv_bias, head_dim, attn_drop, attn_impl: see :class:`Attention`.
        mlp_ratio: MLP hidden width = ``int(dim * mlp_ratio)``.
        drop: dropout inside the MLP and after the attention projection.
        drop_path: stochastic-depth probability of this block (timm ``DropPath``).
        init_values: layer-scale initial value; ``None`` or 0 disables layer scale (SnapPix).

    Shapes:
        ``forward(x)``: ``(B, N, dim)`` -> ``(B, N, dim)``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 head_dim: int | None = None, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 init_values: float | None = None, attn_impl: str = "sdpa") -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, head_dim=head_dim, attn_drop=attn_drop,
                              proj_drop=drop, attn_impl=attn_impl)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


def init_weights(module: nn.Module, mode: str = "xavier") -> None:
    """Initialise one module in place (use with ``model.apply(partial(init_weights, mode=...))``).

    * ``nn.Linear``: ``"xavier"`` -> xavier-uniform weight (VideoMAE / SnapPix pretraining models);
      ``"trunc_normal"`` -> truncated normal, std 0.02 (ViT classifiers); bias 0 in both modes.
    * ``nn.LayerNorm``: weight 1, bias 0.
    * Anything else (Conv3d patch embedding, parameters owned directly by a module) is left alone.

    Raises:
        ValueError: unknown ``mode``.
    """
    if mode not in ("xavier", "trunc_normal"):
        raise ValueError(f"init mode must be 'xavier' or 'trunc_normal', got {mode!r}")
    if isinstance(module, nn.Linear):
        if mode == "xavier":
            nn.init.xavier_uniform_(module.weight)
        else:
            trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)



def set_attn_impl(model: nn.Module, attn_impl: str) -> int:
    """Switch every :class:`Attention` inside ``model`` to ``attn_impl`` (weights untouched).

    Returns:
        The number of attention modules switched.

    Raises:
        ValueError: ``attn_impl`` not in :data:`ATTN_IMPLS`.
    """
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}")
    count = 0
    for module in model.modules():
        if isinstance(module, Attention):
            module.attn_impl = attn_impl
            count += 1
    return count
