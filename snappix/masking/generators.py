"""Token mask generators of VideoMAE (tube, random) and VideoMAEv2 (running cell).

All masks are boolean numpy arrays over the token grid ``(T', H', W')`` flattened in
``t, h, w`` order (length ``T' * H' * W'``), with ``True`` = hidden (from the encoder), or, for
decoder masks, ``True`` = not reconstructed. Each generator hides an exact number of tokens:

* :class:`TubeMasking`: ``int(mask_ratio * H' * W')`` per frame, the same spatial positions in
  every frame (Tong et al., VideoMAE, NeurIPS 2022);
* :class:`RandomMasking`: ``int(mask_ratio * T' * H' * W')`` anywhere;
* :class:`RunningCellMasking`: ``int(4 * mask_ratio)`` of every 2x2 cell per frame, the cell
  pattern advancing one position per frame (Wang et al., VideoMAE V2, CVPR 2023).

Call with an optional ``np.random.Generator`` for seeded determinism.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .grid import resolve_rng, token_grid

MASK_TYPES = ("tube", "random", "run_cell", "none")


class TubeMasking:
    """Tube masking: the same ``int(mask_ratio * H' * W')`` spatial tokens hidden in every frame.

    Returns bool ``(T' * H' * W',)``.
    """

    def __init__(self, input_size: Sequence[int], mask_ratio: float):
        self.t, self.h, self.w = token_grid(input_size)
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        self.num_masked_per_frame = int(mask_ratio * self.h * self.w)
        self.num_masked = self.num_masked_per_frame * self.t

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        frame = np.zeros(self.h * self.w, dtype=bool)
        frame[resolve_rng(rng).permutation(self.h * self.w)[: self.num_masked_per_frame]] = True
        return np.tile(frame, self.t)

    def __repr__(self) -> str:
        return f"TubeMasking(({self.t}, {self.h}, {self.w}), hidden {self.num_masked_per_frame}/frame)"


class RandomMasking:
    """Random masking: ``int(mask_ratio * T' * H' * W')`` tokens hidden anywhere. Returns bool ``(N,)``."""

    def __init__(self, input_size: Sequence[int], mask_ratio: float):
        self.t, self.h, self.w = token_grid(input_size)
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        self.num_tokens = self.t * self.h * self.w
        self.num_masked = int(mask_ratio * self.num_tokens)

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        mask = np.zeros(self.num_tokens, dtype=bool)
        mask[resolve_rng(rng).permutation(self.num_tokens)[: self.num_masked]] = True
        return mask

    def __repr__(self) -> str:
        return f"RandomMasking(({self.t}, {self.h}, {self.w}), hidden {self.num_masked})"


class RunningCellMasking:
    """VideoMAEv2 running-cell masking (used for the decoder).

    Each 2x2 cell of every frame hides ``k = int(4 * mask_ratio)`` (1, 2 or 3) positions given by
    a cyclic queue ``[1]*k + [0]*(4-k)`` over the cell positions in raster order; the queue is read
    from offset ``phase + t`` in frame ``t`` (it "runs" one position per frame). The cell is tiled
    over ``(H'/2, W'/2)``; one of the 4 phases is drawn per call.

    Returns bool ``(T' * H' * W',)``; exactly ``k * T' * H' * W' / 4`` entries are True.

    Raises:
        ValueError: odd ``H'`` or ``W'``, or ``int(4 * mask_ratio)`` not in {1, 2, 3}.
    """

    def __init__(self, input_size: Sequence[int], mask_ratio: float = 0.5):
        self.t, self.h, self.w = token_grid(input_size)
        if self.h % 2 or self.w % 2:
            raise ValueError(f"running-cell masking needs even H', W', got {self.h}x{self.w}")
        k = int(4 * mask_ratio)
        if k not in (1, 2, 3):
            raise ValueError(f"running-cell mask_ratio must give 1-3 hidden of 4, got {mask_ratio}")
        queue = np.array([True] * k + [False] * (4 - k))
        pos = np.arange(4)
        self.phases = []
        for phase in range(4):
            cells = np.stack([queue[(pos + phase + t) % 4] for t in range(self.t)]).reshape(self.t, 2, 2)
            self.phases.append(np.tile(cells, (1, self.h // 2, self.w // 2)).reshape(-1))
        self.num_masked = int(self.phases[0].sum())

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.phases[int(resolve_rng(rng).integers(4))].copy()

    def __repr__(self) -> str:
        return f"RunningCellMasking(({self.t}, {self.h}, {self.w}), hidden {self.num_masked})"


class NoMasking:
    """Nothing hidden (reconstruction study: the encoder sees and the decoder predicts all tokens)."""

    def __init__(self, input_size: Sequence[int], mask_ratio: float = 0.0):
        self.t, self.h, self.w = token_grid(input_size)
        self.num_masked = 0

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.zeros(self.t * self.h * self.w, dtype=bool)


def build_mask_generator(mask_type: str, input_size: Sequence[int], mask_ratio: float):
    """Factory for ``--mask_type`` / ``--decoder_mask_type``: ``tube``, ``random``, ``run_cell``, ``none``.

    Raises:
        ValueError: unknown ``mask_type`` (lists the valid ones).
    """
    table = {"tube": TubeMasking, "random": RandomMasking, "run_cell": RunningCellMasking, "none": NoMasking}
    if mask_type not in table:
        raise ValueError(f"unknown mask type {mask_type!r}; valid: {list(MASK_TYPES)}")
    return table[mask_type](input_size, mask_ratio)
