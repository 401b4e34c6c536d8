"""Clip <-> tubelet tokens, the pixel layout of MAE reconstruction targets and predictions.

Token order is ``(t, h, w)`` raster (w fastest), the order of :class:`~snappix.models.patch_embed.PatchEmbed3d`
and of the mask generators in :mod:`snappix.masking`. Inside a token the ``tubelet * p * p * C`` values
are laid out as ``(dt, dy, dx, c)`` with the channel fastest, i.e. value index
``((dt * p + dy) * p + dx) * C + c`` -- VideoMAE's ``'b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)'``.
For grey SnapPix clips (C = 1, tubelet 2, p = 8) that is 128 values: frame ``2t`` of the tubelet in the
first 64 (row-major 8x8), frame ``2t + 1`` in the last 64.
"""

from __future__ import annotations

import torch
from einops import rearrange

from snappix.models.patch_embed import token_grid

__all__ = ["patchify", "unpatchify"]


def patchify(video: torch.Tensor, tubelet_size: int, patch_size: int) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B, N, tubelet * p * p * C)``, ``N = T/tubelet * H/p * W/p``.

    Values are copied unchanged (any dtype); see the module docstring for the layout.

    Raises:
        ValueError: input not 5-D, or T / H / W not divisible by ``tubelet_size`` / ``patch_size``.
    """
    if video.dim() != 5:
        raise ValueError(f"patchify expects (B, C, T, H, W), got shape {tuple(video.shape)}")
    token_grid(video.shape[2], (video.shape[3], video.shape[4]), tubelet_size, patch_size)
    return rearrange(video, "b c (t dt) (h dy) (w dx) -> b (t h w) (dt dy dx c)",
                     dt=tubelet_size, dy=patch_size, dx=patch_size)


def unpatchify(tokens: torch.Tensor, tubelet_size: int, patch_size: int, grid: tuple[int, int, int],
               channels: int = 1) -> torch.Tensor:
    """Exact inverse of :func:`patchify`: ``(B, N, tubelet * p * p * C)`` -> ``(B, C, T, H, W)``.

    Args:
        tokens: ``(B, N, P)`` with ``N = T' * H' * W'`` and ``P = tubelet * p * p * channels``.
        grid: ``(T', H', W')`` token grid.
        channels: C.

    Raises:
        ValueError: ``tokens`` not 3-D, or N / P inconsistent with ``grid`` / sizes / ``channels``.
    """
    t, h, w = grid
    p_dim = tubelet_size * patch_size * patch_size * channels
    if tokens.dim() != 3 or tokens.shape[1] != t * h * w or tokens.shape[2] != p_dim:
        raise ValueError(f"unpatchify expects (B, {t * h * w}, {p_dim}) for grid {tuple(grid)}, tubelet "
                         f"{tubelet_size}, patch {patch_size}, {channels} channel(s); got {tuple(tokens.shape)}")
    return rearrange(tokens, "b (t h w) (dt dy dx c) -> b c (t dt) (h dy) (w dx)",
                     t=t, h=h, w=w, dt=tubelet_size, dy=patch_size, dx=patch_size, c=channels)
