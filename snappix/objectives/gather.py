"""Guarded collectives for objectives that keep state across the batch (memory bank, prototypes).

Every function is the identity in a single process (``torch.distributed`` unavailable or not initialised), so
the objectives run unchanged on a laptop and under ``torchrun``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["distributed", "all_gather_rows", "broadcast_"]


def distributed() -> bool:
    """True when a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` ``(N_r, ...)`` of every rank along dim 0, in rank order (``N_r`` may differ per rank).

    No gradient flows through the result (use it for buffer updates only). Single process: ``x`` itself.
    """
    if not distributed():
        return x
    x = x.detach().contiguous()
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    sizes_int = [int(s.item()) for s in sizes]
    longest = max(sizes_int)
    padded = x.new_zeros((longest,) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes_int]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes_int)], dim=0)


def broadcast_(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values (no-op in a single process)."""
    if not distributed():
        return
    for t in tensors:
        dist.broadcast(t, src)
