"""Selective scan backends against a direct transcription of Mamba's recurrence (forward and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snappix.models.selective_scan import cuda_scan_available, selective_scan

CPU_BACKENDS = ["sequential", "parallel"]


def recurrence(u, delta, A, B, C, D, z, delta_bias):
    """h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t, y_t = C_t h_t + D u_t, out = y * silu(z); one time step at a time."""
    delta = F.softplus(delta + delta_bias[:, None])
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    per_group = u.shape[1] // B.shape[1]  # channel d reads group d // per_group
    B, C = B.repeat_interleave(per_group, dim=1), C.repeat_interleave(per_group, dim=1)  # (batch, D, N, L)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        h = torch.exp(delta[:, :, t, None] * A) * h + delta[:, :, t, None] * B[..., t] * u[:, :, t, None]
        ys.append((C[..., t] * h).sum(-1) + D * u[:, :, t])
    return torch.stack(ys, dim=-1) * F.silu(z)


def make_inputs(batch=2, dim=4, length=7, state=3, groups=None, delta_scale=1.0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    bc_shape = (batch, state, length) if groups is None else (batch, groups, state, length)
    tensors = dict(
        u=torch.randn(batch, dim, length, generator=g, dtype=dtype),
        delta=torch.randn(batch, dim, length, generator=g, dtype=dtype) * delta_scale,
        A=-torch.exp(torch.randn(dim, state, generator=g, dtype=dtype)),
        B=torch.randn(bc_shape, generator=g, dtype=dtype),
        C=torch.randn(bc_shape, generator=g, dtype=dtype),
        D=torch.randn(dim, generator=g, dtype=dtype),
        z=torch.randn(batch, dim, length, generator=g, dtype=dtype),
        delta_bias=torch.randn(dim, generator=g, dtype=dtype),
    )
    return {k: v.requires_grad_() for k, v in tensors.items()}


def grads(fn, inputs):
    out = fn(**inputs)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    return out, torch.autograd.grad((out * weights).sum(), list(inputs.values()))


def available_backends():
    backends = list(CPU_BACKENDS)
    if torch.cuda.is_available() and cuda_scan_available():
        backends.append("cuda")
    return backends


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("groups,length", [(None, 1), (None, 7), (2, 13), (4, 8)])
def test_backend_matches_recurrence_forward_and_grad(backend, groups, length):
    inputs = make_inputs(length=length, groups=groups)
    ref_out, ref_grads = grads(recurrence, inputs)
    out, our_grads = grads(lambda **kw: selective_scan(**kw, backend=backend), inputs)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    for name, ours, ref in zip(inputs, our_grads, ref_grads):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9, msg=f"gradient of {name}")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_float32_matches_float64_recurrence(backend):
    inputs = make_inputs(dim=6, length=20, groups=2)
    ref_out, ref_grads = grads(recurrence, inputs)
    inputs32 = {k: v.detach().float().requires_grad_() for k, v in inputs.items()}
    out, our_grads = grads(lambda **kw: selective_scan(**kw, backend=backend), inputs32)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref_out, rtol=1e-4, atol=1e-5)
    for name, ours, ref in zip(inputs, our_grads, ref_grads):
        torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-4, msg=f"gradient of {name}")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_large_delta_stays_finite_and_exact(backend):
    """Δ up to ~1e3 with A down to -16 makes exp(Δ A) underflow to 0: no overflow, no NaN, still the recurrence."""
    inputs = make_inputs(dim=4, length=33, state=16, delta_scale=500.0, dtype=torch.float32)
    with torch.no_grad():
        inputs["A"].copy_(-torch.arange(1, 17, dtype=torch.float32).repeat(4, 1))
        inputs["delta_bias"].fill_(200.0)
    out, our_grads = grads(lambda **kw: selective_scan(**kw, backend=backend), inputs)
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(g).all() for g in our_grads)
    inputs64 = {k: v.detach().double().requires_grad_() for k, v in inputs.items()}
    ref_out, _ = grads(recurrence, inputs64)
    torch.testing.assert_close(out.double(), ref_out, rtol=1e-4, atol=1e-3)


def test_backends_agree_on_a_long_sequence():
    inputs = make_inputs(batch=1, dim=8, length=257, state=4, groups=2, dtype=torch.float32)
    outs = {b: grads(lambda **kw: selective_scan(**kw, backend=b), inputs) for b in available_backends()}
    ref_out, ref_grads = outs.pop("sequential")
    for backend, (out, our_grads) in outs.items():
        torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4, msg=backend)
        for ours, ref in zip(our_grads, ref_grads):
            torch.testing.assert_close(ours, ref, rtol=1e-3, atol=1e-3, msg=backend)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bf16_autocast_keeps_the_scan_in_float32(backend):
    inputs = {k: v.detach().to(torch.bfloat16) for k, v in make_inputs(dim=4, length=40, dtype=torch.float32).items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = selective_scan(**inputs, backend=backend)
    expected = selective_scan(**{k: v.float() for k, v in inputs.items()}, backend=backend)
    assert out.dtype == torch.bfloat16  # the input dtype comes back
    torch.testing.assert_close(out, expected.to(torch.bfloat16), rtol=0, atol=0)
    lowered = recurrence(**inputs)  # the same arithmetic done in bf16 differs
    assert not torch.equal(lowered, out)


def test_shape_and_backend_errors():
    inputs = {k: v.detach() for k, v in make_inputs().items()}
    with pytest.raises(ValueError, match="backend"):
        selective_scan(**inputs, backend="fast")
    with pytest.raises(ValueError, match="A must be"):
        selective_scan(**{**inputs, "A": inputs["A"][:-1]})
    with pytest.raises(ValueError, match="B must be"):
        selective_scan(**{**inputs, "B": inputs["B"][..., :-1]})
    with pytest.raises(ValueError, match="dividing"):
        selective_scan(**{**inputs, "B": inputs["B"][:, None].repeat(1, 3, 1, 1),
                          "C": inputs["C"][:, None].repeat(1, 3, 1, 1)})
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            selective_scan(**inputs, backend="cuda")
