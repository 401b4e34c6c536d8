"""Bidirectional Mamba mixer and the residual block of VideoMamba (Li et al., 2024,
https://arxiv.org/abs/2403.06977, §3.2; Mamba: Gu & Dao, 2023, https://arxiv.org/abs/2312.00752, §3.4).

The mixer is the "bimamba" variant of Vision Mamba used by VideoMamba, written in plain PyTorch so that it
runs on any device; only the scan itself may use a compiled kernel (:mod:`snappix.models.selective_scan`).
Parameter names are those of VideoMamba's checkpoints (``in_proj``, ``conv1d`` / ``conv1d_b``, ``x_proj`` /
``x_proj_b``, ``dt_proj`` / ``dt_proj_b``, ``A_log`` / ``A_b_log``, ``D`` / ``D_b``, ``out_proj``), so
released weights load without renaming inside the block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import nn

from snappix.models.selective_scan import BACKENDS, selective_scan

__all__ = ["BiMambaMixer", "MambaBlock"]


def _dt_bias(channels: int, dt_min: float, dt_max: float, dt_floor: float) -> torch.Tensor:
    """Inverse softplus of ``dt ~ logU[dt_min, dt_max]`` (floored at ``dt_floor``), so that
    ``softplus(bias)`` starts in that range."""
    dt = torch.exp(torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_floor)
    return dt + torch.log(-torch.expm1(-dt))


class BiMambaMixer(nn.Module):
    """Bidirectional selective-SSM mixer over a token sequence.

    ``(x, z) = in_proj(h)`` (d -> 2 x 2d, no bias). For each direction, forward on the sequence and
    backward on the sequence flipped along L (own ``conv1d``, ``x_proj``, ``dt_proj``, ``A``, ``D``)::

        x' = silu(causal depthwise conv1d(x))              kernel d_conv, with bias
        (Δ_low, B, C) = x_proj(x')                         2d -> dt_rank + 2 d_state, no bias
        Δ = softplus(dt_proj(Δ_low))                       dt_rank -> 2d, bias added inside the scan
        y = selective_scan(x', Δ, A = -exp(A_log), B, C, D)

    The backward direction's output is flipped back; ``out = out_proj((y_fwd + y_bwd) * silu(z))``
    (2d -> d, no bias). Both directions run in one scan call (their channels stacked, their ``B`` / ``C`` as
    two groups).

    Initialisation (VideoMamba / Mamba): ``A_log = log(1..d_state)`` per channel (S4D-real), ``D = 1``,
    ``dt_proj.weight ~ U(±dt_rank^-0.5)``, ``dt_proj.bias = softplus^-1(dt)`` with ``dt ~ logU[1e-3, 1e-1]``,
    ``in_proj`` / ``x_proj`` trunc-normal(0.02), ``out_proj`` Kaiming-uniform divided by ``sqrt(depth)``,
    convolutions at PyTorch's default. (VideoMamba's code re-initialises ``dt_proj`` to trunc-normal(0.02)
    with a zero bias afterwards by a blanket Linear init; the Mamba initialisation is kept here.)

    Args:
        dim: model width d.
        d_state: state size N per channel (16).
        d_conv: causal convolution width (4).
        expand: inner width factor (2): the scan runs on ``2d`` channels.
        dt_rank: rank of the Δ projection; ``None`` -> ``ceil(d / 16)``.
        depth: number of blocks of the model, for the ``out_proj`` scale.
        scan_backend: see :func:`~snappix.models.selective_scan.selective_scan` (``"auto"``).
        dt_min, dt_max, dt_floor: Δ initialisation range.

    Shapes:
        ``forward(h)``: ``(B, L, d)`` any float dtype -> ``(B, L, d)``; the scan runs in float32.

    Raises:
        ValueError: non-positive sizes or an unknown scan backend.
    """

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank: int | None = None,
                 depth: int = 1, scan_backend: str = "auto", dt_min: float = 1e-3, dt_max: float = 1e-1,
                 dt_floor: float = 1e-4) -> None:
        super().__init__()
        if min(dim, d_state, d_conv, expand, depth) < 1:
            raise ValueError("dim, d_state, d_conv, expand and depth must be >= 1")
        if scan_backend not in BACKENDS:
            raise ValueError(f"scan_backend must be one of {BACKENDS}, got {scan_backend!r}")
        self.dim, self.d_state, self.d_conv, self.scan_backend = dim, d_state, d_conv, scan_backend
        self.d_inner = expand * dim
        self.dt_rank = math.ceil(dim / 16) if dt_rank is None else dt_rank
        inner, rank = self.d_inner, self.dt_rank
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        for suffix in ("", "_b"):
            setattr(self, f"conv1d{suffix}", nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1))
            setattr(self, f"x_proj{suffix}", nn.Linear(inner, rank + 2 * d_state, bias=False))
            setattr(self, f"dt_proj{suffix}", nn.Linear(rank, inner, bias=True))
            a_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1)
            setattr(self, "A_log" if not suffix else "A_b_log", nn.Parameter(a_log))
            setattr(self, f"D{suffix}", nn.Parameter(torch.ones(inner)))
        self.out_proj = nn.Linear(inner, dim, bias=False)
        self._init_weights(depth, dt_min, dt_max, dt_floor)

    def _init_weights(self, depth: int, dt_min: float, dt_max: float, dt_floor: float) -> None:
        trunc_normal_(self.in_proj.weight, std=0.02)
        nn.init.kaiming_uniform_(self.out_proj.weight, a=math.sqrt(5))
        with torch.no_grad():
            self.out_proj.weight.div_(math.sqrt(depth))
        for suffix in ("", "_b"):
            trunc_normal_(getattr(self, f"x_proj{suffix}").weight, std=0.02)
            dt_proj = getattr(self, f"dt_proj{suffix}")
            nn.init.uniform_(dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
            with torch.no_grad():
                dt_proj.bias.copy_(_dt_bias(self.d_inner, dt_min, dt_max, dt_floor))

    def _project(self, x: torch.Tensor, suffix: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conv output ``x`` ``(B, 2d, L)`` of one direction -> ``(delta (B, 2d, L), B (B, N, L), C (B, N, L))``."""
        dbc = getattr(self, f"x_proj{suffix}")(x.transpose(1, 2))
        dt, b, c = dbc.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, getattr(self, f"dt_proj{suffix}").weight)  # the bias is added in the scan
        return delta.transpose(1, 2), b.transpose(1, 2), c.transpose(1, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, L, d)`` -> ``(B, L, d)``; see the class docstring."""
        length = hidden.shape[1]
        x, z = self.in_proj(hidden).transpose(1, 2).chunk(2, dim=1)  # (B, 2d, L) each
        both = torch.cat([x, x.flip(-1)], dim=1)  # forward | backward (flipped) channels
        weight = torch.cat([self.conv1d.weight, self.conv1d_b.weight])
        bias = torch.cat([self.conv1d.bias, self.conv1d_b.bias])
        both = F.silu(F.conv1d(both, weight, bias, padding=self.d_conv - 1, groups=2 * self.d_inner)[..., :length])
        x_f, x_b = both.chunk(2, dim=1)
        delta_f, b_f, c_f = self._project(x_f, "")
        delta_b, b_b, c_b = self._project(x_b, "_b")
        y = selective_scan(both, torch.cat([delta_f, delta_b], dim=1),
                           -torch.exp(torch.cat([self.A_log, self.A_b_log]).float()),
                           torch.stack([b_f, b_b], dim=1), torch.stack([c_f, c_b], dim=1),
                           D=torch.cat([self.D, self.D_b]).float(),
                           delta_bias=torch.cat([self.dt_proj.bias, self.dt_proj_b.bias]).float(),
                           delta_softplus=True, backend=self.scan_backend)
        y_f, y_b = y.chunk(2, dim=1)
        y = (y_f + y_b.flip(-1)) * F.silu(z)
        return self.out_proj(y.transpose(1, 2))


class MambaBlock(nn.Module):
    """Pre-norm residual block: ``h = h + drop_path(mixer(RMSNorm(h)))``, the residual stream in float32.

    The same function as VideoMamba's "Add -> RMSNorm -> mixer" block with the residual handed to the next
    block (there the drop path of mixer k is applied by block k + 1 or by the final add); written as a
    plain pre-norm block so that ``blocks.k`` holds exactly the parameters that act at depth k.

    Args:
        dim: width d.
        drop_path: stochastic-depth probability of this block's mixer output.
        norm_eps: RMSNorm epsilon (1e-5).
        **mixer_kwargs: forwarded to :class:`BiMambaMixer`.

    Shapes:
        ``forward(h)``: ``(B, L, d)`` -> ``(B, L, d)`` float32 (the residual stream stays float32 under
        autocast; the mixer may compute in bf16 / fp16 there).
    """

    def __init__(self, dim: int, drop_path: float = 0.0, norm_eps: float = 1e-5, **mixer_kwargs) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(dim, eps=norm_eps)
        self.mixer = BiMambaMixer(dim, **mixer_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        residual = hidden.float()
        return residual + self.drop_path(self.mixer(self.norm(residual))).float()
