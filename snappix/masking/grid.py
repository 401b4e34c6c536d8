"""Small helpers every mask generator uses: the token grid it masks and its random generator.

A mask covers the token grid ``(T', H', W')`` of a clip (frames / tubelet, rows / patch, columns /
patch), flattened in ``t, h, w`` order; generators take an optional ``np.random.Generator`` for seeded
determinism (``docs/architecture.md``: mask generators).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["token_grid", "resolve_rng"]


def token_grid(input_size: Sequence[int]) -> tuple[int, int, int]:
    """Validate a token grid and return it as Python ints ``(T', H', W')``.

    Args:
        input_size: three positive integers (any sequence, e.g. a tuple or list).

    Raises:
        ValueError: not three values, or one of them below 1.
    """
    if len(input_size) != 3 or min(input_size) < 1:
        raise ValueError(f"input_size must be (T', H', W') of positive ints, got {tuple(input_size)}")
    return tuple(int(x) for x in input_size)


def resolve_rng(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng`` itself, or a fresh unseeded ``np.random.default_rng()`` when it is ``None``."""
    return rng if rng is not None else np.random.default_rng()
