"""Baseline exposures: long / short exposure patterns and the TPAMI'23 single-coded-image layer.

* Long exposure (SnapPix ``CodedBaseline(long_exposure=True)``): every slot open, i.e. the mean over T.
* Short exposure (``CodedBaseline(long_exposure=False)``): only slot ``(T - 1) // 2`` open (slot 7 of 16,
  as in SnapPix), i.e. one frame of the clip.
  Both are frozen :class:`~snappix.sensor.coded_exposure.CodedExposure` layers built from a fixed
  pattern, so they report a correct ``get_pattern()`` and share the tiling/normalisation code.
* :class:`PamiExposure`: Kumawat et al., "Action Recognition from a Single Coded Image", TPAMI 2023
  (SnapPix's ``coded_type="pami"``; ``docs/methods/snappix.md`` §1).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from timm.layers import to_2tuple

from snappix.sensor.coded_exposure import CodedExposure, sign_binarize_ste

__all__ = ["long_exposure_pattern", "short_exposure_pattern", "short_slot", "PamiExposure"]


def short_slot(num_frames: int) -> int:
    """Time slot kept by the short exposure: ``(T - 1) // 2`` (7 for T = 16, as SnapPix's frame index 7)."""
    return (num_frames - 1) // 2


def long_exposure_pattern(num_frames: int = 16, tile_size: int | Sequence[int] = 8) -> torch.Tensor:
    """All-ones pattern ``(1, T, sh, sw)`` float32: every pixel integrates all T slots."""
    return torch.ones(1, num_frames, *to_2tuple(tile_size))


def short_exposure_pattern(num_frames: int = 16, tile_size: int | Sequence[int] = 8) -> torch.Tensor:
    """Pattern ``(1, T, sh, sw)`` float32 with only slot :func:`short_slot` open for every pixel."""
    p = torch.zeros(1, num_frames, *to_2tuple(tile_size))
    p[:, short_slot(num_frames)] = 1.0
    return p


class PamiExposure(CodedExposure):
    """TPAMI'23 coded-exposure layer (Kumawat et al. 2023; SnapPix ``Exposuref``, ``coded_type="pami"``).

    Differences from SnapPix's :class:`CodedExposure`:

    * init ``w ~ U(-sigma, +sigma)`` with ``sigma = sqrt(1.5 / (sh * sw * T * n_tiles))``, ``n_tiles`` the
      number of tiles in an ``input_size`` frame (14 x 14 for 112 / 8: sigma = 2.734e-3);
    * binarisation ``(sign(w) + 1) / 2`` with ``sign(0) = +1`` and an identity STE; no slot is forced on,
      so an unexposed pixel reads 0;
    * normalisation always by T (``normalize="frames"``);
    * during the first ``anneal_steps`` (100) forward passes in training mode the binarised weight is
      ``w * (1 - p) + U(-sigma, sigma) * p`` with ``p = n / anneal_steps`` and ``n`` counting down from
      ``anneal_steps`` (a buffer, so it survives checkpoint/resume);
    * its own learning-rate scale ``lr_scale = 1 / sigma`` (about 366) and no weight decay, read by the
      optimiser factory (SnapPix's ``pami_fix`` parameter group).

    Args:
        num_frames, tile_size, pattern_channels, noise: as :class:`CodedExposure`.
        input_size: ``(H, W)`` or ``s`` of the frames the layer is meant for (only used for sigma).
        anneal_steps: number of noisy forward passes at the start of training (>= 0).
        trainable: as :class:`CodedExposure` (True in the TPAMI setting).
        generator: RNG for the initialisation.

    Input/Output: as :class:`CodedExposure`: ``(B, C, T, H, W)`` in [0, 1] -> ``(B, C, 1, H, W)``.
    """

    def __init__(self, num_frames: int = 16, tile_size: int | Sequence[int] = 8, input_size: int | Sequence[int] = 112,
                 pattern_channels: int = 1, anneal_steps: int = 100, trainable: bool = True, noise=None,
                 generator: torch.Generator | None = None) -> None:
        sh, sw = to_2tuple(tile_size)
        ih, iw = to_2tuple(input_size)
        if ih % sh or iw % sw:
            raise ValueError(f"input_size {ih}x{iw} is not divisible by the tile size {sh}x{sw}")
        sigma = math.sqrt(1.5 / (sh * sw * num_frames * (ih // sh) * (iw // sw)))
        super().__init__(num_frames, (sh, sw), pattern_channels, init_value=sigma, trainable=trainable,
                         normalize="frames", noise=noise, generator=generator, source="pami (TPAMI'23)")
        if anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {anneal_steps}")
        self.sigma, self.anneal_steps, self.lr_scale = sigma, int(anneal_steps), 1.0 / sigma
        self.register_buffer("anneal_left", torch.tensor(int(anneal_steps), dtype=torch.int64))

    def binarize(self, logits: torch.Tensor) -> torch.Tensor:
        """``(sign(w) + 1) / 2`` with an identity STE (see :func:`sign_binarize_ste`)."""
        return sign_binarize_ste(logits)

    def effective_logits(self) -> torch.Tensor:
        """Logits mixed with uniform noise during the first ``anneal_steps`` training passes (counts down)."""
        left = int(self.anneal_left)
        if not (self.training and left > 0 and self.anneal_steps > 0):
            return self.logits
        p = left / self.anneal_steps
        self.anneal_left.sub_(1)
        noise = (torch.rand_like(self.logits) * 2.0 - 1.0) * self.sigma
        return self.logits * (1.0 - p) + noise * p
