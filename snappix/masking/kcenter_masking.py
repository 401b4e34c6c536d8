"""K-center token selection as a data-side encoder mask (``--mask_type kcenter`` of run_pretraining.py).

Park et al., "K-centered Patch Sampling for Efficient Video Recognition", ECCV 2022 (``docs/methods/kcenter.md``).
The paper feeds a classifier the ``k`` space-time patches chosen by greedy k-center (farthest-point)
selection over ``[normalised pixels || scaled (t, h, w)]``; here the same selection decides which tokens a
masked-pretraining encoder *sees*: the ``k = N - num_masked`` selected tokens are visible, the others hidden.

Each token of the ``(T', H', W')`` grid is a tubelet of ``T / T'`` frames x ``p x p`` pixels of the
transformed clip (``p = S / H'``). Its point is its pixels normalised with mean = std = 0.5,
``(x - 0.5) / 0.5`` in [-1, 1], flattened (``C * T/T' * p * p`` values), followed by the ``(t, h, w)``
coordinates of :func:`~snappix.masking.kcenter.patch_points` (``rgb_range = 2``, ``P = p``, times the
temporal / spatial coefficients). The selection is :func:`~snappix.masking.kcenter.kcenter_select`; the
first centre of each time chunk is drawn from the dataset's numpy generator (``first_center="random"``)
so masks are reproducible per sample, or is the centre patch of the chunk's middle slot (``"center"``).

``tube=True`` (coded-image MAEs, which need the same spatial positions hidden in every slot): a token is
a whole tube, i.e. all ``T`` frames of one ``p x p`` position (``C * T * p * p`` values plus ``(h, w)``
coordinates; t = 0), ``k = H'W' - int(mask_ratio * H'W')`` positions are selected and the mask is tiled
over the ``T'`` slots, as :class:`~snappix.masking.generators.TubeMasking`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .grid import resolve_rng, token_grid
from .kcenter import FIRST_CENTER_MODES, indices_to_mask, kcenter_select, patch_points

__all__ = ["KCenterMaskGenerator", "clip_token_pixels"]


def clip_token_pixels(video: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """Pixels of every token of a clip: ``(C, T, H, W)`` -> ``(T', H', W', C * T/T' * p * p)``.

    Args:
        video: float ``(C, T, H, W)``, any range (returned unchanged in value).
        grid: token grid ``(T', H', W')``; ``T``, ``H``, ``W`` must be multiples of it with ``H / H' == W / W'``.

    Returns:
        float ``(T', H', W', D)``, same dtype; each token's values in ``(C, tubelet, p, p)`` order.

    Raises:
        ValueError: a clip that does not tile into the grid.
    """
    t_, h_, w_ = token_grid(grid)
    if video.dim() != 4:
        raise ValueError(f"k-center masking expects one clip (C, T, H, W), got shape {tuple(video.shape)}")
    c, t, h, w = video.shape
    if t % t_ or h % h_ or w % w_ or h // h_ != w // w_:
        raise ValueError(f"clip (C, T, H, W) = {tuple(video.shape)} does not tile into the token grid "
                         f"{(t_, h_, w_)} with square patches")
    tub, p = t // t_, h // h_
    x = video.reshape(c, t_, tub, h_, p, w_, p).permute(1, 3, 5, 0, 2, 4, 6)
    return x.reshape(t_, h_, w_, c * tub * p * p)


class KCenterMaskGenerator:
    """Encoder mask from greedy k-center selection of the clip's tokens (ECCV'22 K-centered patch sampling).

    Called by :class:`~snappix.data.datasets.VideoPretrainDataset` as ``gen(rng, clip=context)``
    (``needs_clip = True``) with ``context["video"]`` the transformed clip, float ``(C, T, S, S)`` in [0, 1].

    Args:
        input_size: the model's token grid ``(T', H', W')`` (``model.grid``).
        mask_ratio: hidden fraction in [0, 1): ``num_masked = int(mask_ratio * T'H'W')`` (``tube``:
            ``int(mask_ratio * H'W')`` per slot).
        time_division: contiguous chunks of ``T' / time_division`` slots, each selecting
            ``k / time_division`` tokens independently (``--kcenter_time_division``).
        space_division: ``> 1``: at most one token per cell of a ``sd x sd`` spatial grid per chunk
            (``--kcenter_space_division``).
        temporal_coef, spatial_coef: multipliers of the t and h, w coordinates (1.0 in the paper).
        first_center: ``"random"`` (from the call's numpy ``rng``) or ``"center"`` (deterministic).
        tube: select spatial positions over whole tubes and tile the mask over time (coded-image MAEs).

    ``__call__(rng, clip)`` -> bool ``(T'H'W',)``, True = hidden, exactly ``num_masked`` True.
    :meth:`select` -> int64 ``(k,)`` visible token indices in selection order.

    Raises:
        ValueError: at construction, a budget or division that does not fit the grid (naming the
            ``--kcenter_*`` / ``--mask_ratio`` flag); at call time, a clip that does not tile into the grid.
        TypeError: called without the clip context.
    """

    needs_clip = True

    def __init__(self, input_size: Sequence[int], mask_ratio: float, time_division: int = 1,
                 space_division: int = 1, temporal_coef: float = 1.0, spatial_coef: float = 1.0,
                 first_center: str = "random", tube: bool = False):
        self.t, self.h, self.w = token_grid(input_size)
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"--mask_ratio must be in [0, 1), got {mask_ratio}")
        if first_center not in FIRST_CENTER_MODES:
            raise ValueError(f"--kcenter_first_center must be one of {FIRST_CENTER_MODES}, got {first_center!r}")
        self.num_tokens = self.t * self.h * self.w
        self.tube = bool(tube)
        sel_t = 1 if self.tube else self.t  # slots of the grid the selection runs over
        per = self.h * self.w
        if self.tube:
            self.num_masked = int(mask_ratio * per) * self.t
            self.k = per - int(mask_ratio * per)
        else:
            self.num_masked = int(mask_ratio * self.num_tokens)
            self.k = self.num_tokens - self.num_masked
        what = "tube positions (coded model: tube mask)" if self.tube else "tokens"
        if time_division < 1 or sel_t % time_division:
            raise ValueError(f"--kcenter_time_division {time_division} must divide the {sel_t} temporal slots of "
                             f"the k-center grid {(sel_t, self.h, self.w)}"
                             + (" (tube masks for coded models allow only 1)" if self.tube else ""))
        if self.k % time_division:
            raise ValueError(f"--kcenter_time_division {time_division} must divide the {self.k} visible {what} "
                             f"(--mask_ratio {mask_ratio})")
        if space_division < 1 or space_division > min(self.h, self.w):
            raise ValueError(f"--kcenter_space_division {space_division} must be in [1, {min(self.h, self.w)}]")
        if space_division > 1 and self.k // time_division > space_division ** 2:
            raise ValueError(f"--kcenter_space_division {space_division} allows at most {space_division ** 2} "
                             f"visible {what} per time chunk (one per cell), but --mask_ratio {mask_ratio} leaves "
                             f"{self.k // time_division}")
        self.time_division, self.space_division = int(time_division), int(space_division)
        self.temporal_coef, self.spatial_coef = float(temporal_coef), float(spatial_coef)
        self.first_center = first_center
        self.chunk_tokens = (sel_t // time_division) * per

    def points(self, video: torch.Tensor) -> torch.Tensor:
        """The k-center point cloud of a clip: float32 ``(T'', H', W', D + 3)``.

        ``T'' = T'`` (``1`` with ``tube``); ``D = C * T/T'' * p * p`` pixels ``(x - 0.5) / 0.5`` of
        ``video`` (float ``(C, T, S, S)`` in [0, 1]), then the scaled ``(t, h, w)``.
        """
        grid = (1, self.h, self.w) if self.tube else (self.t, self.h, self.w)
        video = torch.as_tensor(video).float()
        pix = clip_token_pixels(video, grid)
        p = video.shape[-1] // self.w
        return patch_points(((pix - 0.5) / 0.5)[None], patch_size=p, rgb_range=2.0,
                            temporal_coef=self.temporal_coef, spatial_coef=self.spatial_coef)[0]

    def select(self, video: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Visible tokens: int64 ``(k,)`` flat indices into the selection grid, chunk by chunk in selection
        order (with ``tube``: spatial indices into ``H' * W'``). ``rng`` draws one first centre per chunk
        (``first_center="random"``; not used for ``"center"``)."""
        if self.first_center == "random":
            first = torch.from_numpy(resolve_rng(rng).integers(0, self.chunk_tokens, size=self.time_division))
        else:
            first = "center"
        try:
            return kcenter_select(self.points(video)[None], self.k, time_division=self.time_division,
                                  space_division=self.space_division, first=first)[0]
        except ValueError as exc:
            raise ValueError(f"k-center masking (--kcenter_time_division {self.time_division}, "
                             f"--kcenter_space_division {self.space_division}): {exc}") from exc

    def __call__(self, rng: np.random.Generator | None = None, clip: dict | None = None) -> np.ndarray:
        if clip is None:
            raise TypeError("k-center masking needs the sampled clip (gen(rng, clip=context)); use it through "
                            "VideoPretrainDataset")
        keep = self.select(clip["video"], rng)
        if self.tube:
            spatial = indices_to_mask(keep[None], self.h * self.w)[0]
            return spatial.repeat(self.t).numpy()
        return indices_to_mask(keep[None], self.num_tokens)[0].numpy()

    def __repr__(self) -> str:
        return (f"KCenterMaskGenerator(({self.t}, {self.h}, {self.w}), hidden {self.num_masked}, "
                f"td={self.time_division}, sd={self.space_division}, first={self.first_center}"
                + (", tube" if self.tube else "") + ")")
