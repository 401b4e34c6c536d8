"""Clip transforms on whole-clip tensors: one set of random parameters for all frames.

Internally clips are ``torch.uint8`` or float tensors ``(T, C, H, W)``, the layout that
``torchvision.transforms.v2`` treats as a batch of frames (so its ops apply to all frames at once,
without a per-frame PIL loop); pipelines return float32 ``(C, T, H, W)`` in ``[0, 1]`` (the linear
intensity a sensor sees), optionally normalised.

* geometry: :func:`short_side_resize`, :func:`center_crop`, :func:`uniform_crop` (test crops along
  the long side, VideoMAE), :class:`MultiScaleCrop` (GroupMultiScaleCrop), random resized crop and
  flip (torchvision);
* photometric: :func:`to_gray`, :func:`normalize`, :class:`VideoRandAugment` (timm's ``rand-*``
  policy strings), :class:`CubeRandomErasing` (one box through all frames);
* pipelines: :class:`PretrainTransform`, :class:`FinetuneTrainTransform`, :class:`EvalTransform`.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import cv2
import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from .constants import K710_SSV2_MEAN, K710_SSV2_STD  # SnapPix's grey statistics (docs/methods/snappix.md)
from .rand_augment import RAND_INCREASING_OPS, RAND_OPS, VideoRandAugment, parse_rand_augment  # noqa: F401
from .rand_augment import warp_stack


# ---------------------------------------------------------------------------------------------
# layout and colour
# ---------------------------------------------------------------------------------------------
def frames_to_clip(frames: np.ndarray, gray: str | None = None) -> torch.Tensor:
    """Decoder output to a clip tensor.

    Args:
        frames: uint8 ``(T, H, W, C)`` (C = 1 or 3).
        gray: ``None`` keeps the channels; ``"first"`` keeps channel 0 (SnapPix reads its grey
            preprocessed videos this way); ``"mean"`` averages the channels (SnapPix's RandAugment
            path); ``"luma"`` uses ITU-R 601 weights.

    Returns:
        uint8 ``(T, C', H, W)`` contiguous, ``C' = 1`` when ``gray`` is set.
    """
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (T, H, W, C), got {frames.dtype} {frames.shape}")
    if gray == "first":
        frames = frames[..., :1]  # slice before copying: a third of the bytes
    clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return to_gray(clip, gray).contiguous() if gray else clip.contiguous()


def to_gray(clip: torch.Tensor, method: str = "mean") -> torch.Tensor:
    """``(T, C, H, W)`` -> ``(T, 1, H, W)``, same dtype; ``method`` in ``first``, ``mean``, ``luma``."""
    if clip.shape[-3] == 1:
        return clip
    if method == "first":
        return clip[:, :1]
    if method == "mean":
        weights = torch.full((clip.shape[-3],), 1.0 / clip.shape[-3])
    elif method == "luma":
        weights = torch.tensor([0.299, 0.587, 0.114])
    else:
        raise ValueError(f"gray method must be 'first', 'mean' or 'luma', got {method!r}")
    out = (clip.float() * weights.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
    return out.round_().clamp_(0, 255).to(torch.uint8) if clip.dtype == torch.uint8 else out


def to_float_cthw(clip: torch.Tensor) -> torch.Tensor:
    """uint8 ``(T, C, H, W)`` in [0, 255] -> float32 ``(C, T, H, W)`` in [0, 1] (float input: permute only)."""
    out = clip.float().div_(255.0) if clip.dtype == torch.uint8 else clip.float()
    return out.permute(1, 0, 2, 3).contiguous()


def normalize(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(clip - mean) / std`` per channel for a float ``(C, T, H, W)`` clip."""
    m = torch.as_tensor(mean, dtype=clip.dtype).view(-1, 1, 1, 1)
    s = torch.as_tensor(std, dtype=clip.dtype).view(-1, 1, 1, 1)
    return (clip - m) / s


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------
def short_side_resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``(T, C, H, W)`` so that ``min(H, W) == size`` (aspect kept)."""
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    return F.resize(clip, [size], interpolation=InterpolationMode.BILINEAR, antialias=True)


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size x size`` crop of ``(T, C, H, W)`` (``H, W >= size``)."""
    return F.center_crop(clip, [size, size])


def uniform_crop(clip: torch.Tensor, size: int, crop_idx: int, num_crop: int) -> torch.Tensor:
    """Test crop ``crop_idx`` of ``num_crop`` evenly spaced along the long side (VideoMAE test).

    ``num_crop = 1`` is the centre crop; ``3`` gives the classic left/centre/right (or
    top/centre/bottom) crops. The short side must already equal ``size`` or exceed it.
    """
    if not 0 <= crop_idx < num_crop:
        raise ValueError(f"crop_idx must be in [0, {num_crop}), got {crop_idx}")
    h, w = clip.shape[-2:]
    if num_crop == 1:
        return center_crop(clip, size)
    if w >= h:
        top = (h - size) // 2
        left = int(crop_idx * (w - size) / (num_crop - 1))
    else:
        left = (w - size) // 2
        top = int(crop_idx * (h - size) / (num_crop - 1))
    return clip[..., top:top + size, left:left + size]


def random_resized_crop_params(height: int, width: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                               rng=random) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of an Inception-style random resized crop (torchvision's algorithm:
    10 tries of area fraction in ``scale`` and log-uniform aspect ``ratio``, else a centre crop)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class MultiScaleCrop:
    """GroupMultiScaleCrop (TSN / VideoMAE / SnapPix pretraining), then resize to ``size x size``.

    Crop sides are ``int(min(H, W) * s)`` for ``s`` in ``scales``; a side within 3 px of ``size`` snaps
    to ``size``; (width, height) pairs differ by at most ``max_distort`` scale steps. With
    ``fix_crop`` the offset is one of 5 (13 with ``more_fix_crop``) grid positions at quarter steps,
    else uniform. Randomness from ``rng`` (``random.Random``-like; default module ``random``).
    """

    def __init__(self, size: int, scales: Sequence[float] = (1, .875, .75, .66), max_distort: int = 1,
                 fix_crop: bool = True, more_fix_crop: bool = True):
        self.size = size
        self.scales = tuple(scales)
        self.max_distort = max_distort
        self.fix_crop = fix_crop
        self.more_fix_crop = more_fix_crop

    def params(self, height: int, width: int, rng=random) -> tuple[int, int, int, int]:
        """Draw ``(top, left, crop_h, crop_w)`` for a ``height x width`` frame."""
        base = min(height, width)
        sides = [int(base * s) for s in self.scales]
        sides_h = [self.size if abs(x - self.size) < 3 else x for x in sides]
        sides_w = [self.size if abs(x - self.size) < 3 else x for x in sides]
        pairs = [(w, h) for i, h in enumerate(sides_h) for j, w in enumerate(sides_w)
                 if abs(i - j) <= self.max_distort]
        crop_w, crop_h = pairs[rng.randrange(len(pairs))]
        crop_w, crop_h = min(crop_w, width), min(crop_h, height)
        if not self.fix_crop:
            return rng.randint(0, height - crop_h), rng.randint(0, width - crop_w), crop_h, crop_w
        ws, hs = (width - crop_w) // 4, (height - crop_h) // 4
        grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]  # (row, col) in quarter steps
        if self.more_fix_crop:
            grid += [(2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
        r, c = grid[rng.randrange(len(grid))]
        return r * hs, c * ws, crop_h, crop_w

    def __call__(self, clip: torch.Tensor, rng=random, params_out: dict | None = None) -> torch.Tensor:
        """Crop and resize ``clip (..., H, W)``; ``params_out`` (a dict) receives ``crop = (top, left, h, w)``
        in source pixels and ``frame_size = (H, W)`` (for maps that must follow the crop, e.g. saliency)."""
        top, left, ch, cw = self.params(*clip.shape[-2:], rng=rng)
        if params_out is not None:
            params_out.update(crop=(top, left, ch, cw), frame_size=tuple(clip.shape[-2:]))
        if clip.dtype == torch.uint8 and ch <= self.size and cw <= self.size:  # enlarging: no anti-aliasing
            return resize_up_uint8(clip[..., top:top + ch, left:left + cw], self.size)
        return F.resized_crop(clip, top, left, ch, cw, [self.size, self.size],
                              interpolation=InterpolationMode.BILINEAR, antialias=True)


def resize_up_uint8(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear enlargement of a uint8 clip ``(T, C, h, w)`` to ``(T, C, size, size)`` (``h, w <= size``).

    One OpenCV call on the stacked frames: torchvision's bilinear result (half-pixel centres) up to
    rounding (at most 1 level), about 2x faster on a CPU. Only for enlarging, where anti-aliasing does
    nothing; shrinking goes through torchvision's anti-aliased resize.
    """
    return warp_stack(clip, lambda stack: cv2.resize(stack, (size, size), interpolation=cv2.INTER_LINEAR),
                      (size, size))


# RandAugment lives in .rand_augment (OpenCV kernels); re-exported here.


class CubeRandomErasing:
    """Random erasing (Zhong et al., AAAI 2020) of one box through all frames ("cube" mode).

    With probability ``p`` a box of area fraction in ``scale`` and aspect ratio in ``ratio``
    (log-uniform) is filled with per-pixel noise. The noise is N(0, 1) *in normalised units*, i.e.
    ``mean + std * N(0, 1)`` on the float [0, 1] clip, clamped to [0, 1] -- SnapPix filled N(0, 1)
    into the un-normalised clip (defect 16 in ``docs/methods/snappix.md``).

    Args (call): float clip ``(C, T, H, W)`` in [0, 1]; modified in place and returned.
    """

    def __init__(self, p: float = 0.25, scale: tuple[float, float] = (0.02, 1 / 3),
                 ratio: tuple[float, float] = (0.3, 1 / 0.3), mean: float = K710_SSV2_MEAN,
                 std: float = K710_SSV2_STD):
        self.p, self.scale, self.ratio, self.mean, self.std = p, scale, ratio, mean, std

    def __call__(self, clip: torch.Tensor, rng=random, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.p <= 0 or rng.random() >= self.p:
            return clip
        h, w = clip.shape[-2:]
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = h * w * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if eh < h and ew < w:
                top, left = rng.randint(0, h - eh), rng.randint(0, w - ew)
                noise = torch.randn(clip.shape[:-2] + (eh, ew), generator=generator)
                noise = noise.mul_(self.std).add_(self.mean).clamp_(0, 1)
                clip[..., top:top + eh, left:left + ew] = noise
                break
        return clip


# ---------------------------------------------------------------------------------------------
# pipelines: decoder frames (T, H, W, C) uint8 -> float (C, T, H, W)
# ---------------------------------------------------------------------------------------------
class PretrainTransform:
    """Pretraining clip (VideoMAE / SnapPix): multi-scale crop to ``input_size``, no flip, no colour.

    Returns float32 ``(C, T, input_size, input_size)`` in [0, 1] (normalised if ``mean``/``std``).
    """

    def __init__(self, input_size: int = 112, scales: Sequence[float] = (1, .875, .75, .66),
                 gray: str | None = "first", mean=None, std=None):
        self.crop = MultiScaleCrop(input_size, scales)
        self.gray, self.mean, self.std = gray, mean, std

    def __call__(self, frames: np.ndarray, rng=random, params_out: dict | None = None) -> torch.Tensor:
        """``params_out``: optional dict receiving the crop (see :meth:`MultiScaleCrop.__call__`)."""
        clip = to_float_cthw(self.crop(frames_to_clip(frames, self.gray), rng=rng, params_out=params_out))
        return normalize(clip, self.mean, self.std) if self.mean is not None else clip


class FinetuneTrainTransform:
    """Finetuning clip (VideoMAE / SnapPix §5.3 order): RandAugment -> grey -> random resized crop
    -> horizontal flip (not for SSV2) -> [0, 1] float -> cube random erasing.

    Returns float32 ``(C, T, input_size, input_size)`` in [0, 1] (normalised if ``mean``/``std``).
    """

    def __init__(self, input_size: int = 112, aa: str | None = "rand-m7-n4-mstd0.5-inc1", reprob: float = 0.25,
                 flip: bool = True, scale=(0.08, 1.0), ratio=(0.75, 1.3333), gray: str | None = "first",
                 mean=None, std=None):
        self.rand_augment = VideoRandAugment(aa) if aa else None
        self.input_size, self.scale, self.ratio = input_size, scale, ratio
        self.flip = flip
        self.erase = CubeRandomErasing(reprob) if reprob > 0 else None
        self.gray, self.mean, self.std = gray, mean, std

    def __call__(self, frames: np.ndarray, rng=random, generator: torch.Generator | None = None) -> torch.Tensor:
        """``rng`` (``random.Random``) draws every random parameter; ``generator`` the erasing noise."""
        clip = frames_to_clip(frames, self.gray if self.gray == "first" else None)
        if self.rand_augment is not None:
            clip = self.rand_augment(clip, rng=rng)
        if self.gray and self.gray != "first":
            clip = to_gray(clip, self.gray)
        top, left, h, w = random_resized_crop_params(*clip.shape[-2:], self.scale, self.ratio, rng)
        clip = F.resized_crop(clip, top, left, h, w, [self.input_size, self.input_size],
                              interpolation=InterpolationMode.BILINEAR, antialias=True)
        if self.flip and rng.random() < 0.5:
            clip = F.horizontal_flip(clip)
        clip = to_float_cthw(clip)
        if self.erase is not None:
            clip = self.erase(clip, rng=rng, generator=generator)
        return normalize(clip, self.mean, self.std) if self.mean is not None else clip


class EvalTransform:
    """Validation / test clip: short side to ``short_side_size``, crop ``crop_idx`` of ``num_crop``.

    ``num_crop = 1`` is the centre crop (single-view validation). Returns float32
    ``(C, T, input_size, input_size)`` in [0, 1] (normalised if ``mean``/``std``).
    """

    def __init__(self, input_size: int = 112, short_side_size: int = 112, gray: str | None = "first",
                 mean=None, std=None):
        self.input_size, self.short_side_size = input_size, short_side_size
        self.gray, self.mean, self.std = gray, mean, std

    def __call__(self, frames: np.ndarray, crop_idx: int = 0, num_crop: int = 1) -> torch.Tensor:
        clip = short_side_resize(frames_to_clip(frames, self.gray), self.short_side_size)
        clip = to_float_cthw(uniform_crop(clip, self.input_size, crop_idx, num_crop))
        return normalize(clip, self.mean, self.std) if self.mean is not None else clip
