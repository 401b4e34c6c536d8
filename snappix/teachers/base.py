"""The frozen teacher's interface: :class:`TeacherOutput`, :class:`FrozenTeacher`, :class:`TeacherLoadError`.

Masked distillation from an unmasked teacher (Li et al., "Unmasked Teacher", ICCV 2023,
https://arxiv.org/abs/2303.16058; VideoMamba's masked pretraining, Li et al. 2024,
https://arxiv.org/abs/2403.06977): a frozen network sees the **whole** clip once per batch and gives

* the mask score: its last block's attention per token slot (the student keeps the tokens it attends to);
* the targets: its clip-level token and every patch token, L2-normalised, that the student regresses.

Concrete teachers: :class:`~snappix.teachers.image.ImageTeacher` (a timm image ViT applied per frame, e.g.
OpenAI CLIP ViT-B/16) and :class:`~snappix.teachers.video.SnappixTeacher` (a snappix video ViT classifier
applied per tubelet). Build one with :func:`snappix.teachers.build_teacher`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from snappix.errors import UserError
from snappix.models.classifier_utils import check_clip

__all__ = ["TeacherLoadError", "TeacherOutput", "FrozenTeacher", "unit_targets"]


class TeacherLoadError(UserError, ValueError):
    """The teacher cannot be built: an unknown name, a missing / unreadable file, weights that do not fit
    the architecture, or a clip geometry the teacher was not trained for. The message names the file."""


@dataclass
class TeacherOutput:
    """What one teacher forward gives (see :class:`FrozenTeacher` for the grid ``(T', H', W')``).

    Attributes:
        attention: float32 ``(B, T', H' * W')``, non-negative: per token slot, the last block's attention to
            each patch token (image teacher: from the CLS query, averaged over heads, each slot summing to at
            most 1; snappix teacher: received from all queries, averaged over queries and heads).
        targets: float32 ``(B, 1 + T' * H' * W', D_t)``, every row of unit L2 norm: row 0 the clip-level
            token, rows ``1..`` every patch token in spatial-first order (slot 0 row-major, slot 1, ...).
    """

    attention: torch.Tensor
    targets: torch.Tensor


def unit_targets(clip_token: torch.Tensor, patch_tokens: torch.Tensor) -> torch.Tensor:
    """``[clip_token; patch_tokens]`` in float32 with every row L2-normalised.

    Args:
        clip_token: ``(B, D)``; patch_tokens: ``(B, L, D)`` (any float dtype).

    Returns:
        float32 ``(B, 1 + L, D)``, rows of unit norm (a zero row stays zero: ``F.normalize``'s eps 1e-12).
    """
    rows = torch.cat([clip_token.unsqueeze(1), patch_tokens], dim=1).float()
    return F.normalize(rows, dim=-1)


class FrozenTeacher(nn.Module):
    """Base of the frozen teachers: fixed clip geometry, no trainable parameter, always in eval mode.

    Subclasses implement :meth:`encode`; :meth:`forward` checks the clip, runs it under ``torch.no_grad``
    and assembles the :class:`TeacherOutput`. The caller wraps the call in ``torch.autocast`` for bf16;
    attention and targets come back in float32 either way. The module is never part of the student's state
    dict (the distillation method keeps it outside the trained model).

    Args:
        grid: ``(T', H', W')`` of the attention and the patch targets for the built geometry.
        dim: ``D_t``, the width of the targets.
        img_size: frame side in pixels of the clips it takes.
        num_frames: frames T of the clips it takes.
        in_chans: channels C of the clips it takes (1 grey or 3 RGB).
        chunk: frames (image teacher) or clips (video teacher) per network forward, to bound memory;
            None or 0: everything at once.

    Attributes:
        grid, dim, img_size, num_frames, in_chans, chunk: as given.
    """

    def __init__(self, grid: tuple[int, int, int], dim: int, *, img_size: int, num_frames: int, in_chans: int,
                 chunk: int | None = None) -> None:
        super().__init__()
        if chunk is not None and chunk < 0:
            raise ValueError(f"chunk must be >= 0 (0 or None: all at once), got {chunk}")
        self.grid = tuple(int(g) for g in grid)
        self.dim = int(dim)
        self.img_size, self.num_frames, self.in_chans = img_size, num_frames, in_chans
        self.chunk = chunk or None

    def freeze(self) -> "FrozenTeacher":
        """``requires_grad_(False)`` on every parameter and eval mode; returns ``self``."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> "FrozenTeacher":
        """Stay in eval mode whatever ``mode`` is (a frozen teacher has no dropout / drop path)."""
        return super().train(False)

    def encode(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw clip -> ``(attention (B, T', H'W'), clip token (B, D_t), patch tokens (B, T'H'W', D_t))``,
        un-normalised, any float dtype. Implemented by the subclasses."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> TeacherOutput:
        """The teacher on a raw clip.

        Args:
            video: float ``(B, C, T, H, W)`` in [0, 1] as snappix's data layer delivers it, with the built
                ``C = in_chans``, ``T = num_frames``, ``H = W = img_size``.

        Returns:
            :class:`TeacherOutput`: attention float32 ``(B, T', H'W')``, targets float32
            ``(B, 1 + T'H'W', D_t)`` with unit rows.

        Raises:
            ValueError: a clip of another shape or a non-float clip.
        """
        check_clip(video, self.in_chans, self.num_frames, self.img_size, type(self).__name__)
        attention, clip_token, patches = self.encode(video)
        t, h, w = self.grid
        return TeacherOutput(attention=attention.float().reshape(video.shape[0], t, h * w),
                             targets=unit_targets(clip_token, patches))

    def extra_repr(self) -> str:
        return (f"grid={self.grid}, dim={self.dim}, clip=({self.in_chans}, {self.num_frames}, {self.img_size}, "
                f"{self.img_size}), chunk={self.chunk}")
