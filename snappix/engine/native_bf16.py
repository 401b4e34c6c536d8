"""Does this device compute bf16 natively? The answer behind ``--precision auto``.

bf16 autocast only pays where the hardware has bf16 matrix instructions. Elsewhere PyTorch emulates it
(convert to fp32, compute, round back), and a CPU training step becomes several times *slower* than
plain fp32 (measured: 7x for a coded super-tiny MAE step on a 2-core AVX2 EPYC). So:

* CUDA: native when :func:`torch.cuda.is_bf16_supported` (compute capability >= 8.0, Ampere on).
* x86 CPU: native when the CPU reports ``amx_bf16`` (Sapphire Rapids on) or ``avx512_bf16`` (Cooper Lake,
  Zen 4 on) **and** PyTorch / oneDNN may use those instructions: ``ATEN_CPU_CAPABILITY=avx2`` or
  ``ONEDNN_MAX_CPU_ISA`` below ``AVX512_CORE_BF16`` (a way to emulate a laptop) turn them off.
* other CPUs (ARM, or no ``/proc/cpuinfo``, e.g. macOS): a one-off micro-timing of a small linear layer's
  forward and backward in bf16 autocast against fp32 decides (bf16 must not be slower).

Every answer comes with a one-line reason that the entry points print at start-up.
"""

from __future__ import annotations

import functools
import os
import time

import torch

#: x86 CPU flags (``/proc/cpuinfo``) that mean bf16 matrix instructions
X86_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: ``ONEDNN_MAX_CPU_ISA`` values that still allow oneDNN's bf16 kernels
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX10_1_512_AMX",
                     "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "AVX512_CORE_AMX",
                     "AVX512_CORE_AMX_FP16", "ALL", "DEFAULT")


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags of the first processor in ``path`` (Linux), or ``None`` if unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86 / aarch64 spelling
                    return set(value.split())
    except OSError:
        return None
    return None


def cpu_native_bf16(flags: set[str] | None, env: dict | None = None,
                    capability: str | None = None) -> tuple[bool | None, str]:
    """Decide from CPU flags and the environment; ``(None, reason)`` when flags cannot decide.

    Args:
        flags: CPU flags (:func:`cpu_flags`); ``None`` = unknown.
        env: environment (default ``os.environ``): ``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``.
        capability: PyTorch's CPU capability string (default :func:`torch.backends.cpu.get_cpu_capability`,
            e.g. ``"AVX512"``, ``"AVX2"``).

    Returns:
        ``(True | False | None, reason)``.
    """
    env = os.environ if env is None else env
    if flags is None:
        return None, "CPU flags unreadable"
    if not any(f in flags for f in ("avx2", "avx512f")):  # not an x86 CPU we know: let the timing decide
        return None, "not an x86 CPU with known bf16 flags"
    have = [f for f in X86_BF16_FLAGS if f in flags]
    if not have:
        return False, "the CPU has no native bf16 (no amx_bf16 / avx512_bf16 flag): bf16 would be emulated"
    aten = env.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if capability is None:
        capability = torch.backends.cpu.get_cpu_capability()
    if aten in ("avx2", "default", "avx", "sse") or str(capability).upper() in ("AVX2", "DEFAULT", "NO AVX"):
        return False, f"PyTorch runs its {capability} kernels (ATEN_CPU_CAPABILITY={aten or 'unset'}): bf16 " \
                      "would be emulated"
    isa = env.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa and isa not in _ONEDNN_BF16_ISAS:
        return False, f"ONEDNN_MAX_CPU_ISA={isa} excludes oneDNN's bf16 kernels: bf16 would be emulated"
    return True, f"the CPU computes bf16 natively ({', '.join(have)})"


def _time_linear(dtype: torch.dtype | None, reps: int) -> float:
    """Best-of-``reps`` seconds of one forward + backward of a 512x512 linear layer on 1024 rows."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 512, generator=g)
    lin = torch.nn.Linear(512, 512)
    best = float("inf")
    for _ in range(reps + 1):  # the first round warms up
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            y = lin(x)
        y.float().sum().backward()
        best = min(best, time.perf_counter() - t0)
    return best


@functools.lru_cache(maxsize=1)
def cpu_bf16_timing(reps: int = 3) -> tuple[bool, str]:
    """One-off micro-timing (about 0.1 s): bf16 autocast is native if not slower than fp32."""
    t32, t16 = _time_linear(None, reps), _time_linear(torch.bfloat16, reps)
    ratio = t16 / max(t32, 1e-9)
    verdict = ratio <= 1.0
    return verdict, f"a bf16 matmul took {ratio:.2f}x the fp32 time on this CPU (micro-timing)"


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """``(native, reason)``: whether ``device`` computes bf16 natively (see the module docstring)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(dev) if torch.cuda.is_available() else "no CUDA device"
        return ok, f"{name} {'supports' if ok else 'does not support'} bf16"
    if dev.type != "cpu":
        return False, f"bf16 support on {dev.type} is unknown"
    verdict, reason = cpu_native_bf16(cpu_flags())
    if verdict is None:
        return cpu_bf16_timing()
    return verdict, reason
