"""Token masks: validation and selection of the tokens a mask keeps.

Convention everywhere (matches :mod:`snappix.masking`): a mask is a bool tensor over the flat token
grid, ``True`` = hidden from the encoder (encoder masks) or ``True`` = not reconstructed (decoder
masks, VideoMAEv2). Selection keeps the ascending token order.
"""

from __future__ import annotations

import torch

__all__ = ["as_token_mask", "select_tokens"]


def as_token_mask(mask: torch.Tensor, batch: int, num_tokens: int, name: str = "mask") -> torch.Tensor:
    """Check a mask and flatten it to ``(B, N)``.

    Args:
        mask: bool tensor ``(B, ...)`` whose trailing dims hold ``num_tokens`` entries in ``(t, h, w)``
            order, e.g. ``(B, N)`` or VideoMAEv2's ``(B, T', H' * W')``.
        batch: expected B.
        num_tokens: expected N.
        name: argument name used in error messages.

    Returns:
        bool ``(B, N)`` (a view when possible).

    Raises:
        TypeError: not a bool tensor (convert 0/1 masks with ``.bool()`` first).
        ValueError: wrong batch size or token count.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = hidden), got "
                        f"{mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    if mask.dim() < 2 or mask.shape[0] != batch or mask[0].numel() != num_tokens:
        raise ValueError(f"{name} must be (B={batch}, N={num_tokens}) over the token grid, got {tuple(mask.shape)}")
    return mask.reshape(batch, num_tokens)


def select_tokens(x: torch.Tensor, keep: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """Tokens of ``x`` where ``keep`` is True, in ascending token order.

    Args:
        x: ``(B, N, D)`` (``B`` may be 1 and is then broadcast over ``keep``'s batch).
        keep: bool ``(B, N)``; every sample must keep the same number K of tokens.
        name: what ``keep`` came from, for error messages.

    Returns:
        ``(B, K, D)``, same dtype/device as ``x``.

    Raises:
        ValueError: samples keep different numbers of tokens (the batch could not be a dense tensor),
            or shapes that do not match.
    """
    b, n = keep.shape
    if x.shape[1] != n or x.shape[0] not in (1, b):
        raise ValueError(f"cannot select tokens of x {tuple(x.shape)} with {name} {tuple(keep.shape)}")
    counts = keep.sum(dim=1)
    if b > 1 and bool((counts != counts[0]).any()):
        raise ValueError(f"{name}: every sample must keep the same number of tokens, got per-sample counts "
                         f"{counts.tolist()[:8]}{' ...' if b > 8 else ''}; use a mask generator with a fixed "
                         f"count per sample (tube / random / running cell)")
    if x.shape[0] != b:
        x = x.expand(b, -1, -1)
    return x[keep].reshape(b, -1, x.shape[-1])
