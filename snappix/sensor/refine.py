"""Greedy single-bit refinement of a binary exposure pattern (our addition to SnapPix's STE training).

SnapPix learns the pattern with AdamW on real logits through a straight-through estimator (docs/methods/snappix.md §2).
The STE gradient is the gradient of a *relaxed* objective at the binary point; near a good pattern a
handful of slots keep flipping back and forth, so the last epochs wander instead of converging (the
released log shows the same plateau: val 0.157 -> 0.155 -> 0.157). Exact steepest descent over single
bit flips fixes that: evaluate the objective after flipping each entry, apply the best flip if it
lowers the objective, repeat until no flip helps (or ``max_flips``). The result is a local minimum with
respect to single flips and the objective never increases. Flips that would leave a pixel with fewer
than ``min_exposures`` exposed slots are never taken (SnapPix's every-pixel-exposed rule).

The candidate losses come from a callable: :meth:`snappix.sensor.moments.TileMoments.flip_losses`
evaluates all T x sh x sw flips of the exact decorrelation objective at the cost of about one objective
evaluation; :func:`brute_force_flip_losses` wraps any scalar objective (one call per entry).
"""
from __future__ import annotations

from typing import Callable

import torch

from snappix.sensor.coded_exposure import as_pattern_tensor

__all__ = ["FlipLosses", "brute_force_flip_losses", "greedy_flip_refine"]

FlipLosses = Callable[[torch.Tensor], "tuple[float, torch.Tensor]"]


def brute_force_flip_losses(loss_fn: Callable[[torch.Tensor], float]) -> FlipLosses:
    """Adapt a scalar objective ``loss_fn(pattern) -> float`` to the :data:`FlipLosses` interface.

    The returned callable maps a binary pattern to ``(loss_now, losses)`` with ``losses`` (same shape) the
    objective after flipping each entry, computed by ``1 + numel`` calls of ``loss_fn``.
    """

    @torch.no_grad()
    def flip_losses(pattern: torch.Tensor) -> tuple[float, torch.Tensor]:
        p = pattern.clone()
        flat = p.view(-1)
        out = torch.empty(flat.numel(), dtype=torch.float64)
        for k in range(flat.numel()):
            flat[k] = 1.0 - flat[k]
            out[k] = float(loss_fn(p))
            flat[k] = 1.0 - flat[k]
        return float(loss_fn(p)), out.view(pattern.shape)

    return flip_losses


@torch.no_grad()
def greedy_flip_refine(pattern: torch.Tensor, flip_losses: FlipLosses, max_flips: int = 1000,
                       min_exposures: int = 1, tol: float = 1e-12,
                       on_flip: Callable[[int, float], None] | None = None) -> tuple[torch.Tensor, list[float]]:
    """Steepest descent on the bits of a binary pattern (time axis = third from last).

    Args:
        pattern: binary ``(T, sh, sw)`` or ``(P, T, sh, sw)``.
        flip_losses: ``pattern -> (loss_now, losses_after_each_flip)`` (see module docstring); lower is better.
        max_flips: upper bound on accepted flips (>= 0).
        min_exposures: minimum number of exposed slots per pixel a flip may leave (SnapPix: 1).
        tol: a flip is accepted only if it lowers the loss by more than this.
        on_flip: optional callback ``(flips_so_far, loss)`` after every accepted flip.

    Returns:
        ``(refined, losses)``: the refined float32 pattern (same shape and device as the input, which is
        left untouched) and the loss before the first flip followed by the loss after each flip
        (strictly decreasing).

    Raises:
        ValueError: a non-binary pattern, or a pixel below ``min_exposures`` to start with.
    """
    device = pattern.device
    p = as_pattern_tensor(pattern).to(device).clone().reshape(pattern.shape)
    counts = p.sum(dim=-3, keepdim=True)
    if bool((counts < min_exposures).any()):
        raise ValueError(f"the starting pattern has pixels with fewer than {min_exposures} exposed slots")
    history: list[float] = []
    for _ in range(max_flips + 1):
        now, losses = flip_losses(p)
        if not history:
            history.append(float(now))
        if len(history) > max_flips:
            break
        losses = losses.to(device=device, dtype=torch.float64).clone()
        counts = p.sum(dim=-3, keepdim=True).expand_as(p)
        losses[(p > 0.5) & (counts - 1 < min_exposures)] = float("inf")
        k = int(torch.argmin(losses))
        best = float(losses.view(-1)[k])
        if not best < now - tol:
            break
        p.view(-1)[k] = 1.0 - p.view(-1)[k]
        history.append(best)
        if on_flip is not None:
            on_flip(len(history) - 1, best)
    return p, history
