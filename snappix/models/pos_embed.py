"""Position tables: fixed sin-cos (VideoMAE), learned, and resampling to a new token grid.

VideoMAE (and SnapPix, which inherits it) uses the 1-D Transformer table of Vaswani et al. (2017)
over the *flat* token index ``i = t * H' * W' + h * W' + w``:

    PE[i, 2k]   = sin(i / 10000^(2k / D))
    PE[i, 2k+1] = cos(i / 10000^(2k / D))

(for odd D the last column is a sine). It is not a factorised 3-D table; the grid structure enters
only through the raster order.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

__all__ = ["sincos_table", "learned_table", "interpolate_pos_embed"]


def sincos_table(num_positions: int, dim: int) -> torch.Tensor:
    """Fixed sinusoid table, VideoMAE's ``get_sinusoid_encoding_table`` semantics.

    Returns:
        float32 ``(1, num_positions, dim)``, values in [-1, 1], computed in float64 then cast.

    Raises:
        ValueError: ``num_positions < 1`` or ``dim < 1``.
    """
    if num_positions < 1 or dim < 1:
        raise ValueError(f"num_positions and dim must be >= 1, got {num_positions}, {dim}")
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2.0 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float().unsqueeze(0)


def learned_table(num_positions: int, dim: int, std: float = 0.02) -> nn.Parameter:
    """Learnable table ``(1, num_positions, dim)`` float32, truncated-normal init (std 0.02, cut at +-2)."""
    table = nn.Parameter(torch.zeros(1, num_positions, dim))
    trunc_normal_(table, std=std)
    return table


def interpolate_pos_embed(table: torch.Tensor, old_grid: Sequence[int], new_grid: Sequence[int],
                          mode: str = "bicubic") -> torch.Tensor:
    """Resample a position table from token grid ``old_grid`` to ``new_grid``.

    For when the number of frames or the frame size changes between pretraining and finetuning (e.g.
    loading a checkpoint of a learned table). A *fixed* sin-cos table should simply be rebuilt with
    :func:`sincos_table` for the new token count.

    Args:
        table: ``(1, N, D)`` or ``(N, D)`` with ``N = T' * H' * W'`` in ``(t, h, w)`` raster order; any float dtype.
        old_grid: ``(T', H', W')`` of ``table``.
        new_grid: ``(T'', H'', W'')``.
        mode: ``"bicubic"`` -> bicubic over ``(h, w)`` per time slot, then linear over t if T changes
            (what VideoMAE's finetuning does for the spatial part); ``"trilinear"`` -> trilinear over
            ``(t, h, w)``. ``align_corners=False`` in both.

    Returns:
        Table of shape ``(1, N'', D)`` (or ``(N'', D)``, matching the input rank), same dtype and device.
        When ``new_grid == old_grid`` the input values are returned unchanged (a clone).

    Raises:
        ValueError: ``N != prod(old_grid)``, grids that are not 3 positive ints, a bad rank or ``mode``.
    """
    old, new = tuple(int(v) for v in old_grid), tuple(int(v) for v in new_grid)
    if len(old) != 3 or len(new) != 3 or min(old + new) < 1:
        raise ValueError(f"grids must be (T', H', W') of positive ints, got {old_grid} -> {new_grid}")
    if mode not in ("bicubic", "trilinear"):
        raise ValueError(f"mode must be 'bicubic' or 'trilinear', got {mode!r}")
    if table.dim() not in (2, 3) or (table.dim() == 3 and table.shape[0] != 1):
        raise ValueError(f"table must be (1, N, D) or (N, D), got shape {tuple(table.shape)}")
    flat = table.reshape(-1, table.shape[-1])
    n, d = flat.shape
    if n != old[0] * old[1] * old[2]:
        raise ValueError(f"table has {n} positions but old_grid {old} has {old[0] * old[1] * old[2]}")
    if new == old:
        return table.clone()
    grid = flat.float().reshape(*old, d).permute(3, 0, 1, 2).unsqueeze(0)  # (1, D, T, H, W)
    if mode == "trilinear":
        grid = F.interpolate(grid, size=new, mode="trilinear", align_corners=False)
    else:
        t = old[0]
        frames = grid[0].permute(1, 0, 2, 3)  # (T, D, H, W)
        frames = F.interpolate(frames, size=new[1:], mode="bicubic", align_corners=False)
        grid = frames.permute(1, 0, 2, 3).unsqueeze(0)  # (1, D, T, H'', W'')
        if new[0] != t:
            grid = F.interpolate(grid, size=new, mode="trilinear", align_corners=False)  # linear in t only
    out = grid[0].permute(1, 2, 3, 0).reshape(-1, d).to(table.dtype)
    return out.unsqueeze(0) if table.dim() == 3 else out
