"""3D tubelet patch embedding (VideoMAE, Tong et al., NeurIPS'22; ViViT "tubelet embedding").

A clip is cut into non-overlapping tubelets of ``tubelet_size x patch_size x patch_size`` voxels;
each is linearly projected to a D-dim token by a Conv3d whose kernel equals its stride. A coded
image ``(B, C, 1, H, W)`` is embedded with ``tubelet_size=1`` (SnapPix).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchEmbed3d", "token_grid"]


def token_grid(num_frames: int, img_size: int | tuple[int, int], tubelet_size: int,
               patch_size: int) -> tuple[int, int, int]:
    """Token grid ``(T', H', W') = (T / tubelet, H / patch, W / patch)`` of a clip.

    Raises:
        ValueError: a size that is not a positive multiple of its tubelet / patch size.
    """
    h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    for name, size, step in (("num_frames", num_frames, tubelet_size), ("height", h, patch_size),
                             ("width", w, patch_size)):
        if step < 1 or size < step or size % step:
            raise ValueError(f"{name} {size} is not a positive multiple of "
                             f"{'tubelet_size' if name == 'num_frames' else 'patch_size'} {step}")
    return num_frames // tubelet_size, h // patch_size, w // patch_size


class PatchEmbed3d(nn.Module):
    """Tubelet embedding: ``Conv3d(in_chans -> embed_dim, kernel = stride = (tubelet, p, p))``.

    Args:
        patch_size: spatial patch side p (pixels).
        tubelet_size: temporal tubelet length (frames); 1 for a coded image.
        in_chans: input channels C.
        embed_dim: token width D.

    Shapes:
        ``forward(x)``: float ``(B, C, T, H, W)`` -> ``(B, N, D)`` with ``N = T/tubelet * H/p * W/p``,
        tokens in ``(t, h, w)`` raster order (w fastest), the order :func:`snappix.models.patchify.patchify`
        uses.

    Raises:
        ValueError: input not 5-D, wrong channel count, or T / H / W not divisible by tubelet / p.
    """

    def __init__(self, patch_size: int = 16, tubelet_size: int = 2, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.patch_size, self.tubelet_size, self.in_chans = patch_size, tubelet_size, in_chans
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=k, stride=k)

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')`` for input ``x`` (checks its shape; see the class Raises)."""
        if x.dim() != 5:
            raise ValueError(f"PatchEmbed3d expects (B, C, T, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"PatchEmbed3d built for {self.in_chans} channels, got C={x.shape[1]}")
        return token_grid(x.shape[2], (x.shape[3], x.shape[4]), self.tubelet_size, self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.grid(x)
        return self.proj(x).flatten(2).transpose(1, 2)
