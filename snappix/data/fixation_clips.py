"""Fixation-conditioned clips and focus maps of Saccade-VSSL (Lai et al., "Saccade-VSSL", IEEE TCSVT 2023,
https://doi.org/10.1109/TCSVT.2023.3301698; reference code ashleylqx/Saccades-VSSL). ``docs/methods/saccade.md``,
"Data and pretraining", describes the rules; the dataset is :class:`snappix.data.fixation_dataset.FixationClipDataset`.

* **Fixations** (:func:`select_fixations`, :func:`pad_fixations`): the first ``focus_num`` rows of a
  ``[cell, start_frame, end_frame]`` scanpath (0-based, both ends inclusive); with ``deduplicate`` only the first
  ``min(n, focus_num)`` rows are scanned and a row whose cell was already taken is dropped (not replaced by a later
  row). Missing fixations are padded with the dataset's padding cells (drawn once per dataset) and a random span.
* **Clips** (:func:`fixation_starts`): for a fixation ``[s, e]``, ``o = (e - s + 1) // 2``; clip A starts at
  ``min(s, n - span - o)`` (``span`` = frames covered by one clip) and clip B half a fixation later, at ``A + o``.
  Per video the clips are ``[A_0 .. A_{k-1}, B_0 .. B_{k-1}]``; the instance of fixation ``i`` of list row ``v``
  is ``v * k + i``.
* **Focus maps** (:func:`focus_box`, :func:`focus_canvas`): a binary box on a 128 x 171 canvas centred on the
  cell of a ``grid x grid`` grid, half-size ``(128 // 4 + margin_h // 2, 171 // 4 + round(margin_h * 171 / 128)
  // 2)``, clipped at the borders. The canvas is stretched to the frame (nearest neighbour), then takes exactly
  the clip's geometric augmentation (:class:`FixationAugment`: crop, resize, flip) but **not** its colour jitter
  and blur: the map is the spotlight's gain ``x + x * m``; jittering it (as the reference does) would lift the
  background above 0 and scale the box's gain at random, which is noise in the conditioning, not augmentation.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from .transforms import frames_to_clip, random_resized_crop_params, to_float_cthw

__all__ = ["CANVAS", "select_fixations", "pad_fixations", "random_fixations", "fixation_starts", "clip_frames",
           "focus_box", "focus_canvas", "focus_frame", "FixationAugment", "center_crop_box"]

#: the reference's focus-map canvas (height, width): UCF101 frames at 128 x 171
CANVAS = (128, 171)


def select_fixations(rows: np.ndarray, focus_num: int = 3, deduplicate: bool = False) -> np.ndarray:
    """The fixations a video contributes, before padding.

    Args:
        rows: int ``(N, 3)`` ``[cell, start_frame, end_frame]`` in scanpath order.
        focus_num: how many (3).
        deduplicate: scan only the first ``min(N, focus_num)`` rows and drop a row whose cell was already taken
            (the reference's ``--deduplicate True``; dropped rows are not replaced by later ones).

    Returns:
        int64 ``(k, 3)``, ``k <= focus_num``.
    """
    rows = np.asarray(rows, np.int64).reshape(-1, 3)[:focus_num]
    if not deduplicate:
        return rows
    seen: set[int] = set()
    keep = []
    for row in rows:
        if int(row[0]) not in seen:
            seen.add(int(row[0]))
            keep.append(row)
    return np.asarray(keep, np.int64).reshape(-1, 3)


def _random_span(video_len: int, span: int, rng: np.random.Generator) -> tuple[int, int]:
    """Start uniform in ``[1, video_len - span)`` (the reference's ``randint(1, length - clip_len)``), 0 when the
    video is too short; end ``start + span``."""
    high = video_len - span
    start = int(rng.integers(1, high)) if high > 1 else 0
    return start, start + span


def pad_fixations(rows: np.ndarray, focus_num: int, video_len: int, span: int, pad_cells: Sequence[int],
                  rng: np.random.Generator) -> np.ndarray:
    """Complete ``rows`` (int ``(k, 3)``, ``k <= focus_num``) to ``focus_num`` fixations: missing fixation ``j`` of
    ``focus_num - k`` takes ``pad_cells[j]`` and a random span (:func:`_random_span`: start in
    ``[1, video_len - span)``, end ``start + span``). Returns int64 ``(focus_num, 3)``.

    Raises:
        ValueError: fewer ``pad_cells`` than missing fixations.
    """
    rows = np.asarray(rows, np.int64).reshape(-1, 3)
    missing = focus_num - rows.shape[0]
    if missing <= 0:
        return rows[:focus_num]
    if len(pad_cells) < missing:
        raise ValueError(f"{missing} fixations to pad but only {len(pad_cells)} padding cells")
    pads = [(int(pad_cells[j]), *_random_span(video_len, span, rng)) for j in range(missing)]
    return np.concatenate([rows, np.asarray(pads, np.int64)])


def random_fixations(focus_num: int, grid: int, video_len: int, span: int, rng: np.random.Generator) -> np.ndarray:
    """Fixations of a video without a scanpath (HMDB51 in the reference): ``focus_num`` distinct cells drawn
    uniformly from the ``grid x grid`` grid, each with a random span as in :func:`pad_fixations`.
    Returns int64 ``(focus_num, 3)``."""
    cells = rng.choice(grid * grid, size=focus_num, replace=False)
    return np.asarray([(int(c), *_random_span(video_len, span, rng)) for c in cells], np.int64)


def fixation_starts(fixations: np.ndarray, video_len: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """First frames of clips A and B of each fixation.

    ``o = (end - start + 1) // 2``; ``A = max(0, min(start, video_len - span - o))``; ``B = A + o`` (so B ends inside
    the video whenever ``video_len >= span + o``; otherwise :func:`clip_frames` repeats the last frame).
    Returns two int64 ``(k,)`` arrays.
    """
    fix = np.asarray(fixations, np.int64).reshape(-1, 3)
    offset = (fix[:, 2] - fix[:, 1] + 1) // 2
    a = np.maximum(0, np.minimum(fix[:, 1], video_len - span - offset))
    return a, a + offset


def clip_frames(start: int, num_frames: int, sampling_rate: int, video_len: int) -> np.ndarray:
    """Frame indices ``start + i * sampling_rate`` (``i < num_frames``), clipped to ``[0, video_len - 1]``;
    int64 ``(num_frames,)``."""
    idx = int(start) + np.arange(num_frames, dtype=np.int64) * int(sampling_rate)
    return np.clip(idx, 0, max(video_len - 1, 0))


def focus_box(cell: int, grid: int = 7, margin_h: int = 0, canvas: tuple[int, int] = CANVAS
              ) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of cell ``cell``'s box on the canvas (pixels, bottom / right exclusive).

    Cell ``(r, c) = divmod(cell, grid)``; centre ``(r * dh + dh // 2, c * dw + dw // 2)`` with ``dh = H // grid``,
    ``dw = W // grid``; half-height ``H // 4 + margin_h // 2``, half-width ``W // 4 + round(margin_h * W / H) // 2``;
    clipped to the canvas. On 128 x 171 with ``margin_h=12``: at most 76 x 100 px.

    Raises:
        ValueError: ``cell`` outside ``[0, grid^2)``.
    """
    if not 0 <= cell < grid * grid:
        raise ValueError(f"cell {cell} is outside [0, {grid * grid - 1}] ({grid}x{grid} grid)")
    h, w = canvas
    r, c = divmod(int(cell), grid)
    dh, dw = h // grid, w // grid
    margin_w = int(np.round(margin_h * w / h))
    half_h, half_w = h // 4 + margin_h // 2, w // 4 + margin_w // 2
    ch, cw = r * dh + dh // 2, c * dw + dw // 2
    return max(0, ch - half_h), min(h, ch + half_h), max(0, cw - half_w), min(w, cw + half_w)


def focus_canvas(cell: int, grid: int = 7, margin_h: int = 0, canvas: tuple[int, int] = CANVAS) -> torch.Tensor:
    """The binary focus map of ``cell`` on the canvas: float32 ``(H, W)``, 1 inside :func:`focus_box`, 0 outside."""
    top, bottom, left, right = focus_box(cell, grid, margin_h, canvas)
    out = torch.zeros(canvas, dtype=torch.float32)
    out[top:bottom, left:right] = 1.0
    return out


def focus_frame(cell: int, height: int, width: int, grid: int = 7, margin_h: int = 0) -> torch.Tensor:
    """:func:`focus_canvas` stretched to a ``height x width`` frame (nearest neighbour, so still binary):
    float32 ``(1, height, width)``. The box covers the same share of the frame as of the canvas."""
    m = focus_canvas(cell, grid, margin_h)[None, None]
    return torch.nn.functional.interpolate(m, size=(height, width), mode="nearest")[0]


def center_crop_box(height: int, width: int, fraction: float) -> tuple[int, int, int, int]:
    """``(top, left, side, side)`` of the centred square with ``side = round(fraction * min(height, width))``
    (the reference's 196-pixel centre crop of 256-pixel-high frames is ``fraction = 196 / 256``)."""
    side = max(1, min(height, width, int(round(fraction * min(height, width)))))
    return (height - side) // 2, (width - side) // 2, side, side


class FixationAugment:
    """Saccade-VSSL's clip augmentation, with the focus map following the geometry.

    Training (``train=True``), one draw per clip, the same for all its frames:
    random resized crop (area ``[bottom_area, 1]``, aspect ``[3/4, 4/3]``) to ``size``; colour jitter
    (brightness, contrast, saturation 0.4, hue 0.1, in random order; saturation and hue only for 3 channels) with
    probability ``jitter_p`` (0.8); Gaussian blur (sigma uniform in ``[0.1, 2]`` output pixels) with probability
    ``blur_p`` (0.5); horizontal flip with probability 0.5. Evaluation (``train=False``): the centred square crop
    :func:`center_crop_box` (``center_fraction``) resized to ``size``, nothing else (deterministic). The map gets
    the crop, the resize (bilinear, antialiased, as the clip) and the flip, never the jitter or the blur.

    ``__call__(frames, focus, rng)``: ``frames`` uint8 ``(T, H, W, C)``; ``focus`` float32 ``(1, H, W)`` in [0, 1];
    ``rng`` a ``random.Random``. Returns ``(clip float32 (C', T, size, size) in [0, 1], map float32 (1, size,
    size) in [0, 1])`` with ``C' = 1`` when ``gray`` (``"first"``, ``"mean"``, ``"luma"``) is set. No
    normalisation: the Saccade backbones normalise their input.
    """

    def __init__(self, size: int = 112, train: bool = True, bottom_area: float = 0.175, jitter_p: float = 0.8,
                 blur_p: float = 0.5, flip: bool = True, center_fraction: float = 196 / 256,
                 gray: str | None = None, jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
                 blur_sigma: tuple[float, float] = (0.1, 2.0)):
        if not 0 < bottom_area <= 1:
            raise ValueError(f"bottom_area must be in (0, 1], got {bottom_area}")
        self.size, self.train, self.bottom_area = int(size), bool(train), float(bottom_area)
        self.jitter_p, self.blur_p, self.flip = float(jitter_p), float(blur_p), bool(flip)
        self.center_fraction, self.gray = float(center_fraction), gray
        self.jitter, self.blur_sigma = tuple(jitter), tuple(blur_sigma)

    def __call__(self, frames: np.ndarray, focus: torch.Tensor, rng: random.Random | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        rng = rng or random.Random(0)
        clip = frames_to_clip(frames, self.gray)
        h, w = clip.shape[-2:]
        if focus.shape[-2:] != (h, w):
            raise ValueError(f"focus map {tuple(focus.shape)} does not match the frames' {h}x{w}")
        if self.train:
            box = random_resized_crop_params(h, w, (self.bottom_area, 1.0), (3 / 4, 4 / 3), rng)
        else:
            box = center_crop_box(h, w, self.center_fraction)
        size = [self.size, self.size]
        clip = F.resized_crop(clip, *box, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        fmap = F.resized_crop(focus[None].float(), *box, size, interpolation=InterpolationMode.BILINEAR,
                              antialias=True)[0].clamp_(0, 1)
        clip = to_float_cthw(clip)  # (C, T, S, S) in [0, 1]
        if self.train:
            clip = self._photometric(clip, rng)
            if self.flip and rng.random() < 0.5:
                clip, fmap = clip.flip(-1), fmap.flip(-1)
        return clip.contiguous(), fmap.contiguous()

    def _photometric(self, clip: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """Colour jitter and blur of a float ``(C, T, S, S)`` clip in [0, 1] (drawn from ``rng`` even when they
        are not applied, so the draws do not depend on the outcome)."""
        b, c, s, hue = self.jitter
        factors = [rng.uniform(max(0.0, 1 - b), 1 + b), rng.uniform(max(0.0, 1 - c), 1 + c),
                   rng.uniform(max(0.0, 1 - s), 1 + s), rng.uniform(-hue, hue)]
        order = list(range(4))
        rng.shuffle(order)
        jitter, sigma, blur = rng.random() < self.jitter_p, rng.uniform(*self.blur_sigma), rng.random() < self.blur_p
        frames = clip.permute(1, 0, 2, 3)  # (T, C, S, S): torchvision's batch of images
        colour = frames.shape[1] == 3
        if jitter:
            for op in order:
                if op == 0:
                    frames = F.adjust_brightness(frames, factors[0])
                elif op == 1:
                    frames = F.adjust_contrast(frames, factors[1]) if colour else _grey_contrast(frames, factors[1])
                elif op == 2 and colour:
                    frames = F.adjust_saturation(frames, factors[2])
                elif op == 3 and colour:
                    frames = F.adjust_hue(frames, factors[3])
        if blur:
            k = 2 * math.ceil(3 * sigma) + 1
            frames = F.gaussian_blur(frames, [k, k], [sigma, sigma])
        return frames.clamp(0, 1).permute(1, 0, 2, 3)


def _grey_contrast(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """Contrast of one-channel frames ``(T, 1, H, W)``: blend with each frame's mean (torchvision's rule)."""
    mean = frames.mean(dim=(-3, -2, -1), keepdim=True)
    return (factor * frames + (1 - factor) * mean).clamp(0, 1)
