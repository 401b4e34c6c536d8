"""Selective scan of Mamba (Gu & Dao, 2023, https://arxiv.org/abs/2312.00752, Algorithm 2 / eq. 2a-2b).

One function, :func:`selective_scan`, with three interchangeable backends:

* ``"sequential"``: a pure-PyTorch loop over time, the CPU default. ``exp(delta A)`` and ``delta B u`` are
  computed for every step in one vectorised operation; the loop then does a single in-place ``addcmul`` per
  step on time-major slices taken with ``unbind`` (slice indexing such as ``x[:, :, t]`` under autograd
  costs a full-size gradient buffer per step in backward and is about 20x slower there), and the outputs
  ``C_t h_t`` are read off all states at once.
* ``"parallel"``: a work-efficient (Blelloch-style, recursive pairing) associative scan in pure PyTorch:
  ``log2(L)`` levels of vectorised operations, O(L) work and memory. It composes decay factors
  ``exp(delta A)`` by multiplication only; with ``A <= 0`` (Mamba's ``A = -exp(A_log)``) each factor lies
  in [0, 1], so no product can overflow however large ``delta`` is (it underflows to 0, which is exact).
  Slower than the loop on a CPU; meant for GPUs without ``mamba_ssm``.
* ``"cuda"``: ``mamba_ssm``'s fused kernel ``selective_scan_fn``, used only when the package imports and
  the tensors are on a CUDA device. It is imported lazily inside the call, never at module load, and is
  never required (``pip install -r requirements-gpu.txt`` installs it).

Both PyTorch backends share a hand-written backward (like the CUDA kernel's): only the inputs are kept for
backward (O(B D L) memory instead of the O(B D N L) hidden states); the states are recomputed there and the
adjoint recurrence is run backwards in time with the same routine.

``backend="auto"`` picks ``cuda`` when available, else ``parallel`` on a CUDA device, else ``sequential``.
Every backend runs in float32 (float64 inputs stay float64) with autocast disabled, so a bf16 / fp16
autocast region around the model does not lower the precision of the recurrence; the output is cast back
to ``u``'s dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["BACKENDS", "selective_scan", "cuda_scan_available"]

#: accepted values of ``backend``
BACKENDS = ("auto", "sequential", "parallel", "cuda")


def cuda_scan_available() -> bool:
    """True when ``mamba_ssm``'s compiled selective-scan kernel imports (it needs CUDA and a built wheel)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:  # ImportError, or an OSError / RuntimeError from a kernel built for another torch
        return False
    return True


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> None:
    """Raise ``ValueError`` unless the shapes fit together (see :func:`selective_scan`)."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (B, D, L), got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must be (D, N) = ({dim}, N), got {tuple(A.shape)}")
    state = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        if m.dim() == 3 and tuple(m.shape) == (batch, state, length):
            continue
        if m.dim() == 4 and m.shape[0] == batch and tuple(m.shape[2:]) == (state, length) and dim % m.shape[1] == 0:
            continue
        raise ValueError(f"{name} must be (B, N, L) = ({batch}, {state}, {length}) or (B, G, N, L) with G "
                         f"dividing D = {dim}, got {tuple(m.shape)}")
    if B.dim() != C.dim() or (B.dim() == 4 and B.shape[1] != C.shape[1]):
        raise ValueError(f"B and C must have the same layout, got {tuple(B.shape)} and {tuple(C.shape)}")
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and tuple(v.shape) != (dim,):
            raise ValueError(f"{name} must be ({dim},), got {tuple(v.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z must be (B, D, L) like u, got {tuple(z.shape)}")


def _states_sequential(decay: torch.Tensor, drive: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """Run the recurrence along dim 0 with one fused ``addcmul`` per step, no autograd graph.

    Forward (``reverse=False``): ``h_t = decay_t h_{t-1} + drive_t`` with ``h_{-1} = 0``.
    Reverse (the adjoint of the forward one): ``g_t = drive_t + decay_{t+1} g_{t+1}`` with ``g_L = 0``.
    Steps are the ``unbind(0)`` slices of one contiguous output buffer (a copy of ``drive``), updated in place.
    """
    out = drive.clone()
    a, o = decay.unbind(0), out.unbind(0)
    if reverse:
        for t in range(len(o) - 2, -1, -1):
            o[t].addcmul_(a[t + 1], o[t + 1])
    else:
        for t in range(1, len(o)):
            o[t].addcmul_(a[t], o[t - 1])
    return out


def _states_parallel(decay: torch.Tensor, drive: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """Same recurrences as :func:`_states_sequential`, by recursive pairing (Blelloch up-sweep / down-sweep).

    Adjacent steps ``(2i, 2i+1)`` are merged into one step with decay ``a_{2i+1} a_{2i}`` and drive
    ``a_{2i+1} b_{2i} + b_{2i+1}``; the half-length problem gives the states at odd steps, and each even
    step follows from the odd step before it. An odd length is padded with the identity step (1, 0).
    ``log2(L)`` levels, O(L) work and memory; only products of decays are formed, so decays in [0, 1]
    cannot overflow.
    """
    if reverse:
        shifted = torch.cat([decay[1:], torch.zeros_like(decay[:1])])
        return _states_parallel(shifted.flip(0), drive.flip(0)).flip(0)
    length = decay.shape[0]
    if length == 1:
        return drive.clone()
    if length % 2:
        decay = torch.cat([decay, torch.ones_like(decay[:1])])
        drive = torch.cat([drive, torch.zeros_like(drive[:1])])
    pairs = (decay.shape[0] // 2, 2) + tuple(decay.shape[1:])
    a_even, a_odd = decay.reshape(pairs).unbind(1)
    b_even, b_odd = drive.reshape(pairs).unbind(1)
    odd = _states_parallel(a_odd * a_even, torch.addcmul(b_odd, a_odd, b_even))
    before = torch.cat([torch.zeros_like(odd[:1]), odd[:-1]])
    even = torch.addcmul(b_even, a_even, before)
    return torch.stack([even, odd], dim=1).reshape((-1,) + tuple(decay.shape[1:]))[:length]


def _decay_drive(delta: torch.Tensor, u: torch.Tensor, A: torch.Tensor, B: torch.Tensor):
    """Time-major ``delta``, ``u`` ``(L, b, D)``, ``A`` ``(D, N)``, ``B`` ``(L, b, G, N)`` -> ``exp(delta A)`` and
    ``delta B u``, both contiguous ``(L, b, D, N)`` (so that the per-step ``unbind(0)`` slices are contiguous)."""
    length, batch, dim = delta.shape
    groups = B.shape[2]
    decay = torch.exp(delta.unsqueeze(-1) * A)
    du = (delta * u).reshape(length, batch, groups, dim // groups, 1)
    return decay, (du * B.unsqueeze(3)).reshape(length, batch, dim, -1)


class _SelectiveScan(torch.autograd.Function):
    """``y_t = C_t . h_t`` with ``h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t``, with a hand-written backward.

    Only the inputs are saved (O(b D L) memory, not the O(b D N L) states); backward recomputes the states
    with one forward scan, runs the adjoint recurrence ``g_t = dL/dh_t + exp(Δ_{t+1} A) g_{t+1}`` backwards in
    time with the same scan routine, and reduces ``dL/ddrive_t = g_t`` and ``dL/ddecay_t = g_t h_{t-1}`` to the
    input gradients. Nothing per step is recorded for autograd.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, parallel: bool):  # type: ignore[override]
        # u, delta: (b, D, L); A: (D, N); B, C: (b, G, N, L)
        ctx.parallel = parallel
        u_t, delta_t = (x.permute(2, 0, 1).contiguous() for x in (u, delta))  # (L, b, D)
        B_t, C_t = (x.permute(3, 0, 1, 2).contiguous() for x in (B, C))  # (L, b, G, N)
        states = (_states_parallel if parallel else _states_sequential)(*_decay_drive(delta_t, u_t, A, B_t))
        length, batch, groups, state = C_t.shape
        y = torch.einsum("lbghn,lbgn->lbgh", states.reshape(length, batch, groups, -1, state), C_t)
        ctx.save_for_backward(u_t, delta_t, A, B_t, C_t)
        return y.reshape(length, batch, -1).permute(1, 2, 0)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):  # type: ignore[override]
        u_t, delta_t, A, B_t, C_t = ctx.saved_tensors
        scan = _states_parallel if ctx.parallel else _states_sequential
        length, batch, groups, state = C_t.shape
        dim = u_t.shape[2]
        split = (length, batch, groups, dim // groups)
        g_y = grad_y.permute(2, 0, 1).reshape(split)
        decay, drive = _decay_drive(delta_t, u_t, A, B_t)
        states = scan(decay, drive)
        del drive
        grad_C = torch.einsum("lbghn,lbgh->lbgn", states.reshape(split + (state,)), g_y)
        adjoint = scan(decay, (g_y.unsqueeze(-1) * C_t.unsqueeze(3)).reshape(length, batch, dim, state), reverse=True)
        grad_du = torch.einsum("lbghn,lbgn->lbgh", adjoint.reshape(split + (state,)), B_t)
        grad_B = torch.einsum("lbghn,lbgh->lbgn", adjoint.reshape(split + (state,)), (delta_t * u_t).reshape(split))
        grad_du = grad_du.reshape(length, batch, dim)
        grad_x = torch.empty_like(states)  # dL/d(Δ A) = g_t h_{t-1} exp(Δ_t A)
        grad_x[0] = 0
        torch.mul(adjoint[1:], states[:-1], out=grad_x[1:])
        grad_x.mul_(decay)
        grad_delta = torch.einsum("lbdn,dn->lbd", grad_x, A) + grad_du * u_t
        grad_A = torch.einsum("lbdn,lbd->dn", grad_x, delta_t)
        to_bdl, to_bgnl = (lambda x: x.permute(1, 2, 0)), (lambda x: x.permute(1, 2, 3, 0))
        return to_bdl(grad_du * delta_t), to_bdl(grad_delta), grad_A, to_bgnl(grad_B), to_bgnl(grad_C), None


def _scan_torch(u, delta, A, B, C, D, z, parallel: bool) -> torch.Tensor:
    B, C = (x if x.dim() == 4 else x.unsqueeze(1) for x in (B, C))
    y = _SelectiveScan.apply(u, delta, A, B, C, parallel)
    if D is not None:
        y = y + u * D.unsqueeze(-1)
    if z is not None:
        y = y * F.silu(z)
    return y


def _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(),
                             D, z if z is None else z.contiguous(), delta_bias, delta_softplus)


def _pick_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cuda":
        if device.type != "cuda":
            raise RuntimeError(f"backend='cuda' needs CUDA tensors, got device {device}")
        if not cuda_scan_available():
            raise RuntimeError("backend='cuda' needs mamba_ssm's compiled kernels: pip install -r requirements-gpu.txt")
        return backend
    if backend == "auto":
        if device.type == "cuda":
            return "cuda" if cuda_scan_available() else "parallel"
        return "sequential"
    return backend


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, z: torch.Tensor | None = None,
                   delta_bias: torch.Tensor | None = None, delta_softplus: bool = True,
                   backend: str = "auto") -> torch.Tensor:
    """Mamba's selective state-space scan (S6; https://arxiv.org/abs/2312.00752, §3.2 and Algorithm 2).

    Per batch element b, channel d and state index n, with ``Δ = softplus(delta + delta_bias)`` (or
    ``delta + delta_bias`` when ``delta_softplus`` is False) and ``h_{-1} = 0``::

        h_t[d, n] = exp(Δ_t[d] A[d, n]) h_{t-1}[d, n] + Δ_t[d] B_t[n] u_t[d]
        y_t[d]    = sum_n C_t[n] h_t[d, n] + D[d] u_t[d]
        out_t[d]  = y_t[d] * silu(z_t[d])          (only when z is given)

    With grouped ``B`` / ``C`` of shape ``(B, G, N, L)``, channel d uses group ``d // (D / G)``: the
    channels split into G contiguous blocks (e.g. two scan directions with their own B and C in one call).

    Args:
        u: input ``(B, D, L)``, any float dtype.
        delta: step sizes before bias and softplus ``(B, D, L)``; after them every Δ must be >= 0.
        A: state matrix diagonal ``(D, N)``, float; Mamba uses ``A = -exp(A_log) < 0``. With ``A > 0`` the
            recurrence itself grows without bound and may overflow in every backend.
        B, C: input-dependent projections ``(B, N, L)`` or ``(B, G, N, L)``.
        D: skip weights ``(D,)`` or None.
        z: gate ``(B, D, L)`` or None.
        delta_bias: ``(D,)`` added to ``delta`` before the softplus, or None.
        delta_softplus: apply ``softplus`` to ``delta + delta_bias`` (Mamba: True).
        backend: ``"auto"`` | ``"sequential"`` | ``"parallel"`` | ``"cuda"`` (see the module docstring).

    Returns:
        ``(B, D, L)`` in ``u``'s dtype; computed in float32 (float64 for float64 ``u``) with autocast disabled.

    Raises:
        ValueError: inconsistent shapes or an unknown backend.
        RuntimeError: ``backend="cuda"`` without CUDA tensors or without ``mamba_ssm``'s kernels.
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    chosen = _pick_backend(backend, u.device)
    out_dtype = u.dtype
    with torch.autocast(device_type=u.device.type, enabled=False):
        dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
        D, z, delta_bias = (None if t is None else t.to(dtype) for t in (D, z, delta_bias))
        if chosen == "cuda":
            return _scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus).to(out_dtype)
        if delta_bias is not None:
            delta = delta + delta_bias.unsqueeze(-1)
        if delta_softplus:
            delta = F.softplus(delta)
        y = _scan_torch(u, delta, A, B, C, D, z, parallel=chosen == "parallel")
    return y.to(out_dtype)
