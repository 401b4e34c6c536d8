"""Baseline for ``bench_mamba.py``: the straightforward selective scan, as pure-PyTorch Mamba references write it.

Discretise for all steps in the ``(batch, D, L, N)`` layout, then loop over time indexing the step with
``x[:, :, t]`` and let autograd record every step. Correct, but each indexed step costs a full-size gradient
buffer in backward. Kept here only as the thing to beat; snappix uses :mod:`snappix.models.selective_scan`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def selective_scan_loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True, backend=None):
    """Same contract as :func:`snappix.models.selective_scan.selective_scan` (``backend`` is ignored);
    ``B`` / ``C``: ``(batch, N, L)`` or ``(batch, G, N, L)`` (each group scanned by its own call, as the
    VideoMamba reference runs one scan per direction)."""
    if B.dim() == 4:
        groups = B.shape[1]
        chunks = zip(u.chunk(groups, 1), delta.chunk(groups, 1), A.chunk(groups, 0), B.unbind(1), C.unbind(1),
                     (None,) * groups if D is None else D.chunk(groups), (None,) * groups if z is None else
                     z.chunk(groups, 1), (None,) * groups if delta_bias is None else delta_bias.chunk(groups))
        return torch.cat([selective_scan_loop(*parts, delta_softplus=delta_softplus) for parts in chunks], dim=1)
    dtype = u.dtype
    u, delta, A, B, C = (t.float() for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias[:, None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    drive = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        h = decay[:, :, t] * h + drive[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)
