"""Video ViT encoder backbone (ViT on tubelet tokens; VideoMAE, Tong et al., NeurIPS'22).

One backbone serves the video MAE encoder (16 frames, tubelet 2), the SnapPix coded-image encoder
(1 coded frame, tubelet 1; SnapPix DAC'25 §3.2) and the classifiers built on them: tubelet embedding,
absolute position table (fixed sin-cos or learned), optional removal of hidden tokens, pre-LN blocks,
final LayerNorm. There is no cls token.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from snappix.models.layers import Block, LayerNorm, init_weights
from snappix.models.patch_embed import PatchEmbed3d, token_grid
from snappix.models.pos_embed import learned_table, sincos_table
from snappix.models.tokens import as_token_mask, select_tokens

__all__ = ["VideoViTEncoder", "run_blocks"]


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, grad_checkpointing: bool = False) -> torch.Tensor:
    """Apply ``blocks`` in order; with ``grad_checkpointing`` (and grad enabled) recompute activations in backward."""
    for blk in blocks:
        if grad_checkpointing and torch.is_grad_enabled():
            x = checkpoint(blk, x, use_reentrant=False)
        else:
            x = blk(x)
    return x


class VideoViTEncoder(nn.Module):
    """ViT encoder over the tubelet tokens of a clip (or of a coded image).

    Args:
        img_size: frame side (or ``(H, W)``) the model is built for, pixels.
        patch_size: spatial patch side p.
        tubelet_size: frames per token (1 for a coded image).
        num_frames: frames T of the input.
        in_chans: input channels C.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: ViT width / blocks / heads / MLP ratio /
            q,v bias (see :class:`~snappix.models.layers.Attention`).
        drop_path_rate: stochastic depth, linearly increasing from 0 to this over the blocks.
        init_values: layer-scale init (None / 0 = off).
        use_learnable_pos_emb: learned table (trunc-normal 0.02, a parameter) instead of the fixed
            VideoMAE sin-cos table (a non-persistent buffer: not in the state dict, rebuilt on construction).
        attn_impl: ``"sdpa"`` or ``"explicit"``.
        final_norm: apply the final LayerNorm (classifiers with mean pooling + ``fc_norm`` set False).
        weight_init: ``"xavier"`` (VideoMAE / SnapPix pretraining) or ``"trunc_normal"`` (classifiers)
            for the Linear layers; see :func:`~snappix.models.layers.init_weights`.

    Attributes:
        grid: token grid ``(T', H', W')``; ``num_patches = T' * H' * W'``.

    Raises:
        ValueError: sizes that are not multiples of the tubelet / patch size, bad ``attn_impl``.
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, tubelet_size: int = 2,
                 num_frames: int = 16, in_chans: int = 3, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.0,
                 init_values: float | None = None, use_learnable_pos_emb: bool = False, attn_impl: str = "sdpa",
                 final_norm: bool = True, weight_init: str = "xavier") -> None:
        super().__init__()
        self.grid = token_grid(num_frames, img_size, tubelet_size, patch_size)
        self.num_patches = self.grid[0] * self.grid[1] * self.grid[2]
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = PatchEmbed3d(patch_size, tubelet_size, in_chans, embed_dim)
        if use_learnable_pos_emb:
            self.pos_embed = learned_table(self.num_patches, embed_dim)
        else:
            self.register_buffer("pos_embed", sincos_table(self.num_patches, embed_dim), persistent=False)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i], init_values=init_values,
                  attn_impl=attn_impl)
            for i in range(depth)])
        self.norm = LayerNorm(embed_dim) if final_norm else nn.Identity()
        self.grad_checkpointing = False
        self.apply(partial(init_weights, mode=weight_init))

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Names (relative to this module) of parameters to exclude from weight decay: a learned ``pos_embed``."""
        return {"pos_embed"} if isinstance(self.pos_embed, nn.Parameter) else set()

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward (less memory, ~30 % more compute)."""
        self.grad_checkpointing = enable

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Embed, add positions, drop hidden tokens, run the blocks and the final norm.

        Args:
            x: float ``(B, C, T, H, W)`` matching the built ``num_frames`` / ``img_size`` (already
                normalised; a coded image has ``T = 1``).
            mask: optional bool ``(B, N)`` over the token grid, **True = hidden** (dropped); every sample
                must hide the same number of tokens. None keeps all N tokens.

        Returns:
            ``(B, N_visible, D)`` in ascending token order, dtype of the computation (autocast-aware).

        Raises:
            ValueError: input grid differs from the built one (rebuild with the new sizes, or resample a
                learned table with :func:`~snappix.models.pos_embed.interpolate_pos_embed`), a mask of
                the wrong shape or with unequal visible counts across samples.
            TypeError: a non-bool mask.
        """
        grid = self.patch_embed.grid(x)
        if grid != self.grid:
            raise ValueError(f"input {tuple(x.shape)} gives token grid {grid}, but the encoder was built for "
                             f"{self.grid}; build it for the new num_frames / img_size (a learned table can be "
                             f"resampled with interpolate_pos_embed)")
        x = self.patch_embed(x)
        x = x + self.pos_embed.to(x.dtype)
        if mask is not None:
            mask = as_token_mask(mask, x.shape[0], self.num_patches, "mask")
            x = select_tokens(x, ~mask, "mask (visible tokens)")
        x = run_blocks(self.blocks, x, self.grad_checkpointing)
        return self.norm(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`forward_features`."""
        return self.forward_features(x, mask)
